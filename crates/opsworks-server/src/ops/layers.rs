//! Layer operations: CreateLayer, DescribeLayers, UpdateLayer, DeleteLayer, GetHostnameSuggestion.
//!
//! A layer keeps its secret attributes in the clear (the recipes need them); the wire view
//! filters them.

use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;

use opsworks_api::{ApiError, FILTERED, shapes};
use opsworks_model::layer::{self, Attributes, LayerError, LayerType};
use opsworks_model::resource::{
    CloudWatchLogsConfiguration, Instance, Layer, LifecycleEventConfiguration, RecipeLists, Stack,
    VolumeConfiguration,
};
use opsworks_model::{Arn, Kind, ResourceKind, catalog, new_id, themes};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, capitalized, check_custom_json, wire};
use crate::core::now;

const GENERATED_PASSWORD_LEN: usize = 24;

fn invalid(e: LayerError) -> ApiError {
    ApiError::Validation(capitalized(e))
}

/// A stored value object from its request shape (the two have the same members by construction).
fn stored<T: serde::Serialize, U: serde::de::DeserializeOwned>(v: &T) -> Result<U, ApiError> {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::Validation(e.to_string()))
}

/// The members CreateLayer and UpdateLayer share, as one request gives them.
struct Members {
    name: Option<String>,
    shortname: Option<String>,
    attributes: Option<Attributes>,
    custom_json: Option<String>,
    volume_configurations: Option<Vec<VolumeConfiguration>>,
    cloud_watch_logs_configuration: Option<CloudWatchLogsConfiguration>,
    lifecycle_event_configuration: Option<LifecycleEventConfiguration>,
    custom_recipes: Option<RecipeLists>,
    custom_instance_profile_arn: Option<String>,
    custom_security_group_ids: Option<Vec<String>>,
    packages: Option<Vec<String>>,
    enable_auto_healing: Option<bool>,
    auto_assign_elastic_ips: Option<bool>,
    auto_assign_public_ips: Option<bool>,
    install_updates_on_boot: Option<bool>,
    use_ebs_optimized_instances: Option<bool>,
}

macro_rules! members {
    ($req:expr) => {
        Members {
            name: $req.name.clone().into(),
            shortname: $req.shortname.clone().into(),
            attributes: $req.attributes.clone(),
            custom_json: $req.custom_json.clone(),
            volume_configurations: $req
                .volume_configurations
                .as_ref()
                .map(|v| v.iter().map(stored).collect::<Result<Vec<_>, _>>())
                .transpose()?,
            cloud_watch_logs_configuration: $req
                .cloud_watch_logs_configuration
                .as_ref()
                .map(stored)
                .transpose()?,
            lifecycle_event_configuration: $req
                .lifecycle_event_configuration
                .as_ref()
                .map(stored)
                .transpose()?,
            custom_recipes: $req.custom_recipes.as_ref().map(stored).transpose()?,
            custom_instance_profile_arn: $req.custom_instance_profile_arn.clone(),
            custom_security_group_ids: $req.custom_security_group_ids.clone(),
            packages: $req.packages.clone(),
            enable_auto_healing: $req.enable_auto_healing,
            auto_assign_elastic_ips: $req.auto_assign_elastic_ips,
            auto_assign_public_ips: $req.auto_assign_public_ips,
            install_updates_on_boot: $req.install_updates_on_boot,
            use_ebs_optimized_instances: $req.use_ebs_optimized_instances,
        }
    };
}

