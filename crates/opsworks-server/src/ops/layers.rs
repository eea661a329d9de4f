//! Layer operations: CreateLayer, DescribeLayers, UpdateLayer, DeleteLayer, GetHostnameSuggestion.
//!
//! A layer is stored as the document DescribeLayers returns, with its secret attributes in the
//! clear (later issues hand them to the recipes); [`view`] filters them on the way out.

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Map, Value, json};

use opsworks_api::{ApiError, FILTERED};
use opsworks_model::layer::{self, LayerError, LayerType, SECRET_ATTRIBUTES};
use opsworks_model::{Arn, ResourceKind, catalog, new_id, themes};
use opsworks_store::{Filter, Kind, Write};

use super::stacks::load_stack;
use super::{
    OpResult, Req, apply, at_most_one, check_custom_json, copy_members, filter_secret, list, load,
    load_all, now, public_view, put, required_str, str_list, str_member,
};
use crate::App;

/// The length of the passwords generated for db-master, lb and monitoring-master layers.
const GENERATED_PASSWORD_LEN: usize = 24;

/// The layer as the API shows it: every attribute key present (null where unset, as AWS shows
/// them), secrets filtered, private members dropped.
pub fn view(doc: Value) -> Value {
    let mut doc = public_view(doc);
    let full = layer::full_attributes(doc.get("Attributes").and_then(Value::as_object));
    doc["Attributes"] = Value::Object(full);
    for secret in SECRET_ATTRIBUTES {
        filter_secret(&mut doc, &["Attributes", secret]);
    }
    doc
}

/// Loads a layer or answers `Unable to find layer with ID <id>`.
pub async fn load_layer(app: &App, id: &str) -> Result<Value, ApiError> {
    load(app, Kind::Layer, "layer", id).await
}

/// The type of a stored layer (`custom` for a document without one, which only a hand-edited
/// database could hold).
pub fn layer_type(doc: &Value) -> LayerType {
    doc.get("Type")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .unwrap_or(LayerType::Custom)
}

fn invalid(e: LayerError) -> ApiError {
    let msg = e.to_string();
    let mut c = msg.chars();
    let msg = c
        .next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default();
    ApiError::Validation(msg)
}

/// Checks the members CreateLayer and UpdateLayer share, for a layer of `layer_type`.
fn check_layer_members(req: &Req, layer_type: LayerType) -> Result<(), ApiError> {
    if let Some(name) = str_member(req, "Name") {
        layer::check_name(name).map_err(invalid)?;
    }
    if let Some(short) = str_member(req, "Shortname") {
        layer::check_shortname(layer_type, short).map_err(invalid)?;
    }
    if let Some(attrs) = req.get("Attributes").and_then(Value::as_object) {
        // FILTERED echoed back by an update stands for the stored secret, not a new value.
        let given: Map<String, Value> = attrs
            .iter()
            .filter(|(_, v)| v.as_str() != Some(FILTERED))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        check_attribute_values(&given)?;
    }
    check_custom_json(req)?;
    if let Some(vols) = req.get("VolumeConfigurations").and_then(Value::as_array) {
        layer::check_volumes(vols).map_err(invalid)?;
    }
    if let Some(logs) = req.get("CloudWatchLogsConfiguration") {
        layer::check_cloudwatch_logs(logs).map_err(invalid)?;
    }
    if let Some(t) = req
        .get("LifecycleEventConfiguration")
        .and_then(|l| l.pointer("/Shutdown/ExecutionTimeout"))
        .and_then(Value::as_i64)
        && t < 0
    {
        return Err(ApiError::Validation(format!(
            "LifecycleEventConfiguration.Shutdown.ExecutionTimeout must not be negative; it is {t}"
        )));
    }
    if let Some(recipes) = req.get("CustomRecipes").and_then(Value::as_object) {
        for (event, list) in recipes {
            for r in list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !is_recipe_name(r) {
                    return Err(ApiError::Validation(format!(
                        "Invalid recipe '{r}' in CustomRecipes.{event}: expected cookbook or cookbook::recipe"
                    )));
                }
            }
        }
    }
    if let Some(arn) = str_member(req, "CustomInstanceProfileArn")
        && !arn.is_empty()
        && !(arn.starts_with("arn:") && arn.split(':').count() >= 6)
    {
        return Err(ApiError::Validation(format!(
            "CustomInstanceProfileArn must be an ARN (arn:aws:iam::<account>:instance-profile/<name>); got '{arn}'"
        )));
    }
    Ok(())
}

/// The value checks of [`layer::check_attributes`] that do not depend on the layer's other
/// attributes (the ECS cluster rule is checked on the merged result).
fn check_attribute_values(attrs: &Map<String, Value>) -> Result<(), ApiError> {
    match layer::check_attributes(LayerType::Custom, attrs) {
        Ok(()) => Ok(()),
        Err(e) => Err(invalid(e)),
    }
}

