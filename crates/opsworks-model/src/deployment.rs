//! Deployment rules: which commands act on an app, what their arguments must be, which Chef
//! versions run them, and a deployment's status derived from its commands' statuses.
//!
//! The commands and their arguments are the original's (`shared/reference/opsworks.md` §1.5).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::InstanceStatus;

/// The commands that act on an app and so need an `AppId`.
pub const APP_COMMANDS: [&str; 6] = ["deploy", "undeploy", "rollback", "start", "stop", "restart"];

/// The stack commands (no app needed).
pub const STACK_COMMANDS: [&str; 6] = [
    "install_dependencies",
    "update_dependencies",
    "update_custom_cookbooks",
    "execute_recipes",
    "configure",
    "setup",
];

/// Commands that only Chef 11 stacks run: the dependency commands (Linux, Chef ≤ 11.10) and the
/// app commands backed by the Chef 11 built-in app-server recipes.
/// (`rollback` is not among them: our agent rolls an app back to its previous release on any stack.)
pub const CHEF11_ONLY_COMMANDS: [&str; 5] = [
    "install_dependencies",
    "update_dependencies",
    "start",
    "stop",
    "restart",
];

/// Commands accepted by the model whose recipes are not built yet; refused rather than run as an
/// empty run list that would report success having done nothing.
pub const NOT_BUILT_COMMANDS: [&str; 5] = [
    "install_dependencies",
    "update_dependencies",
    "start",
    "stop",
    "restart",
];

/// Whether `command` acts on an app (and so requires `AppId`).
pub fn needs_app(command: &str) -> bool {
    APP_COMMANDS.contains(&command)
}

/// Whether a stack on Chef `chef_version` (`"12"`, `"11.10"`, ...) can run `command`.
pub fn runs_on_chef(command: &str, chef_version: &str) -> bool {
    let major = chef_version.split('.').next().unwrap_or(chef_version);
    !(major == "12" && CHEF11_ONLY_COMMANDS.contains(&command))
}

/// Whether an instance in `status` is given commands when a deployment names it or its layer:
/// an instance that is online, on its way up (its agent takes the queue once it runs), or able to
/// re-run Setup after a failure. Stopped and stopping instances are not: nothing would run them.
///
/// A deployment that names no target goes only to the stack's `online` instances, as the
/// original's did.
pub fn receives_commands(status: InstanceStatus) -> bool {
    use InstanceStatus as S;
    matches!(
        status,
        S::Requested
            | S::Pending
            | S::Booting
            | S::RunningSetup
            | S::Online
            | S::SetupFailed
            | S::Rebooting
            | S::ConnectionLost
    )
}

/// Why a command or its arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `execute_recipes` without a non-empty `recipes` list.
    #[error(
        "the execute_recipes command needs Args {{\"recipes\": [\"cookbook::recipe\", ...]}} with at least one recipe"
    )]
    NoRecipes,
    /// A recipe name that is empty or not `cookbook` / `cookbook::recipe`.
    #[error("invalid recipe name '{0}'; expected cookbook or cookbook::recipe")]
    BadRecipe(String),
    /// A flag argument (`migrate`, `allow_reboot`) that is not one `true`/`false`.
    #[error("the {0} argument takes one value, \"true\" or \"false\"")]
    BadFlag(&'static str),
    /// A command whose recipes this server does not ship yet: it would run nothing.
    #[error(
        "the {0} command runs the built-in app server and OS recipes of the original's Chef 11 layers, which this server does not ship yet; use execute_recipes with your own recipes"
    )]
    NotBuilt(String),
    /// A command of Chef 11 asked of a Chef 12 stack.
    #[error("the {command} command is not available on Chef {chef_version} stacks")]
    WrongChef {
        /// The command.
        command: String,
        /// The stack's Chef version.
        chef_version: String,
    },
}

fn valid_recipe(name: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    };
    match name.split_once("::") {
        Some((cookbook, recipe)) => part_ok(cookbook) && part_ok(recipe),
        None => part_ok(name),
    }
}

/// Checks a command's arguments (`Command.Args`, a map of string lists) and that the stack's
/// Chef version runs it.
pub fn check_command(
    command: &str,
    args: &BTreeMap<String, Vec<String>>,
    chef_version: &str,
) -> Result<(), CommandError> {
    if !runs_on_chef(command, chef_version) {
        return Err(CommandError::WrongChef {
            command: command.to_string(),
            chef_version: chef_version.to_string(),
        });
    }
    if NOT_BUILT_COMMANDS.contains(&command) {
        return Err(CommandError::NotBuilt(command.to_string()));
    }
    if command == "execute_recipes" {
        let recipes = args
            .get("recipes")
            .filter(|r| !r.is_empty())
            .ok_or(CommandError::NoRecipes)?;
        if let Some(bad) = recipes.iter().find(|r| !valid_recipe(r)) {
            return Err(CommandError::BadRecipe(bad.clone()));
        }
    }
    for flag in ["migrate", "allow_reboot"] {
        if let Some(values) = args.get(flag)
            && !matches!(values.as_slice(), [v] if v == "true" || v == "false")
        {
            return Err(CommandError::BadFlag(flag));
        }
    }
    Ok(())
}

