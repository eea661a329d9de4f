//! A deployment (one command sent to a set of instances) and its commands (one per instance).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{App, Kind, Resource};
use crate::command::CommandName;
use crate::deployment::{CommandStatus, DeploymentStatus};

/// A deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deployment {
    /// Its ID.
    pub deployment_id: String,
    /// Its stack.
    pub stack_id: String,
    /// The app it acts on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When its last command ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Seconds from creation to completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_user_arn: Option<String>,
    /// The user's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The command and its arguments.
    pub command: DeploymentCommand,
    /// Its status, from its commands'.
    pub status: DeploymentStatus,
    /// Custom JSON merged into the runs' attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_json: Option<String>,
    /// The instances it goes to.
    #[serde(default)]
    pub instance_ids: Vec<String>,
    /// The link of the lifecycle chain it is, when the control plane made it itself.
    #[serde(
        rename = "_Lifecycle",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lifecycle: Option<LifecycleStep>,
    /// The app as it was, when it was deleted since (DeleteApp's Undeploy carries it).
    #[serde(rename = "_App", default, skip_serializing_if = "Option::is_none")]
    pub carried_app: Option<Box<App>>,
    /// The commit each app's source revision resolved to, as the instances reported it (app ID
    /// → commit; several commits joined by `,` when instances resolved a moving branch apart).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revisions: BTreeMap<String, String>,
}

impl Resource for Deployment {
    const KIND: Kind = Kind::Deployment;
    fn id(&self) -> &str {
        &self.deployment_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    /// A deployment's parent is its app, so the deployments of an app list by parent.
    fn parent_id(&self) -> Option<&str> {
        self.app_id.as_deref()
    }
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        // A deleted app carried for its Undeploy keeps its secrets sealed too.
        match self.carried_app.as_deref_mut() {
            Some(app) => app.secrets_mut(),
            None => Vec::new(),
        }
    }
}

/// A deployment's command and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentCommand {
    /// The command.
    pub name: CommandName,
    /// Its arguments (`recipes`, `migrate`, ...).
    #[serde(default)]
    pub args: BTreeMap<String, Vec<String>>,
}

/// Which link of the lifecycle chain a deployment the control plane made is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStep {
    /// Setup after the machine booted.
    Setup,
    /// The Deploy of every app after a successful Setup.
    SetupDeploy,
    /// Configure on every online instance.
    Configure,
    /// Shutdown before a machine stops.
    Shutdown,
    /// Undeploy of an app being deleted.
    AppDeleted,
}

impl LifecycleStep {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::SetupDeploy => "setup-deploy",
            Self::Configure => "configure",
            Self::Shutdown => "shutdown",
            Self::AppDeleted => "app-deleted",
        }
    }
}

impl fmt::Display for LifecycleStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LifecycleStep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Setup,
            Self::SetupDeploy,
            Self::Configure,
            Self::Shutdown,
            Self::AppDeleted,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("unknown lifecycle step {s}"))
    }
}

crate::serde_str::serde_as_str!(LifecycleStep);

/// A command: one instance's part of a deployment, and the agent's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Command {
    /// Its ID.
    pub command_id: String,
    /// The instance that runs it.
    pub instance_id: String,
    /// Its deployment.
    pub deployment_id: String,
    /// Its stack.
    #[serde(default)]
    pub stack_id: String,
    /// When it was created.
    pub created_at: String,
    /// When the agent took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Its status.
    pub status: CommandStatus,
    /// The run's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// What it runs.
    pub r#type: CommandName,
    /// The commit each app's source resolved to on this instance (app ID → commit).
    #[serde(
        rename = "_AppRevisions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub app_revisions: Option<BTreeMap<String, String>>,
}

impl Resource for Command {
    const KIND: Kind = Kind::Command;
    fn id(&self) -> &str {
        &self.command_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn parent_id(&self) -> Option<&str> {
        Some(&self.deployment_id)
    }
    fn instance_id(&self) -> Option<&str> {
        Some(&self.instance_id)
    }
}
