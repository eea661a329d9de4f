//! App pages: the app form (source, document root, domains, data source, environment with
//! write-only secure values, SSL) and deleting an app.

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::Signed;
use crate::form::{Form, SignedForm, error_ctx, join, s, split_list};
use crate::render::{failure, found, see_other};
use crate::stacks::STACK_OPERATIONS;

/// The app members an API error may name, for pointing at the form field.
const APP_FIELDS: &[&str] = &[
    "Name",
    "Shortname",
    "Type",
    "AppSource",
    "DataSources",
    "Domains",
    "Environment",
    "SslConfiguration",
    "Attributes",
];

/// The app types the form offers.
const APP_TYPES: &[&str] = &[
    "static",
    "nodejs",
    "php",
    "rails",
    "java",
    "aws-flow-ruby",
    "other",
];
/// Empty environment rows the form offers beyond the app's own.
const ENV_ROWS: usize = 4;

/// The app form with values `v` and, after a refusal, the error.
async fn app_form(
    signed: &Signed,
    stack_id: &str,
    app_id: Option<&str>,
    v: Value,
    error: Option<Value>,
) -> Response {
    let can = signed.can(stack_id, STACK_OPERATIONS).await;
    signed.render(
        "app_form.html",
        json!({ "stack_id": stack_id, "app_id": app_id, "types": APP_TYPES,
                "v": v, "error": error, "can": can }),
    )
}

/// The app members an app form sets.
fn app_input(form: &Form) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Name".into(), form.get("Name").into());
    m.insert("Type".into(), form.get("Type").into());
    let url = form.get("SourceUrl");
    if !url.is_empty() {
        let mut src = json!({ "Type": form.get("SourceType"), "Url": url });
        let rev = form.get("SourceRevision");
        if !rev.is_empty() {
            src["Revision"] = rev.into();
        }
        m.insert("AppSource".into(), src);
    }
    let doc_root = form.get("DocumentRoot");
    m.insert("Attributes".into(), json!({ "DocumentRoot": doc_root }));
    m.insert(
        "Domains".into(),
        Value::Array(split_list(&form.get("Domains"))),
    );
    let ds_type = form.get("DataSourceType");
    if !ds_type.is_empty() {
        let mut ds = json!({ "Type": ds_type });
        for (field, key) in [("DataSourceArn", "Arn"), ("DatabaseName", "DatabaseName")] {
            let v = form.get(field);
            if !v.is_empty() {
                ds[key] = v.into();
            }
        }
        m.insert("DataSources".into(), json!([ds]));
    }
    let values = form.raw("env_value");
    let secure: Vec<String> = form.all("env_secure");
    let mut env = Vec::new();
    for (i, key) in form.raw("env_key").into_iter().map(str::trim).enumerate() {
        if key.is_empty() {
            continue;
        }
        let value = values.get(i).map(|v| v.to_string()).unwrap_or_default();
        let is_secure = secure.iter().any(|s| s == &i.to_string());
        // A secure value left empty on edit keeps the stored one (the API keeps echoed secrets).
        let value = if is_secure && value.is_empty() {
            opsworks_api::FILTERED.to_string()
        } else {
            value
        };
        env.push(json!({ "Key": key, "Value": value, "Secure": is_secure }));
    }
    m.insert("Environment".into(), Value::Array(env));
    let ssl = form.checked("EnableSsl");
    m.insert("EnableSsl".into(), ssl.into());
    if ssl {
        let mut cfg = json!({ "Certificate": form.get("SslCertificate"), "PrivateKey": form.get("SslPrivateKey") });
        let chain = form.get("SslChain");
        if !chain.is_empty() {
            cfg["Chain"] = chain.into();
        }
        if s(&cfg, "PrivateKey").is_empty() {
            cfg["PrivateKey"] = opsworks_api::FILTERED.into();
        }
        m.insert("SslConfiguration".into(), cfg);
    }
    m
}

/// The environment rows of a stored app (secure values not shown) and empty ones to add.
fn env_rows(env: &[Value]) -> Vec<Value> {
    let mut rows: Vec<Value> = env
        .iter()
        .map(|e| {
            let secure = e.get("Secure").and_then(Value::as_bool).unwrap_or(false);
            json!({ "key": s(e, "Key"), "value": if secure { "" } else { s(e, "Value") }, "secure": secure })
        })
        .collect();
    while rows.len() < env.len() + ENV_ROWS {
        rows.push(json!({ "key": "", "value": "", "secure": false }));
    }
    rows
}

