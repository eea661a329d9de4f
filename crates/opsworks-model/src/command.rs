//! The commands an instance's agent runs: the lifecycle events and the deployment commands, named
//! as `Command.Type` and `DeploymentCommand.Name` spell them. Server, lifecycle rules and agent all
//! use this one enum.

use std::fmt;
use std::str::FromStr;

/// A command an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandName {
    /// The Setup lifecycle event (after an instance boots).
    Setup,
    /// The Configure lifecycle event (an instance entered or left online).
    Configure,
    /// Deploy the apps.
    Deploy,
    /// Remove an app.
    Undeploy,
    /// Back to the app's previous release.
    Rollback,
    /// Start an app's server (Chef 11).
    Start,
    /// Stop an app's server (Chef 11).
    Stop,
    /// Restart an app's server (Chef 11).
    Restart,
    /// The Shutdown lifecycle event (before the machine stops); never asked for by a user.
    Shutdown,
    /// Run the recipes named in the deployment's `recipes` argument.
    ExecuteRecipes,
    /// Fetch the stack's custom cookbooks again.
    UpdateCustomCookbooks,
    /// Install the OS's pending updates (Chef 11, Linux).
    InstallDependencies,
    /// Update the OS's packages (Chef 11, Linux).
    UpdateDependencies,
}

impl CommandName {
    /// Every command.
    pub const ALL: [CommandName; 13] = [
        Self::Setup,
        Self::Configure,
        Self::Deploy,
        Self::Undeploy,
        Self::Rollback,
        Self::Start,
        Self::Stop,
        Self::Restart,
        Self::Shutdown,
        Self::ExecuteRecipes,
        Self::UpdateCustomCookbooks,
        Self::InstallDependencies,
        Self::UpdateDependencies,
    ];

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Configure => "configure",
            Self::Deploy => "deploy",
            Self::Undeploy => "undeploy",
            Self::Rollback => "rollback",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Shutdown => "shutdown",
            Self::ExecuteRecipes => "execute_recipes",
            Self::UpdateCustomCookbooks => "update_custom_cookbooks",
            Self::InstallDependencies => "install_dependencies",
            Self::UpdateDependencies => "update_dependencies",
        }
    }

    /// Whether the command acts on one app (and so a deployment of it needs an `AppId`).
    pub fn needs_app(self) -> bool {
        matches!(
            self,
            Self::Deploy
                | Self::Undeploy
                | Self::Rollback
                | Self::Start
                | Self::Stop
                | Self::Restart
        )
    }

    /// Whether only Chef 11 stacks run it: the dependency commands and the app-server commands
    /// backed by Chef 11's built-in recipes (our agent rolls back on any stack).
    pub fn chef11_only(self) -> bool {
        matches!(
            self,
            Self::InstallDependencies
                | Self::UpdateDependencies
                | Self::Start
                | Self::Stop
                | Self::Restart
        )
    }

    /// Commands the model accepts whose recipes are not built: refused rather than run as an
    /// empty run list that would report success having done nothing.
    pub fn not_built(self) -> bool {
        self.chef11_only()
    }

    /// Whether a user may ask for it in CreateDeployment (Shutdown only follows a stop).
    pub fn user_command(self) -> bool {
        self != Self::Shutdown
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command {0}")]
pub struct UnknownCommand(pub String);

impl FromStr for CommandName {
    type Err = UnknownCommand;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCommand(s.to_string()))
    }
}

crate::serde_str::serde_as_str!(CommandName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in CommandName::ALL {
            assert_eq!(c.as_str().parse::<CommandName>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<CommandName>(&json).unwrap(), c);
        }
        assert!("reboot".parse::<CommandName>().is_err());
    }
}
