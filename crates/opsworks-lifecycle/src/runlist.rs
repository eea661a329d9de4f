//! Run lists per lifecycle event: the layers' built-in recipes first, then their custom ones.

use serde_json::Value;

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
    /// The member name in `DefaultRecipes` / `CustomRecipes`.
    pub fn member(self) -> &'static str {
        match self {
            Self::Setup => "Setup",
            Self::Configure => "Configure",
            Self::Deploy => "Deploy",
            Self::Undeploy => "Undeploy",
            Self::Shutdown => "Shutdown",
        }
    }

    /// The event of a command type, when the command is a lifecycle event.
    pub fn of_command(kind: &str) -> Option<Self> {
        match kind {
            "setup" => Some(Self::Setup),
            "configure" => Some(Self::Configure),
            "deploy" => Some(Self::Deploy),
            "undeploy" => Some(Self::Undeploy),
            "shutdown" => Some(Self::Shutdown),
            _ => None,
        }
    }
}

fn recipes(layer: &Value, member: &str, event: Event) -> Vec<String> {
    layer
        .get(member)
        .and_then(|r| r.get(event.member()))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The run list of `event` on an instance in `layers`: every layer's built-in recipes first, then
/// every layer's custom recipes, each recipe once (the first occurrence wins).
pub fn run_list(layers: &[&Value], event: Event) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for member in ["DefaultRecipes", "CustomRecipes"] {
        for layer in layers {
            for r in recipes(layer, member, event) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_recipes_come_first_and_each_recipe_once() {
        let a = json!({
            "DefaultRecipes": {"Setup": ["opsworks_initial_setup", "haproxy"]},
            "CustomRecipes": {"Setup": ["mine::setup"]}
        });
        let b = json!({
            "DefaultRecipes": {"Setup": ["opsworks_initial_setup"]},
            "CustomRecipes": {"Setup": ["other::setup", "mine::setup"], "Deploy": ["x"]}
        });
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
        assert_eq!(Event::of_command("configure"), Some(Event::Configure));
        assert_eq!(Event::of_command("execute_recipes"), None);
    }
}
