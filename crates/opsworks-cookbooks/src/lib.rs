//! The built-in cookbooks: the recipes the layers run before their custom ones (`DefaultRecipes`),
//! written in our own recipe language and embedded in the binary, so an agent needs nothing
//! but the binary. They are also the examples a user reads first.

use std::path::Path;

use include_dir::{Dir, include_dir};

static COOKBOOKS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/cookbooks");

/// The names of the built-in cookbooks.
pub fn names() -> Vec<&'static str> {
    COOKBOOKS
        .dirs()
        .filter_map(|d| d.path().file_name()?.to_str())
        .collect()
}

/// Whether `recipe` (`cookbook` or `cookbook::recipe`) is built in.
pub fn has_recipe(recipe: &str) -> bool {
    let (cookbook, name) = recipe.split_once("::").unwrap_or((recipe, "default"));
    COOKBOOKS
        .get_file(format!("{cookbook}/recipes/{name}.star"))
        .is_some()
}

/// Writes the built-in cookbooks under `dir` (one folder per cookbook), replacing what was there,
/// so an agent always runs the cookbooks of its own binary.
pub fn extract(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    COOKBOOKS.extract(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_recipes_are_built_in_and_extract() {
        for r in [
            "opsworks_initial_setup",
            "ssh_host_keys",
            "ssh_users",
            "opsworks_stack_state_sync",
            "dependencies",
            "deploy::default",
        ] {
            assert!(has_recipe(r), "{r}");
        }
        assert!(!has_recipe("haproxy::configure") || names().contains(&"haproxy"));
        assert!(!has_recipe("nope"));
        let dir = tempfile::tempdir().unwrap();
        extract(&dir.path().join("cb")).unwrap();
        let hosts = dir
            .path()
            .join("cb/opsworks_stack_state_sync/templates/hosts.j2");
        assert!(hosts.exists());
        // Extracting again replaces, it does not fail or merge.
        extract(&dir.path().join("cb")).unwrap();
    }

    /// The layers this server runs have every built-in recipe shipped; the ones it does not run
    /// yet miss some, so StartInstance refuses their instances (`check_builtin_recipes`).
    #[test]
    fn shipped_layers_have_all_their_recipes_and_the_others_do_not() {
        use opsworks_model::layer::LayerType;
        let missing = |t: LayerType| -> Vec<&'static str> {
            let r = t.default_recipes();
            [r.setup, r.configure, r.deploy, r.undeploy, r.shutdown]
                .concat()
                .into_iter()
                .filter(|r| !has_recipe(r))
                .collect()
        };
        for t in [
            LayerType::Lb,
            LayerType::NodejsApp,
            LayerType::DbMaster,
            LayerType::Memcached,
            LayerType::Custom,
        ] {
            assert_eq!(missing(t), Vec::<&str>::new(), "{t}");
        }
        for t in [
            LayerType::RailsApp,
            LayerType::JavaApp,
            LayerType::MonitoringMaster,
            LayerType::EcsCluster,
            LayerType::AwsFlowRuby,
        ] {
            assert!(!missing(t).is_empty(), "{t} should not be startable yet");
        }
    }
}
