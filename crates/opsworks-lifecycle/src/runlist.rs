//! Run lists per lifecycle event: the layers' built-in recipes first, then their custom ones.

use opsworks_model::CommandName;
use opsworks_model::resource::{Layer, RecipeLists};

/// A lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The instance booted (or the `setup` command).
    Setup,
    /// An instance entered or left online (or the `configure` command).
    Configure,
    /// An app is deployed.
    Deploy,
    /// An app is removed.
    Undeploy,
    /// The instance is about to stop.
    Shutdown,
}

impl Event {
    /// The event of a command, when the command is a lifecycle event.
    pub fn of_command(command: CommandName) -> Option<Self> {
        match command {
            CommandName::Setup => Some(Self::Setup),
            CommandName::Configure => Some(Self::Configure),
            CommandName::Deploy => Some(Self::Deploy),
            CommandName::Undeploy => Some(Self::Undeploy),
            CommandName::Shutdown => Some(Self::Shutdown),
            _ => None,
        }
    }

    fn recipes(self, lists: &RecipeLists) -> &[String] {
        match self {
            Self::Setup => &lists.setup,
            Self::Configure => &lists.configure,
            Self::Deploy => &lists.deploy,
            Self::Undeploy => &lists.undeploy,
            Self::Shutdown => &lists.shutdown,
        }
    }
}

/// The run list of `event` on an instance in `layers`: every layer's built-in recipes first, then
/// every layer's custom recipes, each recipe once (the first occurrence wins).
pub fn run_list(layers: &[&Layer], event: Event) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let built_in = layers.iter().map(|l| &l.default_recipes);
    let custom = layers.iter().map(|l| &l.custom_recipes);
    for lists in built_in.chain(custom) {
        for r in event.recipes(lists) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use serde_json::json;

    #[test]
    fn built_in_recipes_come_first_and_each_recipe_once() {
        let a = fixtures::layer(json!({
            "DefaultRecipes": {"Setup": ["opsworks_initial_setup", "haproxy"]},
            "CustomRecipes": {"Setup": ["mine::setup"]}
        }));
        let b = fixtures::layer(json!({
            "DefaultRecipes": {"Setup": ["opsworks_initial_setup"]},
            "CustomRecipes": {"Setup": ["other::setup", "mine::setup"], "Deploy": ["x"]}
        }));
        assert_eq!(
            run_list(&[&a, &b], Event::Setup),
            vec![
                "opsworks_initial_setup",
                "haproxy",
                "mine::setup",
                "other::setup"
            ]
        );
        assert_eq!(run_list(&[&a, &b], Event::Deploy), vec!["x"]);
        assert!(run_list(&[&a], Event::Shutdown).is_empty());
    }

    #[test]
    fn command_types_map_to_events() {
        assert_eq!(
            Event::of_command(CommandName::Configure),
            Some(Event::Configure)
        );
        assert_eq!(Event::of_command(CommandName::ExecuteRecipes), None);
    }
}
