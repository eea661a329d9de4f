//! App operations: CreateApp, DescribeApps, UpdateApp, DeleteApp.
//!
//! An app is stored as the `App` shape the API returns, secrets in the clear; [`view`] filters
//! them (`AppSource.Password`, `AppSource.SshKey`, `SslConfiguration.PrivateKey` and every secure
//! environment value) on the way out, and an update that echoes the FILTERED marker back keeps
//! the stored secret.

use serde_json::{Map, Value, json};

use opsworks_api::{ApiError, FILTERED};
use opsworks_model::app::{self as rules, EnvVar};
use opsworks_model::new_id;
use opsworks_store::{Filter, Kind, Write};

use super::stacks::load_stack;
use super::{
    OpResult, Req, apply, check_len, copy_members, filter_secret, keep_filtered_secret, list, load,
    load_all, now, public_view, put, required_str, str_list, str_member,
};
use crate::App;

/// The secrets of an app outside its environment, as paths into the document.
const SECRET_PATHS: [&[&str]; 3] = [
    &["AppSource", "Password"],
    &["AppSource", "SshKey"],
    &["SslConfiguration", "PrivateKey"],
];

/// The app as the API shows it: secrets and secure environment values filtered.
pub fn view(doc: Value) -> Value {
    let mut doc = public_view(doc);
    for path in SECRET_PATHS {
        filter_secret(&mut doc, path);
    }
    if let Some(env) = doc.get_mut("Environment").and_then(Value::as_array_mut) {
        for var in env {
            if var.get("Secure").and_then(Value::as_bool) == Some(true) {
                var["Value"] = json!(FILTERED);
            }
        }
    }
    doc
}

/// Loads an app or answers `Unable to find app with ID <id>`.
pub async fn load_app(app: &App, id: &str) -> Result<Value, ApiError> {
    load(app, Kind::App, "app", id).await
}

fn invalid(e: rules::AppError) -> ApiError {
    ApiError::Validation(e.to_string())
}

