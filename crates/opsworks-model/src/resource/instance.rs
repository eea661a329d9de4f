//! An instance: a machine in one or more layers of a stack, and where it is in its life.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Kind, Resource, RootDeviceType};
use crate::InstanceStatus;

/// An instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    /// Its ID.
    pub instance_id: String,
    /// Its ARN.
    pub arn: String,
    /// Its stack.
    pub stack_id: String,
    /// Its layers, in the order given (the first names it under `Layer_Dependent`).
    #[serde(default)]
    pub layer_ids: Vec<String>,
    /// Its hostname.
    pub hostname: String,
    /// Its OS (the catalog's name).
    pub os: String,
    /// Its status.
    pub status: InstanceStatus,
    /// Its instance type (`t3.micro`).
    #[serde(default)]
    pub instance_type: String,
    /// How it scales: 24/7 (absent), `timer` or `load`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaling_type: Option<AutoScalingType>,
    /// Its root device.
    #[serde(default)]
    pub root_device_type: RootDeviceType,
    /// `x86_64` or `i386`.
    #[serde(default = "x86_64")]
    pub architecture: String,
    /// `hvm` or `paravirtual`.
    #[serde(default = "hvm")]
    pub virtualization_type: String,
    /// `default`, `dedicated` or `host`.
    #[serde(default = "default_tenancy")]
    pub tenancy: String,
    /// `INHERIT` or a version.
    #[serde(default = "inherit")]
    pub agent_version: String,
    /// Whether OS updates are installed at boot.
    #[serde(default)]
    pub install_updates_on_boot: bool,
    /// Whether EBS-optimized.
    #[serde(default)]
    pub ebs_optimized: bool,
    /// `ec2` or `on-premises`.
    #[serde(default = "ec2")]
    pub infrastructure_class: String,
    /// When it was created.
    pub created_at: String,
    /// A custom AMI (Os `Custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_id: Option<String>,
    /// Its availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Its subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Its SSH key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_name: Option<String>,
    /// Its instance profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,
    /// Block devices asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_device_mappings: Option<Vec<BlockDeviceMapping>>,
    /// The machine's ID on its provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    /// ECS cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_cluster_arn: Option<String>,
    /// ECS container instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_container_instance_arn: Option<String>,
    /// Elastic IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic_ip: Option<String>,
    /// The last service error's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_service_error_id: Option<String>,
    /// `windows` for Windows instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Private DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns: Option<String>,
    /// Private IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// Public DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_dns: Option<String>,
    /// Public IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// Who registered it (registered instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
    /// The agent's version, as it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_agent_version: Option<String>,
    /// The OS, as the agent reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_os: Option<ReportedOs>,
    /// Root volume ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device_volume_id: Option<String>,
    /// Security groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    /// SSH host DSA key fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_dsa_key_fingerprint: Option<String>,
    /// SSH host RSA key fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_rsa_key_fingerprint: Option<String>,
    /// A `timer` instance's weekly schedule: day → UTC hour → `on`/`off`.
    #[serde(
        rename = "_AutoScalingSchedule",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_scaling_schedule: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// The server whose host runs the instance's machine (its stable ID), set when the machine is
    /// provisioned: with several servers on one database, that server does the machine's work.
    #[serde(rename = "_Server", default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Whether the machine was registered (RegisterInstance) rather than created: the server
    /// never starts, stops, reboots or heals it, and it leaves through DeregisterInstance.
    #[serde(
        rename = "_Registered",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub registered: bool,
}

fn x86_64() -> String {
    "x86_64".into()
}
fn hvm() -> String {
    "hvm".into()
}
fn default_tenancy() -> String {
    "default".into()
}
fn inherit() -> String {
    "INHERIT".into()
}
fn ec2() -> String {
    "ec2".into()
}

impl Instance {
    /// Whether it belongs to the layer.
    pub fn in_layer(&self, layer_id: &str) -> bool {
        self.layer_ids.iter().any(|l| l == layer_id)
    }

    /// Whether it belongs to any of the layers.
    pub fn in_any_layer(&self, layer_ids: &[String]) -> bool {
        self.layer_ids.iter().any(|l| layer_ids.contains(l))
    }
}

impl Resource for Instance {
    const KIND: Kind = Kind::Instance;
    fn id(&self) -> &str {
        &self.instance_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
}

/// How an instance scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoScalingType {
    /// Started and stopped on a weekly schedule.
    Timer,
    /// Started and stopped by its layer's load.
    Load,
}

impl AutoScalingType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timer => "timer",
            Self::Load => "load",
        }
    }
}

impl fmt::Display for AutoScalingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AutoScalingType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "timer" => Ok(Self::Timer),
            "load" => Ok(Self::Load),
            other => Err(format!("unknown auto scaling type {other}")),
        }
    }
}

crate::serde_str::serde_as_str!(AutoScalingType);

/// The OS as the agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportedOs {
    /// Family (`debian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Name (`debian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version (`12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A block device asked for at CreateInstance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockDeviceMapping {
    /// Device name (`/dev/sdh`, `ROOT_DEVICE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Suppresses the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_device: Option<String>,
    /// Instance store volume name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_name: Option<String>,
    /// An EBS volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs: Option<EbsBlockDevice>,
}

/// An EBS volume of a block device mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EbsBlockDevice {
    /// Snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// IOPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    /// GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<i64>,
    /// Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Whether deleted with the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
}