fn check_members(m: &Members, layer_type: LayerType) -> Result<(), ApiError> {
    if let Some(name) = m.name.as_deref() {
        layer::check_name(name).map_err(invalid)?;
    }
    if let Some(short) = m.shortname.as_deref() {
        layer::check_shortname(layer_type, short).map_err(invalid)?;
    }
    if let Some(attrs) = &m.attributes {
        // FILTERED echoed back by an update stands for the stored secret, not a new value.
        let given: Attributes = attrs
            .iter()
            .filter(|(_, v)| v.as_deref() != Some(FILTERED))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        layer::check_attributes(LayerType::Custom, &given).map_err(invalid)?;
    }
    check_custom_json(m.custom_json.as_deref())?;
    if let Some(vols) = &m.volume_configurations {
        layer::check_volumes(vols).map_err(invalid)?;
        crate::core::volumes::check_buildable(vols).map_err(ApiError::Validation)?;
    }
    if let Some(logs) = &m.cloud_watch_logs_configuration {
        layer::check_cloudwatch_logs(logs).map_err(invalid)?;
    }
    if let Some(t) = m
        .lifecycle_event_configuration
        .as_ref()
        .and_then(|l| l.shutdown.execution_timeout)
        && t < 0
    {
        return Err(ApiError::Validation(format!(
            "LifecycleEventConfiguration.Shutdown.ExecutionTimeout must not be negative; it is {t}"
        )));
    }
    if let Some(recipes) = &m.custom_recipes {
        for (event, list) in [
            ("Setup", &recipes.setup),
            ("Configure", &recipes.configure),
            ("Deploy", &recipes.deploy),
            ("Undeploy", &recipes.undeploy),
            ("Shutdown", &recipes.shutdown),
        ] {
            if let Some(r) = list.iter().find(|r| !is_recipe_name(r)) {
                return Err(ApiError::Validation(format!(
                    "Invalid recipe '{r}' in CustomRecipes.{event}: expected cookbook or cookbook::recipe"
                )));
            }
        }
    }
    if let Some(arn) = m.custom_instance_profile_arn.as_deref()
        && !arn.is_empty()
        && !(arn.starts_with("arn:") && arn.split(':').count() >= 6)
    {
        return Err(ApiError::Validation(format!(
            "CustomInstanceProfileArn must be an ARN (arn:aws:iam::<account>:instance-profile/<name>); got '{arn}'"
        )));
    }
    Ok(())
}

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

fn check_unique(
    layers: &[Layer],
    except: Option<&str>,
    new_type: Option<LayerType>,
    name: Option<&str>,
    shortname: Option<&str>,
) -> Result<(), ApiError> {
    for other in layers {
        if except == Some(other.layer_id.as_str()) {
            continue;
        }
        if let Some(t) = new_type
            && t.is_builtin()
            && other.r#type == t
        {
            return Err(ApiError::Validation(format!(
                "The stack already has a {t} layer ({}); a stack can have only one layer of each built-in type",
                other.layer_id
            )));
        }
        if let Some(n) = name
            && other.name == n
        {
            return Err(ApiError::Validation(format!(
                "There is already a layer named '{n}' in this stack"
            )));
        }
        if let Some(s) = shortname
            && other.shortname == s
        {
            return Err(ApiError::Validation(format!(
                "There is already a layer with the short name '{s}' in this stack"
            )));
        }
    }
    Ok(())
}

/// Merges given attributes into `current`: a value replaces, empty or null removes, FILTERED keeps
/// the stored secret; a secret the type needs and lacks is generated.
fn merge_attributes(
    layer_type: LayerType,
    current: &Attributes,
    given: Option<&Attributes>,
) -> Attributes {
    let mut attrs = current.clone();
    for (k, v) in given.into_iter().flatten() {
        match v.as_deref() {
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
            Some(Alphanumeric.sample_string(&mut rand::rng(), GENERATED_PASSWORD_LEN)),
        );
    }
    attrs
}