/// `cookbook` or `cookbook::recipe`, each part of letters, digits, `_`, `-` and `.`.
fn is_recipe_name(r: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    match r.split_once("::") {
        Some((cookbook, recipe)) => part(cookbook) && part(recipe),
        None => part(r),
    }
}

/// Refuses a second built-in layer of the same type, or a name or short name already used by
/// another layer of the stack (`except` is the layer being updated).
fn check_unique(
    layers: &[Value],
    except: Option<&str>,
    new_type: Option<LayerType>,
    name: Option<&str>,
    shortname: Option<&str>,
) -> Result<(), ApiError> {
    for other in layers {
        if except.is_some() && other.get("LayerId").and_then(Value::as_str) == except {
            continue;
        }
        if let Some(t) = new_type
            && t.is_builtin()
            && layer_type(other) == t
        {
            return Err(ApiError::Validation(format!(
                "The stack already has a {t} layer ({}); a stack can have only one layer of each built-in type",
                other
                    .get("LayerId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )));
        }
        if let Some(n) = name
            && other.get("Name").and_then(Value::as_str) == Some(n)
        {
            return Err(ApiError::Validation(format!(
                "There is already a layer named '{n}' in this stack"
            )));
        }
        if let Some(s) = shortname
            && other.get("Shortname").and_then(Value::as_str) == Some(s)
        {
            return Err(ApiError::Validation(format!(
                "There is already a layer with the short name '{s}' in this stack"
            )));
        }
    }
    Ok(())
}

/// Completes the nested members a request may give in part: the five events of `CustomRecipes`
/// and the Shutdown settings of `LifecycleEventConfiguration`.
fn normalize(doc: &mut Map<String, Value>) {
    let mut recipes = doc
        .get("CustomRecipes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for event in ["Setup", "Configure", "Deploy", "Undeploy", "Shutdown"] {
        recipes.entry(event).or_insert(json!([]));
    }
    doc.insert("CustomRecipes".into(), Value::Object(recipes));
    let mut shutdown = doc
        .get("LifecycleEventConfiguration")
        .and_then(|l| l.get("Shutdown"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    shutdown
        .entry("ExecutionTimeout")
        .or_insert(json!(layer::DEFAULT_SHUTDOWN_TIMEOUT_SECS));
    shutdown
        .entry("DelayUntilElbConnectionsDrained")
        .or_insert(json!(false));
    doc.insert(
        "LifecycleEventConfiguration".into(),
        json!({ "Shutdown": shutdown }),
    );
}

/// Applies the request's `Attributes` to `current`: given keys replace stored ones, null or empty
/// clears them, FILTERED keeps the stored secret. Then generates the secret the type needs.
fn merge_attributes(
    layer_type: LayerType,
    current: &Map<String, Value>,
    given: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut attrs = current.clone();
    for (k, v) in given.into_iter().flatten() {
        match v.as_str() {
            Some(FILTERED) => {}
            Some(s) if !s.is_empty() => {
                attrs.insert(k.clone(), v.clone());
            }
            _ => {
                attrs.remove(k);
            }
        }
    }
    if let Some(key) = layer_type.generated_secret(&attrs) {
        attrs.insert(
            key.into(),
            json!(Alphanumeric.sample_string(&mut rand::rng(), GENERATED_PASSWORD_LEN)),
        );
    }
    attrs
}

/// CreateLayer: any of the 12 types; one layer per built-in type and unique names per stack.
pub async fn create_layer(app: &App, req: Req) -> OpResult {
    let stack_id = required_str(&req, "StackId")?.to_string();
    let layer_type: LayerType = required_str(&req, "Type")?.parse().map_err(invalid)?;
    let name = required_str(&req, "Name")?.to_string();
    let shortname = required_str(&req, "Shortname")?.to_string();
    check_layer_members(&req, layer_type)?;

    let _guard = app.write_lock().await;
    let stack = load_stack(app, &stack_id).await?;
    let layers = list(app, Kind::Layer, Filter::Stack(&stack_id)).await?;
    check_unique(
        &layers,
        None,
        Some(layer_type),
        Some(&name),
        Some(&shortname),
    )?;

    let id = new_id();
    let region = stack
        .get("Region")
        .and_then(Value::as_str)
        .unwrap_or(app.region());
    let mut doc = layer_type.defaults();
    copy_members(
        &req,
        &mut doc,
        "Layer",
        &[
            "LayerId",
            "StackId",
            "Arn",
            "CreatedAt",
            "Type",
            "DefaultRecipes",
            "DefaultSecurityGroupNames",
            "Attributes",
        ],
    );
    normalize(&mut doc);
    let defaults: Map<String, Value> = layer_type
        .default_attributes()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let attrs = merge_attributes(
        layer_type,
        &defaults,
        req.get("Attributes").and_then(Value::as_object),
    );
    layer::check_attributes(layer_type, &attrs).map_err(invalid)?;
    doc.insert("Attributes".into(), Value::Object(attrs));
    doc.insert("LayerId".into(), json!(id));
    doc.insert("StackId".into(), json!(stack_id));
    doc.insert(
        "Arn".into(),
        json!(Arn::new(region, app.account_id(), ResourceKind::Layer, &id).to_string()),
    );
    doc.insert("CreatedAt".into(), json!(now()));
    apply(
        app,
        vec![put(Kind::Layer, &id, &stack_id, None, Value::Object(doc))],
    )
    .await?;
    Ok(json!({ "LayerId": id }))
}

/// DescribeLayers: the layers of one stack, or the layers named (each must exist).
pub async fn describe_layers(app: &App, req: Req) -> OpResult {
    let layers = match at_most_one(&req, &["StackId", "LayerIds"]) {
        Ok(Some("StackId")) => {
            let id = required_str(&req, "StackId")?;
            load_stack(app, id).await?;
            list(app, Kind::Layer, Filter::Stack(id)).await?
        }
        Ok(Some(_)) => {
            load_all(
                app,
                Kind::Layer,
                "layer",
                &str_list(&req, "LayerIds").unwrap_or_default(),
            )
            .await?
        }
        Ok(None) | Err(_) => {
            return Err(ApiError::Validation(
                "Please provide one or more layer IDs or a stack ID".into(),
            ));
        }
    };
    Ok(json!({ "Layers": layers.into_iter().map(view).collect::<Vec<_>>() }))
}

/// UpdateLayer: changes the members given. The type cannot change, nor a built-in layer's short
/// name; an attribute echoed back as FILTERED keeps its stored secret.
pub async fn update_layer(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "LayerId")?.to_string();
    let _guard = app.write_lock().await;
    let old = load_layer(app, &id).await?;
    let layer_type = layer_type(&old);
    check_layer_members(&req, layer_type)?;
    let stack_id = old
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let layers = list(app, Kind::Layer, Filter::Stack(&stack_id)).await?;
    check_unique(
        &layers,
        Some(&id),
        None,
        str_member(&req, "Name"),
        str_member(&req, "Shortname"),
    )?;

    let mut doc = old.as_object().cloned().unwrap_or_default();
    copy_members(
        &req,
        &mut doc,
        "UpdateLayerRequest",
        &["LayerId", "Attributes"],
    );
    normalize(&mut doc);
    let current = old
        .get("Attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let attrs = merge_attributes(
        layer_type,
        &current,
        req.get("Attributes").and_then(Value::as_object),
    );
    layer::check_attributes(layer_type, &attrs).map_err(invalid)?;
    doc.insert("Attributes".into(), Value::Object(attrs));
    apply(
        app,
        vec![put(Kind::Layer, &id, &stack_id, None, Value::Object(doc))],
    )
    .await?;
    Ok(json!({}))
}

/// DeleteLayer: refused while any instance belongs to the layer. Its tags go with it.
pub async fn delete_layer(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "LayerId")?.to_string();
    let _guard = app.write_lock().await;
    let doc = load_layer(app, &id).await?;
    let stack_id = doc
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let members = instances_of(
        &list(app, Kind::Instance, Filter::Stack(stack_id)).await?,
        &id,
    )
    .len();
    if members > 0 {
        return Err(ApiError::Validation(format!(
            "Cannot delete a layer with instances: layer {id} has {members} instance(s); stop and delete them first"
        )));
    }
    let mut writes = vec![Write::Delete {
        kind: Kind::Layer,
        id: id.clone(),
    }];
    if let Some(arn) = doc.get("Arn").and_then(Value::as_str) {
        writes.push(Write::Delete {
            kind: Kind::Tags,
            id: arn.to_string(),
        });
    }
    apply(app, writes).await?;
    Ok(json!({}))
}

/// The instances (of one stack's list) that belong to layer `layer_id`.
pub fn instances_of<'a>(instances: &'a [Value], layer_id: &str) -> Vec<&'a Value> {
    instances
        .iter()
        .filter(|i| {
            i.get("LayerIds")
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|l| l.as_str() == Some(layer_id)))
        })
        .collect()
}