/// The status of one command, as `Command.Status` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Queued for the instance's agent.
    Pending,
    /// Ran and succeeded.
    Successful,
    /// Ran and failed.
    Failed,
    /// Not run (the instance was not in a state to run it).
    Skipped,
    /// Replaced by a later command of the same kind before it ran (collapsed Configure storms).
    Superseded,
}

impl CommandStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Successful => "successful",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Superseded => "superseded",
        }
    }
}

impl FromStr for CommandStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Pending,
            Self::Successful,
            Self::Failed,
            Self::Skipped,
            Self::Superseded,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown command status {s}"))
    }
}

/// The status of a deployment, as `Deployment.Status` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// Some command is still pending.
    Running,
    /// Every command is done and none failed.
    Successful,
    /// Every command is done and at least one failed.
    Failed,
}

impl DeploymentStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Successful => "successful",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for DeploymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Running, Self::Successful, Self::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown deployment status {s}"))
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment's status from its commands': running while any is pending, failed if any
/// failed, successful otherwise. A deployment without commands (no target instance) is successful.
pub fn deployment_status(commands: impl IntoIterator<Item = CommandStatus>) -> DeploymentStatus {
    let mut failed = false;
    for c in commands {
        match c {
            CommandStatus::Pending => return DeploymentStatus::Running,
            CommandStatus::Failed => failed = true,
            CommandStatus::Successful | CommandStatus::Skipped | CommandStatus::Superseded => {}
        }
    }
    if failed {
        DeploymentStatus::Failed
    } else {
        DeploymentStatus::Successful
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandStatus as C;
    use DeploymentStatus as D;

    fn args(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn app_commands_need_an_app() {
        for c in APP_COMMANDS {
            assert!(needs_app(c), "{c}");
        }
        for c in STACK_COMMANDS {
            assert!(!needs_app(c), "{c}");
        }
    }

    #[test]
    fn execute_recipes_needs_recipes() {
        assert_eq!(
            check_command("execute_recipes", &args(&[]), "12"),
            Err(CommandError::NoRecipes)
        );
        assert_eq!(
            check_command("execute_recipes", &args(&[("recipes", &[])]), "12"),
            Err(CommandError::NoRecipes)
        );
        assert!(
            check_command(
                "execute_recipes",
                &args(&[("recipes", &["nginx", "app::fix"])]),
                "12"
            )
            .is_ok()
        );
        assert_eq!(
            check_command("execute_recipes", &args(&[("recipes", &["app::"])]), "12"),
            Err(CommandError::BadRecipe("app::".into()))
        );
        assert!(check_command("execute_recipes", &args(&[("recipes", &["a b"])]), "12").is_err());
    }

    #[test]
    fn flags_take_true_or_false() {
        assert!(check_command("deploy", &args(&[("migrate", &["true"])]), "12").is_ok());
        assert_eq!(
            check_command("deploy", &args(&[("migrate", &["yes"])]), "12"),
            Err(CommandError::BadFlag("migrate"))
        );
        assert!(check_command("configure", &args(&[]), "12").is_ok());
    }

    #[test]
    fn chef_11_commands_are_refused_on_chef_12() {
        assert!(check_command("update_dependencies", &args(&[]), "12").is_err());
        assert!(check_command("start", &args(&[]), "12.2").is_err());
        assert!(check_command("rollback", &args(&[]), "11.10").is_ok());
        // Our agent rolls apps back on any stack.
        assert!(check_command("rollback", &args(&[]), "12").is_ok());
        // Accepted on Chef 11 by the model, but refused until their recipes exist.
        let err = check_command("install_dependencies", &args(&[]), "11.4").unwrap_err();
        assert_eq!(err, CommandError::NotBuilt("install_dependencies".into()));
        assert!(matches!(
            check_command("restart", &args(&[]), "11.10"),
            Err(CommandError::NotBuilt(_))
        ));
        let err = check_command("restart", &args(&[]), "12").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the restart command is not available on Chef 12 stacks"
        );
    }

    #[test]
    fn deployment_status_follows_its_commands() {
        assert_eq!(deployment_status([]), D::Successful);
        assert_eq!(deployment_status([C::Pending, C::Successful]), D::Running);
        assert_eq!(deployment_status([C::Failed, C::Pending]), D::Running);
        assert_eq!(deployment_status([C::Successful, C::Failed]), D::Failed);
        assert_eq!(
            deployment_status([C::Successful, C::Skipped, C::Superseded]),
            D::Successful
        );
    }

    #[test]
    fn which_instances_receive_commands() {
        use InstanceStatus as S;
        for s in [
            S::Online,
            S::Requested,
            S::Booting,
            S::SetupFailed,
            S::ConnectionLost,
        ] {
            assert!(receives_commands(s), "{s:?}");
        }
        for s in [
            S::Stopped,
            S::Stopping,
            S::ShuttingDown,
            S::Terminated,
            S::StartFailed,
            S::Registered,
        ] {
            assert!(!receives_commands(s), "{s:?}");
        }
    }

    #[test]
    fn statuses_parse_as_spelled() {
        for c in [
            C::Pending,
            C::Successful,
            C::Failed,
            C::Skipped,
            C::Superseded,
        ] {
            assert_eq!(c.as_str().parse::<C>(), Ok(c));
        }
        assert!("done".parse::<C>().is_err());
        assert_eq!(D::Running.to_string(), "running");
    }
}

crate::serde_str::serde_as_str!(CommandStatus, DeploymentStatus);
