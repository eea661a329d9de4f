//! An app: code deployed to a stack's app servers, with its source, environment and data sources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Kind, Resource, Source};

/// An app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct App {
    /// Its ID.
    pub app_id: String,
    /// Its stack.
    pub stack_id: String,
    /// Its name.
    pub name: String,
    /// Its short name (it deploys to `/srv/www/<shortname>`).
    pub shortname: String,
    /// Its type (`nodejs`, `static`, `php`, `rails`, `java`, `aws-flow-ruby`, `other`).
    pub r#type: AppType,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where its code comes from (secrets inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_source: Option<AppSource>,
    /// Its databases.
    #[serde(default)]
    pub data_sources: Vec<DataSource>,
    /// Its domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Whether SSL is on.
    #[serde(default)]
    pub enable_ssl: bool,
    /// Its SSL certificate (the private key is a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_configuration: Option<SslConfiguration>,
    /// Attributes (`DocumentRoot`, `RailsEnv`, `AutoBundleOnDeploy`, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<String>>,
    /// Environment variables (secure ones are secrets).
    #[serde(default)]
    pub environment: Vec<EnvironmentVariable>,
    /// When it was created.
    pub created_at: String,
}

impl App {
    /// An attribute's value, when set and not empty.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .and_then(|v| v.as_deref())
            .filter(|v| !v.is_empty())
    }
}

impl Resource for App {
    const KIND: Kind = Kind::App;
    fn id(&self) -> &str {
        &self.app_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        let mut out = super::source_secrets(self.app_source.as_mut());
        out.extend(
            self.ssl_configuration
                .iter_mut()
                .map(|s| &mut s.private_key),
        );
        out.extend(
            self.environment
                .iter_mut()
                .filter(|v| v.secure)
                .map(|v| &mut v.value),
        );
        out
    }
}

/// The app's source (the same shape as the stack's cookbook source).
pub type AppSource = Source;

/// An app type, kept as the API spells it (the model's enum validated it).
pub type AppType = String;

/// A database the app uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataSource {
    /// `AutoSelectOpsworksMysqlInstance`, `OpsworksMysqlInstance`, `RdsDbInstance` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// The database's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The database's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
}

/// An environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentVariable {
    /// Name.
    pub key: String,
    /// Value (a secret when `secure`).
    pub value: String,
    /// Whether the value is hidden in the API.
    #[serde(default)]
    pub secure: bool,
}

/// An SSL certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SslConfiguration {
    /// The certificate.
    pub certificate: String,
    /// The private key (a secret).
    pub private_key: String,
    /// The chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}