/// Applies the members given (attributes apart) to `layer`.
fn apply_members(layer: &mut Layer, m: Members) {
    if let Some(v) = m.name {
        layer.name = v;
    }
    if let Some(v) = m.shortname {
        layer.shortname = v;
    }
    if m.custom_json.is_some() {
        layer.custom_json = m.custom_json;
    }
    if let Some(v) = m.volume_configurations {
        layer.volume_configurations = v;
    }
    if m.cloud_watch_logs_configuration.is_some() {
        layer.cloud_watch_logs_configuration = m.cloud_watch_logs_configuration;
    }
    if let Some(l) = m.lifecycle_event_configuration {
        // A Shutdown section given without one of its members keeps the default of it.
        let defaults = LifecycleEventConfiguration::default().shutdown;
        layer
            .lifecycle_event_configuration
            .shutdown
            .execution_timeout = l.shutdown.execution_timeout.or(defaults.execution_timeout);
        layer
            .lifecycle_event_configuration
            .shutdown
            .delay_until_elb_connections_drained = l
            .shutdown
            .delay_until_elb_connections_drained
            .or(defaults.delay_until_elb_connections_drained);
    }
    if let Some(v) = m.custom_recipes {
        layer.custom_recipes = v;
    }
    if m.custom_instance_profile_arn.is_some() {
        layer.custom_instance_profile_arn = m.custom_instance_profile_arn;
    }
    if let Some(v) = m.custom_security_group_ids {
        layer.custom_security_group_ids = v;
    }
    if let Some(v) = m.packages {
        layer.packages = v;
    }
    macro_rules! flags {
        ($($f:ident),*) => {$( if let Some(v) = m.$f { layer.$f = v; } )*};
    }
    flags!(
        enable_auto_healing,
        auto_assign_elastic_ips,
        auto_assign_public_ips,
        install_updates_on_boot,
        use_ebs_optimized_instances
    );
}

/// CreateLayer.
pub async fn create_layer(cx: Ctx<'_>, req: shapes::CreateLayerRequest) -> OpResult {
    let layer_type: LayerType = req.r#type.parse().map_err(invalid)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::Validation("Name must not be empty".into()));
    }
    let m = members!(req);
    check_members(&m, layer_type)?;
    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&req.stack_id).await?;
    let layers: Vec<Layer> = w.list(Filter::Stack(&req.stack_id)).await?;
    check_unique(
        &layers,
        None,
        Some(layer_type),
        Some(&req.name),
        Some(&req.shortname),
    )?;
    let id = new_id();
    let arn = Arn::new(
        &stack.region,
        cx.core.account_id(),
        ResourceKind::Layer,
        &id,
    )
    .to_string();
    let mut layer = Layer::with_defaults(layer_type, id.clone(), req.stack_id.clone(), arn, now());
    let given_attributes = m.attributes.clone();
    apply_members(&mut layer, m);
    let defaults: Attributes = layer_type
        .default_attributes()
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
    layer.attributes = merge_attributes(layer_type, &defaults, given_attributes.as_ref());
    layer::check_attributes(layer_type, &layer.attributes).map_err(invalid)?;
    w.put(&layer).await?;
    w.commit().await?;
    Reply::json(&json!({ "LayerId": id }))
}

/// DescribeLayers: the layers of a stack, or those named.
pub async fn describe_layers(cx: Ctx<'_>, req: shapes::DescribeLayersRequest) -> OpResult {
    let layers = match (req.stack_id.as_deref(), req.layer_ids.as_deref()) {
        (Some(id), None) => {
            cx.core.get::<Stack>(id).await?;
            cx.core.list::<Layer>(Filter::Stack(id)).await?
        }
        (None, Some(ids)) => cx.core.get_all::<Layer>(ids).await?,
        _ => {
            return Err(ApiError::Validation(
                "Please provide one or more layer IDs or a stack ID".into(),
            ));
        }
    };
    Ok(Reply::list(
        "Layers",
        layers
            .iter()
            .map(|l| l.wire(|l| wire::bytes(&wire::layer(l)))),
    ))
}