/// The next free hostname of the stack's theme for an instance of `layer`, given the stack's
/// instances.
pub fn suggest_hostname(
    stack: &Value,
    layer: &Value,
    instances: &[Value],
) -> Result<String, ApiError> {
    let theme = stack
        .get("HostnameTheme")
        .and_then(Value::as_str)
        .unwrap_or(themes::LAYER_DEPENDENT);
    let shortname = layer
        .get("Shortname")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let taken: Vec<&str> = instances
        .iter()
        .filter_map(|i| i.get("Hostname").and_then(Value::as_str))
        .collect();
    let windows = stack
        .get("DefaultOs")
        .and_then(Value::as_str)
        .and_then(catalog::operating_system)
        .is_some_and(|os| os.family == "Windows");
    let max = if windows {
        themes::MAX_WINDOWS_HOSTNAME_LEN
    } else {
        themes::MAX_HOSTNAME_LEN
    };
    themes::suggest_within(theme, shortname, &taken, max).ok_or_else(|| {
        ApiError::Validation(format!(
            "The stack's HostnameTheme {theme} is not a hostname theme"
        ))
    })
}

/// GetHostnameSuggestion: the next hostname of the stack's theme not yet used in the stack.
pub async fn get_hostname_suggestion(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "LayerId")?;
    let layer = load_layer(app, id).await?;
    let stack_id = layer
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let stack = load_stack(app, stack_id).await?;
    let instances = list(app, Kind::Instance, Filter::Stack(stack_id)).await?;
    let hostname = suggest_hostname(&stack, &layer, &instances)?;
    Ok(json!({ "LayerId": id, "Hostname": hostname }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_filters_secrets_and_lists_every_attribute() {
        let doc = json!({
            "LayerId": "l", "_private": 1,
            "Attributes": {"MysqlRootPassword": "s3cret", "HaproxyStatsUser": "opsworks", "GangliaPassword": ""},
        });
        let v = view(doc);
        assert_eq!(v["Attributes"]["MysqlRootPassword"], json!(FILTERED));
        assert_eq!(v["Attributes"]["HaproxyStatsUser"], json!("opsworks"));
        assert_eq!(v["Attributes"]["GangliaPassword"], json!(""));
        assert_eq!(v["Attributes"]["RubyVersion"], Value::Null);
        assert!(v.get("_private").is_none());
    }

    #[test]
    fn attributes_merge_keeps_filtered_secrets_and_generates_missing_ones() {
        let current = json!({"MysqlRootPassword": "old", "MysqlRootPasswordUbiquitous": "true"});
        let given = json!({"MysqlRootPassword": FILTERED, "MysqlRootPasswordUbiquitous": null});
        let merged = merge_attributes(
            LayerType::DbMaster,
            current.as_object().unwrap(),
            given.as_object(),
        );
        assert_eq!(merged.get("MysqlRootPassword"), Some(&json!("old")));
        assert!(!merged.contains_key("MysqlRootPasswordUbiquitous"));
        let fresh = merge_attributes(LayerType::DbMaster, &Map::new(), None);
        let pw = fresh["MysqlRootPassword"].as_str().unwrap();
        assert_eq!(pw.len(), GENERATED_PASSWORD_LEN);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
        let other = merge_attributes(LayerType::DbMaster, &Map::new(), None);
        assert_ne!(other["MysqlRootPassword"], fresh["MysqlRootPassword"]);
    }

    #[test]
    fn recipe_names() {
        assert!(is_recipe_name("app"));
        assert!(is_recipe_name("app::deploy"));
        assert!(is_recipe_name("my-cookbook::web_setup"));
        assert!(!is_recipe_name("app::"));
        assert!(!is_recipe_name("::x"));
        assert!(!is_recipe_name("rm -rf"));
        assert!(!is_recipe_name(""));
    }

    #[test]
    fn uniqueness_rules() {
        let layers = vec![
            json!({"LayerId": "a", "Type": "lb", "Name": "LB", "Shortname": "lb"}),
            json!({"LayerId": "b", "Type": "custom", "Name": "Workers", "Shortname": "workers"}),
        ];
        assert!(check_unique(&layers, None, Some(LayerType::Lb), Some("LB2"), Some("lb")).is_err());
        assert!(
            check_unique(
                &layers,
                None,
                Some(LayerType::Custom),
                Some("W2"),
                Some("w2")
            )
            .is_ok()
        );
        assert!(
            check_unique(
                &layers,
                None,
                Some(LayerType::Custom),
                Some("Workers"),
                Some("w2")
            )
            .is_err()
        );
        assert!(
            check_unique(
                &layers,
                None,
                Some(LayerType::Custom),
                Some("W2"),
                Some("workers")
            )
            .is_err()
        );
        // A layer does not clash with itself.
        assert!(check_unique(&layers, Some("b"), None, Some("Workers"), Some("workers")).is_ok());
    }

    #[test]
    fn membership() {
        let insts = vec![
            json!({"InstanceId": "1", "LayerIds": ["a", "b"]}),
            json!({"InstanceId": "2", "LayerIds": ["b"]}),
        ];
        assert_eq!(instances_of(&insts, "a").len(), 1);
        assert_eq!(instances_of(&insts, "b").len(), 2);
        assert!(instances_of(&insts, "c").is_empty());
    }
}
