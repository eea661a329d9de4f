//! A stack: the container of layers, instances and apps, and the settings they inherit.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// A stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stack {
    /// Its ID.
    pub stack_id: String,
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The region its instances run in.
    pub region: String,
    /// The VPC, for VPC stacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Attributes (`Color`): unset ones are kept as `None`, shown as null.
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<String>>,
    /// The IAM role the service acts as.
    #[serde(default)]
    pub service_role_arn: String,
    /// The instance profile its instances get unless their layer names one.
    #[serde(default)]
    pub default_instance_profile_arn: String,
    /// The OS new instances get.
    pub default_os: String,
    /// The theme new hostnames are taken from.
    pub hostname_theme: String,
    /// The availability zone new instances get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_availability_zone: Option<String>,
    /// The subnet new instances get (VPC stacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_subnet_id: Option<String>,
    /// Custom JSON merged into every run's attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_json: Option<String>,
    /// Chef and its version (`12`, `11.10`, ...).
    pub configuration_manager: ConfigurationManager,
    /// Berkshelf settings.
    #[serde(default)]
    pub chef_configuration: ChefConfiguration,
    /// Whether the custom cookbooks run.
    #[serde(default)]
    pub use_custom_cookbooks: bool,
    /// Whether the built-in security groups are used.
    #[serde(default = "yes")]
    pub use_opsworks_security_groups: bool,
    /// Where the custom cookbooks come from (secrets inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_cookbooks_source: Option<Source>,
    /// The SSH key pair new instances get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ssh_key_name: Option<String>,
    /// When it was created (AWS timestamp).
    pub created_at: String,
    /// The root device new instances get.
    #[serde(default)]
    pub default_root_device_type: RootDeviceType,
    /// The agent version (`LATEST` or a version).
    pub agent_version: String,
}

fn yes() -> bool {
    true
}

impl Stack {
    /// The Chef version (`12`, `11.10`, ...).
    pub fn chef_version(&self) -> &str {
        &self.configuration_manager.version
    }

    /// The major Chef version (`12`, `11`).
    pub fn chef_major(&self) -> &str {
        let v = self.chef_version();
        v.split('.').next().unwrap_or(v)
    }
}

impl Resource for Stack {
    const KIND: Kind = Kind::Stack;
    fn id(&self) -> &str {
        &self.stack_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        super::source_secrets(self.custom_cookbooks_source.as_mut())
    }
}

/// Chef and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigurationManager {
    /// Always `Chef`.
    pub name: String,
    /// `12`, `11.10`, `11.4`, `12.2`, `0.9`.
    pub version: String,
}

impl Default for ConfigurationManager {
    fn default() -> Self {
        Self {
            name: "Chef".into(),
            version: "12".into(),
        }
    }
}

/// Berkshelf settings of a Chef 11.10 stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChefConfiguration {
    /// Whether Berkshelf manages cookbooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_berkshelf: Option<bool>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berkshelf_version: Option<String>,
}

/// A source of cookbooks or of an app: a repository or an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Source {
    /// `git`, `svn`, `archive`, `s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// SSH private key (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    /// Branch, tag or commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Where an instance's root file system lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RootDeviceType {
    /// A fresh root at every start.
    #[default]
    InstanceStore,
    /// A root that survives stop and start.
    Ebs,
}

impl RootDeviceType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceStore => "instance-store",
            Self::Ebs => "ebs",
        }
    }
}

impl fmt::Display for RootDeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RootDeviceType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "instance-store" => Ok(Self::InstanceStore),
            "ebs" => Ok(Self::Ebs),
            other => Err(format!("unknown root device type {other}")),
        }
    }
}

crate::serde_str::serde_as_str!(RootDeviceType);