/// UpdateLayer: the members given replace the stored ones; attributes merge key by key.
pub async fn update_layer(cx: Ctx<'_>, req: shapes::UpdateLayerRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let mut layer: Layer = w.get(&req.layer_id).await?;
    let layer_type = layer.r#type;
    let m = members!(req);
    check_members(&m, layer_type)?;
    let layers: Vec<Layer> = w.list(Filter::Stack(&layer.stack_id)).await?;
    check_unique(
        &layers,
        Some(&req.layer_id),
        None,
        req.name.as_deref(),
        req.shortname.as_deref(),
    )?;
    let given_attributes = m.attributes.clone();
    apply_members(&mut layer, m);
    layer.attributes = merge_attributes(layer_type, &layer.attributes, given_attributes.as_ref());
    layer::check_attributes(layer_type, &layer.attributes).map_err(invalid)?;
    w.put(&layer).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DeleteLayer: only a layer without instances; its tags go with it.
pub async fn delete_layer(cx: Ctx<'_>, req: shapes::DeleteLayerRequest) -> OpResult {
    let id = req.layer_id;
    let mut w = cx.core.write().await?;
    let layer: Layer = w.get(&id).await?;
    let instances: Vec<Instance> = w.list(Filter::Stack(&layer.stack_id)).await?;
    let members = instances.iter().filter(|i| i.in_layer(&id)).count();
    if members > 0 {
        return Err(ApiError::Validation(format!(
            "Cannot delete a layer with instances: layer {id} has {members} instance(s); stop and delete them first"
        )));
    }
    w.delete(Kind::Layer, &id).await?;
    w.delete(Kind::Tags, &layer.arn).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// The next free hostname of the stack's theme for an instance of `layer`, given the stack's
/// instances.
pub fn suggest_hostname<I: std::ops::Deref<Target = Instance>>(
    stack: &Stack,
    layer: &Layer,
    instances: &[I],
) -> Result<String, ApiError> {
    let taken: Vec<&str> = instances.iter().map(|i| i.hostname.as_str()).collect();
    let windows =
        catalog::operating_system(&stack.default_os).is_some_and(|os| os.family == "Windows");
    let max = if windows {
        themes::MAX_WINDOWS_HOSTNAME_LEN
    } else {
        themes::MAX_HOSTNAME_LEN
    };
    themes::suggest_within(&stack.hostname_theme, &layer.shortname, &taken, max).ok_or_else(|| {
        ApiError::Validation(format!(
            "The stack's HostnameTheme {} is not a hostname theme",
            stack.hostname_theme
        ))
    })
}

/// GetHostnameSuggestion: the next hostname of the stack's theme not yet used in the stack.
pub async fn get_hostname_suggestion(
    cx: Ctx<'_>,
    req: shapes::GetHostnameSuggestionRequest,
) -> OpResult {
    let layer = cx.core.get::<Layer>(&req.layer_id).await?;
    let stack = cx.core.get::<Stack>(&layer.stack_id).await?;
    let instances = cx
        .core
        .list::<Instance>(Filter::Stack(&layer.stack_id))
        .await?;
    let hostname = suggest_hostname(&stack, &layer, &instances)?;
    Reply::json(&json!({ "LayerId": req.layer_id, "Hostname": hostname }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_merge_keeps_filtered_secrets_and_generates_missing_ones() {
        let current: Attributes = [
            ("MysqlRootPassword".to_string(), Some("old".to_string())),
            (
                "MysqlRootPasswordUbiquitous".to_string(),
                Some("true".to_string()),
            ),
        ]
        .into();
        let given: Attributes = [
            ("MysqlRootPassword".to_string(), Some(FILTERED.to_string())),
            ("MysqlRootPasswordUbiquitous".to_string(), None),
        ]
        .into();
        let merged = merge_attributes(LayerType::DbMaster, &current, Some(&given));
        assert_eq!(merged["MysqlRootPassword"].as_deref(), Some("old"));
        assert!(!merged.contains_key("MysqlRootPasswordUbiquitous"));
        let fresh = merge_attributes(LayerType::DbMaster, &Attributes::new(), None);
        let pw = fresh["MysqlRootPassword"].clone().unwrap();
        assert_eq!(pw.len(), GENERATED_PASSWORD_LEN);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
        let other = merge_attributes(LayerType::DbMaster, &Attributes::new(), None);
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
}