/// The environment rows as submitted, to show them again after an error.
fn form_env_rows(form: &Form) -> Vec<Value> {
    let values = form.raw("env_value");
    let secure = form.all("env_secure");
    form.raw("env_key")
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            json!({ "key": k, "value": values.get(i).copied().unwrap_or(""),
                    "secure": secure.iter().any(|s| s == &i.to_string()) })
        })
        .collect()
}

/// `GET /console/stacks/{id}/apps/new`: an empty app form.
pub async fn new_app(signed: Signed, Path(stack_id): Path<String>) -> Response {
    app_form(
        &signed,
        &stack_id,
        None,
        json!({ "Type": "nodejs", "SourceType": "git", "env": env_rows(&[]) }),
        None,
    )
    .await
}

/// `POST /console/stacks/{id}/apps/new`: CreateApp.
pub async fn create_app(
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let mut input = app_input(&form);
    input.insert("StackId".into(), stack_id.clone().into());
    let shortname = form.get("Shortname");
    if !shortname.is_empty() {
        input.insert("Shortname".into(), shortname.into());
    }
    match signed.call("CreateApp", Value::Object(input)).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let mut v = form.values();
            v.insert("env".into(), Value::Array(form_env_rows(&form)));
            app_form(
                &signed,
                &stack_id,
                None,
                Value::Object(v),
                Some(error_ctx(&e, APP_FIELDS)),
            )
            .await
        }
    }
}

/// `GET /console/apps/{id}/edit`: the app form, filled in (secure values and the private key left
/// empty: they keep their value).
pub async fn edit_app(signed: Signed, Path(id): Path<String>) -> Response {
    let app = match found(&signed, "DescribeApps", "AppIds", &id, "Apps", "That app").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let src = app.get("AppSource").cloned().unwrap_or(Value::Null);
    let ds = app
        .get("DataSources")
        .and_then(Value::as_array)
        .and_then(|a| a.first().cloned())
        .unwrap_or(Value::Null);
    let env = app
        .get("Environment")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let v = json!({
        "Name": s(&app, "Name"), "Shortname": s(&app, "Shortname"), "Type": s(&app, "Type"),
        "SourceType": s(&src, "Type"), "SourceUrl": s(&src, "Url"), "SourceRevision": s(&src, "Revision"),
        "DocumentRoot": app.pointer("/Attributes/DocumentRoot").and_then(Value::as_str).unwrap_or(""),
        "Domains": join(app.get("Domains")),
        "DataSourceType": s(&ds, "Type"), "DataSourceArn": s(&ds, "Arn"), "DatabaseName": s(&ds, "DatabaseName"),
        "EnableSsl": if app.get("EnableSsl").and_then(Value::as_bool) == Some(true) { "on" } else { "" },
        "SslCertificate": app.pointer("/SslConfiguration/Certificate").and_then(Value::as_str).unwrap_or(""),
        "SslChain": app.pointer("/SslConfiguration/Chain").and_then(Value::as_str).unwrap_or(""),
        "env": env_rows(&env),
    });
    app_form(&signed, s(&app, "StackId"), Some(&id), v, None).await
}

/// `POST /console/apps/{id}/edit`: UpdateApp.
pub async fn update_app(Path(id): Path<String>, SignedForm(signed, form): SignedForm) -> Response {
    let stack_id = form.get("StackId");
    let mut input = app_input(&form);
    input.insert("AppId".into(), id.clone().into());
    match signed.call("UpdateApp", Value::Object(input)).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let mut v = form.values();
            v.insert("env".into(), Value::Array(form_env_rows(&form)));
            app_form(
                &signed,
                &stack_id,
                Some(&id),
                Value::Object(v),
                Some(error_ctx(&e, APP_FIELDS)),
            )
            .await
        }
    }
}

/// `POST /console/apps/{id}/delete`: DeleteApp.
pub async fn delete_app(Path(id): Path<String>, SignedForm(signed, form): SignedForm) -> Response {
    match signed.call("DeleteApp", json!({ "AppId": id })).await {
        Ok(_) => see_other(&format!("/console/stacks/{}", form.get("StackId"))),
        Err(e) => failure(&signed, e),
    }
}