fn non_empty_member(obj: &Value, name: &str) -> bool {
    obj.get(name)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// Checks the members CreateApp and UpdateApp share, as given in the request.
fn check_request(req: &Req) -> Result<(), ApiError> {
    if let Some(name) = str_member(req, "Name")
        && name.trim().is_empty()
    {
        return Err(ApiError::Validation("Name must not be empty".into()));
    }
    // AWS documents no limit for app names; this bound is ours, to keep names displayable.
    check_len(req, "Name", 255)?;
    if let Some(src) = req
        .get("AppSource")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
    {
        if !non_empty_member(src, "Type") {
            return Err(ApiError::Validation(
                "AppSource.Type is required when an app source is given (git, svn, archive or s3)"
                    .into(),
            ));
        }
        if !non_empty_member(src, "Url") {
            return Err(ApiError::Validation(
                "AppSource.Url is required when an app source is given".into(),
            ));
        }
    }
    if let Some(sources) = req.get("DataSources").and_then(Value::as_array) {
        let pairs: Vec<(Option<&str>, Option<&str>)> = sources
            .iter()
            .map(|s| {
                (
                    s.get("Type").and_then(Value::as_str),
                    s.get("Arn").and_then(Value::as_str),
                )
            })
            .collect();
        rules::check_data_sources(&pairs).map_err(invalid)?;
    }
    for domain in str_list(req, "Domains").unwrap_or_default() {
        if domain.trim().is_empty() || domain.chars().any(char::is_whitespace) || domain.len() > 253
        {
            return Err(ApiError::Validation(format!(
                "Domains: invalid domain '{domain}'"
            )));
        }
    }
    if let Some(ssl) = req.get("SslConfiguration") {
        for member in ["Certificate", "PrivateKey"] {
            if !non_empty_member(ssl, member) {
                return Err(ApiError::Validation(format!(
                    "SslConfiguration.{member} must not be empty"
                )));
            }
        }
    }
    Ok(())
}

/// Checks what only the whole app can tell: SSL needs its configuration; the environment's rules.
fn check_app(doc: &Value) -> Result<(), ApiError> {
    let ssl = doc.get("EnableSsl").and_then(Value::as_bool) == Some(true);
    let configured = doc
        .get("SslConfiguration")
        .is_some_and(|c| non_empty_member(c, "Certificate") && non_empty_member(c, "PrivateKey"));
    if ssl && !configured {
        return Err(ApiError::Validation(
            "EnableSsl requires an SslConfiguration with a Certificate and a PrivateKey".into(),
        ));
    }
    let env = doc
        .get("Environment")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let vars: Vec<EnvVar<'_>> = env
        .iter()
        .map(|v| EnvVar {
            key: v.get("Key").and_then(Value::as_str).unwrap_or_default(),
            value: v.get("Value").and_then(Value::as_str).unwrap_or_default(),
            secure: v.get("Secure").and_then(Value::as_bool).unwrap_or(false),
        })
        .collect();
    rules::check_environment(&vars).map_err(invalid)
}

/// Rewrites the environment as `{Key, Value, Secure}` with `Secure` always present, as AWS shows it.
fn normalize_environment(doc: &mut Value) {
    if let Some(env) = doc.get_mut("Environment").and_then(Value::as_array_mut) {
        for var in env.iter_mut() {
            *var = json!({
                "Key": var.get("Key").cloned().unwrap_or(Value::Null),
                "Value": var.get("Value").cloned().unwrap_or(Value::Null),
                "Secure": var.get("Secure").and_then(Value::as_bool).unwrap_or(false),
            });
        }
    }
}

/// Puts back, by key, the stored value of each environment variable the request echoes as FILTERED.
fn keep_filtered_environment(new: &mut Value, old: &Value) -> Result<(), ApiError> {
    let Some(env) = new.get_mut("Environment").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let old_env = old
        .get("Environment")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for var in env.iter_mut() {
        if var.get("Value").and_then(Value::as_str) != Some(FILTERED) {
            continue;
        }
        let key = var
            .get("Key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let stored = old_env
            .iter()
            .find(|o| o.get("Key").and_then(Value::as_str) == Some(key.as_str()));
        match stored.and_then(|o| o.get("Value")) {
            Some(value) => var["Value"] = value.clone(),
            None => {
                return Err(ApiError::Validation(format!(
                    "Environment: {key} has the value {FILTERED}, which only stands for the stored value of an existing variable; give its real value"
                )));
            }
        }
    }
    Ok(())
}

/// CreateApp: an app in a stack; its short name is derived from the name unless given, unique
/// in the stack, and never changes.
pub async fn create_app(app: &App, req: Req) -> OpResult {
    let stack_id = required_str(&req, "StackId")?.to_string();
    required_str(&req, "Name")?;
    check_request(&req)?;
    if let Some(short) = str_member(&req, "Shortname") {
        rules::check_shortname(short).map_err(invalid)?;
    }
    let _guard = app.write_lock().await;
    load_stack(app, &stack_id).await?;
    let others = list(app, Kind::App, Filter::Stack(&stack_id)).await?;
    let taken: Vec<&str> = others
        .iter()
        .filter_map(|a| a.get("Shortname").and_then(Value::as_str))
        .collect();
    let shortname = match str_member(&req, "Shortname") {
        Some(given) if taken.contains(&given) => {
            return Err(ApiError::Validation(format!(
                "There is already an app with the short name {given} in this stack"
            )));
        }
        Some(given) => given.to_string(),
        None => rules::unique_shortname(
            &rules::shortname_from_name(str_member(&req, "Name").unwrap_or_default()),
            &taken,
        ),
    };

    let id = new_id();
    let mut doc = Map::new();
    copy_members(&req, &mut doc, "App", &["AppId", "Shortname", "CreatedAt"]);
    doc.insert("AppId".into(), json!(id));
    doc.insert("Shortname".into(), json!(shortname));
    doc.entry("EnableSsl").or_insert(json!(false));
    doc.entry("SslConfiguration").or_insert(json!({}));
    doc.entry("DataSources").or_insert(json!([]));
    doc.entry("Domains").or_insert(json!([]));
    doc.entry("Environment").or_insert(json!([]));
    doc.entry("AppSource").or_insert(json!({}));
    // The original's defaults for the attributes the request leaves out.
    let mut attributes = json!({"DocumentRoot": null, "RailsEnv": null, "AutoBundleOnDeploy": "true", "AwsFlowRubySettings": null});
    if let (Some(given), Some(out)) = (
        req.get("Attributes").and_then(Value::as_object),
        attributes.as_object_mut(),
    ) {
        out.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    doc.insert("Attributes".into(), attributes);
    doc.insert("CreatedAt".into(), json!(now()));
    let mut doc = Value::Object(doc);
    normalize_environment(&mut doc);
    check_app(&doc)?;
    apply(app, vec![put(Kind::App, &id, &stack_id, None, doc)]).await?;
    tracing::info!(app_id = %id, stack_id = %stack_id, "app created");
    Ok(json!({ "AppId": id }))
}

/// DescribeApps: the apps of a stack, or those named (each must exist). Exactly one of the two
/// is given, as the original required.
pub async fn describe_apps(app: &App, req: Req) -> OpResult {
    let stack_id = str_member(&req, "StackId");
    let app_ids = str_list(&req, "AppIds");
    let apps = match (stack_id, app_ids) {
        (Some(stack_id), None) => {
            load_stack(app, stack_id).await?;
            list(app, Kind::App, Filter::Stack(stack_id)).await?
        }
        (None, Some(ids)) => load_all(app, Kind::App, "app", &ids).await?,
        _ => {
            return Err(ApiError::Validation(
                "Please provide one or more app IDs or a stack ID".into(),
            ));
        }
    };
    Ok(json!({ "Apps": apps.into_iter().map(view).collect::<Vec<_>>() }))
}

/// UpdateApp: changes the members given (each replaces the stored one whole); the short name and
/// the stack never change. Secrets echoed back as FILTERED keep their stored values.
pub async fn update_app(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "AppId")?.to_string();
    check_request(&req)?;
    let _guard = app.write_lock().await;
    let old = load_app(app, &id).await?;
    let mut doc = old.clone();
    if let Some(m) = doc.as_object_mut() {
        copy_members(&req, m, "UpdateAppRequest", &["AppId"]);
    }
    for path in SECRET_PATHS {
        keep_filtered_secret(&mut doc, &old, path);
    }
    keep_filtered_environment(&mut doc, &old)?;
    normalize_environment(&mut doc);
    check_app(&doc)?;
    let stack_id = doc
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    apply(app, vec![put(Kind::App, &id, &stack_id, None, doc)]).await?;
    Ok(json!({}))
}

/// Whether some app of the stack has environment variables. The original then refuses to change
/// the stack's Chef version ("If you have specified one or more environment variables, you cannot
/// modify the stack's Chef version"); UpdateStack asks this.
pub async fn stack_has_app_environment(app: &App, stack_id: &str) -> Result<bool, ApiError> {
    let apps = list(app, Kind::App, Filter::Stack(stack_id)).await?;
    Ok(apps.iter().any(|a| {
        a.get("Environment")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty())
    }))
}

/// DeleteApp: removes the app (its deployments stay, as history), then asks its instances to
/// undeploy it through [`undeploy_deleted_app`].
pub async fn delete_app(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "AppId")?.to_string();
    let _guard = app.write_lock().await;
    let doc = load_app(app, &id).await?;
    apply(
        app,
        vec![Write::Delete {
            kind: Kind::App,
            id: id.clone(),
        }],
    )
    .await?;
    undeploy_deleted_app(app, &doc).await?;
    Ok(json!({}))
}

/// The hook DeleteApp calls once the app is gone: as in the original, Undeploy runs on the stack's
/// online instances. The deployment carries the deleted app (privately), so their agents still
/// know what to remove.
pub async fn undeploy_deleted_app(app: &App, deleted: &Value) -> Result<(), ApiError> {
    let app_id = deleted
        .get("AppId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let stack_id = deleted
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let online: Vec<String> = list(app, Kind::Instance, Filter::Stack(stack_id))
        .await?
        .iter()
        .filter(|i| i.get("Status").and_then(Value::as_str) == Some("online"))
        .filter_map(|i| {
            i.get("InstanceId")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    if online.is_empty() {
        return Ok(());
    }
    let mut extra = serde_json::Map::new();
    extra.insert("AppId".into(), json!(app_id));
    extra.insert("_App".into(), deleted.clone());
    crate::lifecycle::create_deployment_carrying(
        app,
        stack_id,
        "undeploy",
        &online,
        "app-deleted",
        extra,
    )
    .await?;
    tracing::info!(
        app_id,
        stack_id,
        instances = online.len(),
        "app deleted; undeploy sent to the online instances"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::catalog::tests::{call, open, stack_with_instance};

    #[test]
    fn view_filters_every_secret() {
        let doc = json!({
            "AppId": "a", "_private": 1,
            "AppSource": {"Url": "u", "Password": "pw", "SshKey": "key", "Username": "me"},
            "SslConfiguration": {"Certificate": "cert", "PrivateKey": "pk"},
            "Environment": [{"Key": "S", "Value": "hidden", "Secure": true}, {"Key": "P", "Value": "shown", "Secure": false}],
        });
        let v = view(doc);
        assert_eq!(v["AppSource"]["Password"], json!(FILTERED));
        assert_eq!(v["AppSource"]["SshKey"], json!(FILTERED));
        assert_eq!(v["AppSource"]["Username"], json!("me"));
        assert_eq!(v["SslConfiguration"]["PrivateKey"], json!(FILTERED));
        assert_eq!(v["SslConfiguration"]["Certificate"], json!("cert"));
        assert_eq!(v["Environment"][0]["Value"], json!(FILTERED));
        assert_eq!(v["Environment"][1]["Value"], json!("shown"));
        assert!(v.get("_private").is_none());
    }

    #[test]
    fn echoed_filtered_environment_values_keep_the_stored_ones_by_key() {
        let old = json!({"Environment": [{"Key": "A", "Value": "a-secret", "Secure": true}, {"Key": "B", "Value": "b"}]});
        let mut new = json!({"Environment": [{"Key": "B", "Value": "b2"}, {"Key": "A", "Value": FILTERED, "Secure": true}]});
        keep_filtered_environment(&mut new, &old).expect("keeps");
        assert_eq!(new["Environment"][1]["Value"], json!("a-secret"));
        assert_eq!(new["Environment"][0]["Value"], json!("b2"));
        let mut unknown = json!({"Environment": [{"Key": "C", "Value": FILTERED}]});
        assert!(matches!(
            keep_filtered_environment(&mut unknown, &old),
            Err(ApiError::Validation(_))
        ));
    }

    #[test]
    fn ssl_needs_its_configuration() {
        assert!(check_app(&json!({"EnableSsl": true})).is_err());
        assert!(check_app(&json!({"EnableSsl": true, "SslConfiguration": {"Certificate": "c", "PrivateKey": ""}})).is_err());
        assert!(check_app(&json!({"EnableSsl": true, "SslConfiguration": {"Certificate": "c", "PrivateKey": "k"}})).is_ok());
        assert!(check_app(&json!({"EnableSsl": false})).is_ok());
    }

    #[tokio::test]
    async fn update_keeps_echoed_secrets_and_the_shortname() {
        let (_dir, app) = open().await;
        let (sid, _) = stack_with_instance(&app).await;
        let created = call(
            &app,
            "CreateApp",
            json!({"StackId": sid, "Name": "Shop Front", "Type": "other",
                   "AppSource": {"Type": "git", "Url": "u", "Password": "pw"},
                   "Environment": [{"Key": "TOKEN", "Value": "t0ken", "Secure": true}]}),
        )
        .await
        .expect("create");
        let aid = created["AppId"].as_str().expect("id").to_string();
        let shown = call(&app, "DescribeApps", json!({"AppIds": [aid]}))
            .await
            .expect("describe")["Apps"][0]
            .clone();
        assert_eq!(shown["Shortname"], json!("shop_front"));
        call(
            &app,
            "UpdateApp",
            json!({"AppId": aid, "Name": "Renamed", "AppSource": shown["AppSource"], "Environment": shown["Environment"]}),
        )
        .await
        .expect("update");
        let stored = load_app(&app, &aid).await.expect("stored");
        assert_eq!(stored["AppSource"]["Password"], json!("pw"));
        assert_eq!(stored["Environment"][0]["Value"], json!("t0ken"));
        assert_eq!(stored["Name"], json!("Renamed"));
        assert_eq!(stored["Shortname"], json!("shop_front"));
        assert!(stack_has_app_environment(&app, &sid).await.expect("ask"));
        let (bare, _) = stack_with_instance(&app).await;
        call(
            &app,
            "CreateApp",
            json!({"StackId": bare, "Name": "plain", "Type": "other"}),
        )
        .await
        .expect("create");
        assert!(!stack_has_app_environment(&app, &bare).await.expect("ask"));
    }
}
