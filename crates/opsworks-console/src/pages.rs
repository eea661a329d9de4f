//! The console's pages and form actions, one handler per page or action, each calling the
//! operations the API serves.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::catalog::OPERATING_SYSTEMS;
use opsworks_model::layer::LayerType;
use opsworks_model::themes::THEME_NAMES;

use crate::{COOKIE, Console, Signed, auth, cookie};

/// The console's routes (state: [`Console`]).
pub fn routes() -> Router<Console> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(stacks))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/static/{file}", get(static_file))
        .route("/console/stacks/new", get(new_stack).post(create_stack))
        .route("/console/stacks/{id}", get(stack))
        .route(
            "/console/stacks/{id}/edit",
            get(edit_stack).post(update_stack),
        )
        .route("/console/stacks/{id}/do/{action}", post(stack_action))
        .route(
            "/console/stacks/{id}/layers/new",
            get(new_layer).post(create_layer),
        )
        .route(
            "/console/layers/{id}/edit",
            get(edit_layer).post(update_layer),
        )
        .route("/console/layers/{id}/delete", post(delete_layer))
        .route(
            "/console/stacks/{id}/instances/new",
            get(new_instance).post(create_instance),
        )
        .route("/console/instances/{id}", get(instance))
        .route("/console/instances/{id}/do/{action}", post(instance_action))
        .route(
            "/console/stacks/{id}/apps/new",
            get(new_app).post(create_app),
        )
        .route("/console/apps/{id}/edit", get(edit_app).post(update_app))
        .route("/console/apps/{id}/deploy", get(deploy_page).post(deploy))
        .route("/console/apps/{id}/delete", post(delete_app))
        .route("/console/stacks/{id}/deployments", get(deployments))
        .route("/console/deployments/{id}", get(deployment))
        .route("/console/commands/{id}/log", get(command_log))
        .route("/console/stacks/{id}/live", get(crate::live::stack_events))
        .route(
            "/console/stacks/{id}/monitoring",
            get(crate::monitoring::stack_monitoring),
        )
        .route(
            "/console/stacks/{id}/events",
            get(crate::monitoring::stack_events_page),
        )
        .route(
            "/console/stacks/{id}/events/live",
            get(crate::monitoring::stack_events_live),
        )
        .route("/console/charts/chart.svg", get(crate::monitoring::chart))
        .route(
            "/console/deployments/{id}/live",
            get(crate::live::deployment_events),
        )
}

// ---------------------------------------------------------------------------------------------
// Forms

/// A submitted form: its fields in order (repeated names allowed).
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of a field, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }

    /// Every non-empty value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "off")
    }

    fn values(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            if k != "_csrf" && !m.contains_key(k) {
                m.insert(k.clone(), Value::String(v.clone()));
            }
        }
        m
    }
}

/// A form posted by a signed-in browser, with the session; refused (403, nothing changed) without
/// the session's CSRF token, and sent to sign-in without a session.
pub struct SignedForm(Signed, Form);

impl axum::extract::FromRequest<Console> for SignedForm {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        console: &Console,
    ) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = <Signed as axum::extract::FromRequestParts<Console>>::from_request_parts(
            &mut parts, console,
        )
        .await?;
        let body = <Bytes as axum::extract::FromRequest<Console>>::from_request(
            axum::extract::Request::from_parts(parts, body),
            console,
        )
        .await
        .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        if !auth::same(&form.get("_csrf"), &signed.csrf) {
            return Err((
                StatusCode::FORBIDDEN,
                axum::response::Html(
                    "<!doctype html><title>Refused</title><p>This form's security token is missing \
                     or stale, so nothing was changed. Go back, reload the page and try again.</p>",
                ),
            )
                .into_response());
        }
        Ok(SignedForm(signed, form))
    }
}

/// Which form field an API error is about: the field whose API name the message mentions.
fn field_of(error: &ApiError, fields: &[&str]) -> Option<String> {
    // Without spaces, so "short name" in a message finds the field `Shortname`.
    let message: String = error
        .to_string()
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    fields
        .iter()
        .filter(|f| message.contains(&f.to_lowercase()))
        .max_by_key(|f| f.len())
        .map(|f| f.to_string())
}

fn error_ctx(error: &ApiError, fields: &[&str]) -> Value {
    let message = error.to_string();
    match field_of(error, fields) {
        Some(field) => json!({ "field": field, "message": message }),
        None => json!({ "field": null, "message": message }),
    }
}

fn split_list(text: &str) -> Vec<Value> {
    text.split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_string()))
        .collect()
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn not_found(console: &Console, signed: &Signed, what: &str) -> Response {
    let mut r = console.render(
        "error.html",
        json!({ "csrf": signed.csrf, "title": "Not found", "message": format!("{what} does not exist (any more).") }),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// The error page for a failed action.
pub(crate) fn failure(console: &Console, signed: &Signed, error: ApiError) -> Response {
    console.render(
        "error.html",
        json!({ "csrf": signed.csrf, "title": "That did not work", "message": error.to_string() }),
    )
}

async fn first(console: &Console, op: &str, key: &str, id: &str, list: &str) -> Option<Value> {
    let reply = console.call(op, json!({ key: [id] })).await.ok()?;
    reply.get(list)?.as_array()?.first().cloned()
}

async fn list(console: &Console, op: &str, input: Value, key: &str) -> Vec<Value> {
    match console.call(op, input).await {
        Ok(v) => v
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only paths of the console itself, so the sign-in page can't be used to redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.starts_with("//") => n.to_string(),
        _ => "/console/".to_string(),
    }
}

async fn sign_in_page(State(console): State<Console>, Query(q): Query<Next>) -> Response {
    sign_in_form(&console, q.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(
    console: &Console,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // Before a session exists, the form's token is a double-submit cookie.
    let token = auth::random_token(16);
    let mut r = console.render(
        "sign_in.html",
        json!({ "pre": token, "next": safe_next(next), "error": error }),
    );
    *r.status_mut() = status;
    if let Ok(v) = format!("opsworks_pre={token}; Path=/console; HttpOnly; SameSite=Strict").parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn sign_in(State(console): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let next = form.get("next");
    let pre = cookie(&headers, "opsworks_pre").unwrap_or_default();
    if pre.is_empty() || !auth::same(&pre, &form.get("_pre")) {
        return sign_in_form(
            &console,
            Some(&next),
            Some("The sign-in form expired; please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let password = form.get("password");
    let ok = {
        let console = console.clone();
        tokio::task::spawn_blocking(move || console.inner.password.verify(&password))
            .await
            .unwrap_or(false)
    };
    if !ok {
        tracing::warn!(target: "opsworks::console", "failed console sign-in");
        return sign_in_form(
            &console,
            Some(&next),
            Some("That password is not right."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let token = console.inner.sessions.create();
    let mut r = see_other(&safe_next(Some(&next)));
    let set = format!("{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200");
    if let Ok(v) = set.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    _form: SignedForm,
) -> Response {
    if let Some(token) = cookie(&headers, COOKIE) {
        console.inner.sessions.remove(&token);
    }
    let mut r = see_other("/console/sign-in");
    if let Ok(v) = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0").parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("../static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("../static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Stacks

async fn stacks(State(console): State<Console>, signed: Signed) -> Response {
    let stacks = list(&console, "DescribeStacks", json!({}), "Stacks").await;
    let mut rows = Vec::new();
    for stack in stacks {
        let id = s(&stack, "StackId");
        let summary = console
            .call("DescribeStackSummary", json!({ "StackId": id }))
            .await
            .ok()
            .and_then(|v| v.get("StackSummary").cloned())
            .unwrap_or(Value::Null);
        rows.push(json!({ "stack": stack, "summary": summary }));
    }
    console.render("stacks.html", json!({ "csrf": signed.csrf, "rows": rows }))
}

fn stack_choices() -> Value {
    json!({
        "os": OPERATING_SYSTEMS.iter().filter(|o| o.supported).map(|o| o.name).collect::<Vec<_>>(),
        "themes": THEME_NAMES,
    })
}

async fn new_stack(State(console): State<Console>, signed: Signed) -> Response {
    console.render(
        "stack_form.html",
        json!({ "csrf": signed.csrf, "new": true, "choices": stack_choices(),
                "v": { "DefaultOs": opsworks_model::catalog::DEFAULT_OS, "HostnameTheme": "Layer_Dependent",
                       "DefaultRootDeviceType": "instance-store" } }),
    )
}

const STACK_FIELDS: &[&str] = &[
    "Name",
    "DefaultOs",
    "HostnameTheme",
    "CustomJson",
    "CustomCookbooksSource",
    "DefaultRootDeviceType",
    "DefaultSshKeyName",
];

/// The stack members a stack form sets.
fn stack_input(form: &Form) -> Result<Map<String, Value>, ApiError> {
    let mut m = Map::new();
    m.insert("Name".into(), form.get("Name").into());
    for key in ["DefaultOs", "HostnameTheme", "DefaultRootDeviceType"] {
        let v = form.get(key);
        if !v.is_empty() {
            m.insert(key.into(), v.into());
        }
    }
    let custom_json = form.get("CustomJson");
    if custom_json.is_empty() {
        // The API takes no empty document; an emptied field on edit means "no custom JSON".
        if !form.get("StackId").is_empty() {
            m.insert("CustomJson".into(), "{}".into());
        }
    } else {
        if let Err(e) = serde_json::from_str::<Value>(&custom_json) {
            return Err(ApiError::Validation(format!(
                "CustomJson is not valid JSON: {e}"
            )));
        }
        m.insert("CustomJson".into(), custom_json.into());
    }
    let url = form.get("CookbooksUrl");
    m.insert("UseCustomCookbooks".into(), (!url.is_empty()).into());
    if !url.is_empty() {
        let mut src = Map::new();
        src.insert("Type".into(), form.get("CookbooksType").into());
        src.insert("Url".into(), url.into());
        let rev = form.get("CookbooksRevision");
        if !rev.is_empty() {
            src.insert("Revision".into(), rev.into());
        }
        m.insert("CustomCookbooksSource".into(), Value::Object(src));
    }
    Ok(m)
}

async fn create_stack(
    State(console): State<Console>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let account = console.app().account_id().to_string();
    let result = async {
        let mut input = stack_input(&form)?;
        input.insert("Region".into(), console.app().region().into());
        input.insert(
            "ServiceRoleArn".into(),
            format!("arn:aws:iam::{account}:role/aws-opsworks-service-role").into(),
        );
        input.insert(
            "DefaultInstanceProfileArn".into(),
            format!("arn:aws:iam::{account}:instance-profile/aws-opsworks-ec2-role").into(),
        );
        console.call("CreateStack", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(v) => see_other(&format!("/console/stacks/{}", s(&v, "StackId"))),
        Err(e) => console.render(
            "stack_form.html",
            json!({ "csrf": signed.csrf, "new": true, "choices": stack_choices(),
                    "v": form.values(), "error": error_ctx(&e, STACK_FIELDS) }),
        ),
    }
}

async fn edit_stack(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(stack) = first(&console, "DescribeStacks", "StackIds", &id, "Stacks").await else {
        return not_found(&console, &signed, "That stack");
    };
    let src = stack
        .get("CustomCookbooksSource")
        .cloned()
        .unwrap_or(Value::Null);
    let v = json!({
        "StackId": id, "Name": s(&stack, "Name"), "DefaultOs": s(&stack, "DefaultOs"),
        "HostnameTheme": s(&stack, "HostnameTheme"), "CustomJson": s(&stack, "CustomJson"),
        "DefaultRootDeviceType": s(&stack, "DefaultRootDeviceType"),
        "CookbooksType": s(&src, "Type"), "CookbooksUrl": s(&src, "Url"), "CookbooksRevision": s(&src, "Revision"),
    });
    console.render(
        "stack_form.html",
        json!({ "csrf": signed.csrf, "new": false, "choices": stack_choices(), "v": v }),
    )
}

async fn update_stack(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let result = async {
        let mut input = stack_input(&form)?;
        input.insert("StackId".into(), id.clone().into());
        console.call("UpdateStack", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{id}")),
        Err(e) => {
            let mut v = form.values();
            v.insert("StackId".into(), id.into());
            console.render(
                "stack_form.html",
                json!({ "csrf": signed.csrf, "new": false, "choices": stack_choices(),
                        "v": v, "error": error_ctx(&e, STACK_FIELDS) }),
            )
        }
    }
}

async fn stack(State(console): State<Console>, signed: Signed, Path(id): Path<String>) -> Response {
    let Some(stack) = first(&console, "DescribeStacks", "StackIds", &id, "Stacks").await else {
        return not_found(&console, &signed, "That stack");
    };
    let layers = list(
        &console,
        "DescribeLayers",
        json!({ "StackId": id }),
        "Layers",
    )
    .await;
    let instances = list(
        &console,
        "DescribeInstances",
        json!({ "StackId": id }),
        "Instances",
    )
    .await;
    let apps = list(&console, "DescribeApps", json!({ "StackId": id }), "Apps").await;
    let mut deployments = list(
        &console,
        "DescribeDeployments",
        json!({ "StackId": id }),
        "Deployments",
    )
    .await;
    deployments.truncate(5);
    let layers: Vec<Value> = layers
        .into_iter()
        .map(|layer| {
            let lid = s(&layer, "LayerId").to_string();
            let members: Vec<&Value> = instances
                .iter()
                .filter(|i| {
                    i.get("LayerIds")
                        .and_then(Value::as_array)
                        .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(&lid)))
                })
                .collect();
            json!({ "layer": layer, "instances": members })
        })
        .collect();
    console.render(
        "stack.html",
        json!({ "csrf": signed.csrf, "stack": stack, "layers": layers, "apps": apps,
                "deployments": deployments, "has_instances": !instances.is_empty() }),
    )
}

async fn stack_action(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let back = format!("/console/stacks/{id}");
    let result = match action.as_str() {
        "start" => console
            .call("StartStack", json!({ "StackId": id }))
            .await
            .map(|_| back.clone()),
        "stop" => console
            .call("StopStack", json!({ "StackId": id }))
            .await
            .map(|_| back.clone()),
        "delete" => console
            .call("DeleteStack", json!({ "StackId": id }))
            .await
            .map(|_| "/console/".to_string()),
        "clone" => {
            let account = console.app().account_id().to_string();
            let mut input = json!({
                "SourceStackId": id,
                "ServiceRoleArn": format!("arn:aws:iam::{account}:role/aws-opsworks-service-role"),
                "ClonePermissions": false,
            });
            let name = form.get("Name");
            if !name.is_empty() {
                input["Name"] = name.into();
            }
            console
                .call("CloneStack", input)
                .await
                .map(|v| format!("/console/stacks/{}", s(&v, "StackId")))
        }
        "command" => {
            let name = form.get("Command");
            let mut command = json!({ "Name": name });
            if name == "execute_recipes" {
                command["Args"] = json!({ "recipes": split_list(&form.get("Recipes")) });
            }
            let mut input = json!({ "StackId": id, "Command": command });
            let comment = form.get("Comment");
            if !comment.is_empty() {
                input["Comment"] = comment.into();
            }
            console
                .call("CreateDeployment", input)
                .await
                .map(|v| format!("/console/deployments/{}", s(&v, "DeploymentId")))
        }
        _ => return not_found(&console, &signed, "That action"),
    };
    match result {
        Ok(to) => see_other(&to),
        Err(e) => failure(&console, &signed, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Layers

const LAYER_FIELDS: &[&str] = &[
    "Type",
    "Name",
    "Shortname",
    "Packages",
    "CustomRecipes",
    "CustomJson",
    "Attributes",
    "LifecycleEventConfiguration",
];

/// Layer attributes the form offers, with their labels.
const LAYER_ATTRIBUTES: &[(&str, &str)] = &[
    ("EnableHaproxyStats", "HAProxy stats page (true/false)"),
    ("HaproxyStatsUrl", "HAProxy stats URL"),
    ("HaproxyStatsUser", "HAProxy stats user"),
    ("HaproxyStatsPassword", "HAProxy stats password"),
    ("HaproxyHealthCheckUrl", "HAProxy health check URL"),
    ("HaproxyHealthCheckMethod", "HAProxy health check method"),
    ("MysqlRootPassword", "MySQL root password"),
    ("MemcachedMemory", "Memcached memory (MB)"),
    ("NodejsVersion", "Node.js version"),
];

const EVENTS: &[&str] = &["Setup", "Configure", "Deploy", "Undeploy", "Shutdown"];

fn layer_choices() -> Value {
    json!({
        "types": LayerType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "attributes": LAYER_ATTRIBUTES.iter().map(|(k, l)| json!({"key": k, "label": l})).collect::<Vec<_>>(),
        "events": EVENTS,
    })
}

fn layer_input(form: &Form, new: bool) -> Result<Map<String, Value>, ApiError> {
    let mut m = Map::new();
    if new {
        m.insert("Type".into(), form.get("Type").into());
    }
    m.insert("Name".into(), form.get("Name").into());
    m.insert("Shortname".into(), form.get("Shortname").into());
    m.insert(
        "Packages".into(),
        Value::Array(split_list(&form.get("Packages"))),
    );
    let mut recipes = Map::new();
    for event in EVENTS {
        recipes.insert(
            (*event).into(),
            Value::Array(split_list(&form.get(&format!("Recipes{event}")))),
        );
    }
    m.insert("CustomRecipes".into(), Value::Object(recipes));
    m.insert(
        "EnableAutoHealing".into(),
        form.checked("EnableAutoHealing").into(),
    );
    m.insert(
        "AutoAssignPublicIps".into(),
        form.checked("AutoAssignPublicIps").into(),
    );
    let timeout = form.get("ShutdownTimeout");
    if !timeout.is_empty() {
        let secs: i64 = timeout.parse().map_err(|_| {
            ApiError::Validation(format!(
                "LifecycleEventConfiguration: the shutdown timeout must be a whole number of seconds, not {timeout:?}"
            ))
        })?;
        m.insert(
            "LifecycleEventConfiguration".into(),
            json!({ "Shutdown": { "ExecutionTimeout": secs, "DelayUntilElbConnectionsDrained": false } }),
        );
    }
    let mut attributes = Map::new();
    for (key, _) in LAYER_ATTRIBUTES {
        let v = form.get(&format!("attr_{key}"));
        if !v.is_empty() {
            attributes.insert((*key).into(), v.into());
        }
    }
    if !attributes.is_empty() {
        m.insert("Attributes".into(), Value::Object(attributes));
    }
    let custom_json = form.get("CustomJson");
    if !custom_json.is_empty() {
        if let Err(e) = serde_json::from_str::<Value>(&custom_json) {
            return Err(ApiError::Validation(format!(
                "CustomJson is not valid JSON: {e}"
            )));
        }
        m.insert("CustomJson".into(), custom_json.into());
    }
    Ok(m)
}

async fn new_layer(
    State(console): State<Console>,
    signed: Signed,
    Path(stack_id): Path<String>,
) -> Response {
    console.render(
        "layer_form.html",
        json!({ "csrf": signed.csrf, "new": true, "stack_id": stack_id, "choices": layer_choices(),
                "v": { "Type": "custom", "EnableAutoHealing": "on", "ShutdownTimeout": "120" } }),
    )
}

async fn create_layer(
    State(console): State<Console>,
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let result = async {
        let mut input = layer_input(&form, true)?;
        input.insert("StackId".into(), stack_id.clone().into());
        console.call("CreateLayer", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => console.render(
            "layer_form.html",
            json!({ "csrf": signed.csrf, "new": true, "stack_id": stack_id, "choices": layer_choices(),
                    "v": form.values(), "error": error_ctx(&e, LAYER_FIELDS) }),
        ),
    }
}

fn join(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

async fn edit_layer(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(layer) = first(&console, "DescribeLayers", "LayerIds", &id, "Layers").await else {
        return not_found(&console, &signed, "That layer");
    };
    let mut v = Map::new();
    for key in ["Type", "Name", "Shortname", "CustomJson"] {
        v.insert(key.into(), s(&layer, key).into());
    }
    v.insert("Packages".into(), join(layer.get("Packages")).into());
    for event in EVENTS {
        v.insert(
            format!("Recipes{event}"),
            join(layer.get("CustomRecipes").and_then(|r| r.get(*event))).into(),
        );
    }
    for flag in ["EnableAutoHealing", "AutoAssignPublicIps"] {
        if layer.get(flag).and_then(Value::as_bool) == Some(true) {
            v.insert(flag.into(), "on".into());
        }
    }
    if let Some(t) = layer
        .pointer("/LifecycleEventConfiguration/Shutdown/ExecutionTimeout")
        .and_then(Value::as_i64)
    {
        v.insert("ShutdownTimeout".into(), t.to_string().into());
    }
    if let Some(attrs) = layer.get("Attributes").and_then(Value::as_object) {
        for (key, _) in LAYER_ATTRIBUTES {
            // Secret attributes come back FILTERED: the field stays empty and keeps the value.
            if let Some(val) = attrs.get(*key).and_then(Value::as_str)
                && val != opsworks_api::FILTERED
            {
                v.insert(format!("attr_{key}"), val.into());
            }
        }
    }
    console.render(
        "layer_form.html",
        json!({ "csrf": signed.csrf, "new": false, "layer_id": id, "stack_id": s(&layer, "StackId"),
                "choices": layer_choices(), "v": v }),
    )
}

async fn update_layer(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let stack_id = form.get("StackId");
    let result = async {
        let mut input = layer_input(&form, false)?;
        input.insert("LayerId".into(), id.clone().into());
        console.call("UpdateLayer", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => console.render(
            "layer_form.html",
            json!({ "csrf": signed.csrf, "new": false, "layer_id": id, "stack_id": stack_id,
                    "choices": layer_choices(), "v": form.values(), "error": error_ctx(&e, LAYER_FIELDS) }),
        ),
    }
}

async fn delete_layer(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    match console.call("DeleteLayer", json!({ "LayerId": id })).await {
        Ok(_) => see_other(&format!("/console/stacks/{}", form.get("StackId"))),
        Err(e) => failure(&console, &signed, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Instances

const INSTANCE_FIELDS: &[&str] = &[
    "LayerIds",
    "InstanceType",
    "Hostname",
    "AutoScalingType",
    "RootDeviceType",
    "Os",
];

async fn instance_form(
    console: &Console,
    signed: &Signed,
    stack_id: &str,
    v: Value,
    error: Option<Value>,
) -> Response {
    let layers = list(
        console,
        "DescribeLayers",
        json!({ "StackId": stack_id }),
        "Layers",
    )
    .await;
    let suggestion = match layers.first() {
        Some(l) => console
            .call(
                "GetHostnameSuggestion",
                json!({ "LayerId": s(l, "LayerId") }),
            )
            .await
            .ok()
            .map(|v| s(&v, "Hostname").to_string()),
        None => None,
    };
    console.render(
        "instance_form.html",
        json!({ "csrf": signed.csrf, "stack_id": stack_id, "layers": layers, "suggestion": suggestion,
                "os": OPERATING_SYSTEMS.iter().filter(|o| o.supported).map(|o| o.name).collect::<Vec<_>>(),
                "v": v, "error": error }),
    )
}

async fn new_instance(
    State(console): State<Console>,
    signed: Signed,
    Path(stack_id): Path<String>,
) -> Response {
    instance_form(
        &console,
        &signed,
        &stack_id,
        json!({ "InstanceType": "c5.large", "RootDeviceType": "instance-store", "AutoScalingType": "" }),
        None,
    )
    .await
}

async fn create_instance(
    State(console): State<Console>,
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let mut input = json!({
        "StackId": stack_id,
        "LayerIds": form.all("LayerIds"),
        "InstanceType": form.get("InstanceType"),
    });
    for key in ["Hostname", "AutoScalingType", "RootDeviceType", "Os"] {
        let v = form.get(key);
        if !v.is_empty() {
            input[key] = v.into();
        }
    }
    let result = console.call("CreateInstance", input).await;
    let result = match (result, form.checked("StartNow")) {
        (Ok(v), true) => console
            .call(
                "StartInstance",
                json!({ "InstanceId": s(&v, "InstanceId") }),
            )
            .await
            .map(|_| v),
        (other, _) => other,
    };
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let error = error_ctx(&e, INSTANCE_FIELDS);
            let mut v = form.values();
            v.insert("LayerIds".into(), json!(form.all("LayerIds")));
            instance_form(&console, &signed, &stack_id, Value::Object(v), Some(error)).await
        }
    }
}

async fn instance(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(inst) = first(
        &console,
        "DescribeInstances",
        "InstanceIds",
        &id,
        "Instances",
    )
    .await
    else {
        return not_found(&console, &signed, "That instance");
    };
    let layers = list(
        &console,
        "DescribeLayers",
        json!({ "StackId": s(&inst, "StackId") }),
        "Layers",
    )
    .await;
    let names: Vec<Value> = layers
        .iter()
        .filter(|l| {
            inst.get("LayerIds")
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(s(l, "LayerId"))))
        })
        .map(|l| json!({ "id": s(l, "LayerId"), "name": s(l, "Name") }))
        .collect();
    let mut commands = list(
        &console,
        "DescribeCommands",
        json!({ "InstanceId": id }),
        "Commands",
    )
    .await;
    commands.sort_by(|a, b| s(b, "CreatedAt").cmp(s(a, "CreatedAt")));
    console.render(
        "instance.html",
        json!({ "csrf": signed.csrf, "i": inst, "layers": names, "commands": commands,
                "period": crate::monitoring::period(&q), "periods": crate::monitoring::PERIODS,
                "metrics": crate::monitoring::CHARTED }),
    )
}

async fn instance_action(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let op = match action.as_str() {
        "start" => "StartInstance",
        "stop" => "StopInstance",
        "reboot" => "RebootInstance",
        "delete" => "DeleteInstance",
        _ => return not_found(&console, &signed, "That action"),
    };
    let back = form.get("back");
    match console.call(op, json!({ "InstanceId": id })).await {
        Ok(_) if back.starts_with("/console/") && op != "DeleteInstance" => see_other(&back),
        Ok(_) => see_other(&format!("/console/stacks/{}", form.get("StackId"))),
        Err(e) => failure(&console, &signed, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Apps and deployments

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

const APP_TYPES: &[&str] = &[
    "static",
    "nodejs",
    "php",
    "rails",
    "java",
    "aws-flow-ruby",
    "other",
];
const ENV_ROWS: usize = 4;

async fn app_form(
    console: &Console,
    signed: &Signed,
    stack_id: &str,
    app_id: Option<&str>,
    v: Value,
    error: Option<Value>,
) -> Response {
    console.render(
        "app_form.html",
        json!({ "csrf": signed.csrf, "stack_id": stack_id, "app_id": app_id, "types": APP_TYPES,
                "v": v, "error": error }),
    )
}

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
    let keys = form
        .0
        .iter()
        .filter(|(k, _)| k == "env_key")
        .map(|(_, v)| v.trim().to_string());
    let values: Vec<String> = form
        .0
        .iter()
        .filter(|(k, _)| k == "env_value")
        .map(|(_, v)| v.clone())
        .collect();
    let secure: Vec<String> = form.all("env_secure");
    let mut env = Vec::new();
    for (i, key) in keys.enumerate() {
        if key.is_empty() {
            continue;
        }
        let value = values.get(i).cloned().unwrap_or_default();
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

fn form_env_rows(form: &Form) -> Vec<Value> {
    let values: Vec<&String> = form
        .0
        .iter()
        .filter(|(k, _)| k == "env_value")
        .map(|(_, v)| v)
        .collect();
    let secure = form.all("env_secure");
    form.0
        .iter()
        .filter(|(k, _)| k == "env_key")
        .enumerate()
        .map(|(i, (_, k))| {
            json!({ "key": k, "value": values.get(i).map(|v| v.as_str()).unwrap_or(""),
                    "secure": secure.iter().any(|s| s == &i.to_string()) })
        })
        .collect()
}

async fn new_app(
    State(console): State<Console>,
    signed: Signed,
    Path(stack_id): Path<String>,
) -> Response {
    app_form(
        &console,
        &signed,
        &stack_id,
        None,
        json!({ "Type": "nodejs", "SourceType": "git", "env": env_rows(&[]) }),
        None,
    )
    .await
}

async fn create_app(
    State(console): State<Console>,
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let mut input = app_input(&form);
    input.insert("StackId".into(), stack_id.clone().into());
    let shortname = form.get("Shortname");
    if !shortname.is_empty() {
        input.insert("Shortname".into(), shortname.into());
    }
    match console.call("CreateApp", Value::Object(input)).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let mut v = form.values();
            v.insert("env".into(), Value::Array(form_env_rows(&form)));
            app_form(
                &console,
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

async fn edit_app(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(app) = first(&console, "DescribeApps", "AppIds", &id, "Apps").await else {
        return not_found(&console, &signed, "That app");
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
    app_form(&console, &signed, s(&app, "StackId"), Some(&id), v, None).await
}

async fn update_app(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let stack_id = form.get("StackId");
    let mut input = app_input(&form);
    input.insert("AppId".into(), id.clone().into());
    match console.call("UpdateApp", Value::Object(input)).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let mut v = form.values();
            v.insert("env".into(), Value::Array(form_env_rows(&form)));
            app_form(
                &console,
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

async fn delete_app(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    match console.call("DeleteApp", json!({ "AppId": id })).await {
        Ok(_) => see_other(&format!("/console/stacks/{}", form.get("StackId"))),
        Err(e) => failure(&console, &signed, e),
    }
}

async fn deploy_form(
    console: &Console,
    signed: &Signed,
    app: &Value,
    error: Option<Value>,
) -> Response {
    let stack_id = s(app, "StackId");
    let instances = list(
        console,
        "DescribeInstances",
        json!({ "StackId": stack_id }),
        "Instances",
    )
    .await;
    let layers = list(
        console,
        "DescribeLayers",
        json!({ "StackId": stack_id }),
        "Layers",
    )
    .await;
    console.render(
        "deploy_form.html",
        json!({ "csrf": signed.csrf, "app": app, "instances": instances, "layers": layers, "error": error }),
    )
}

async fn deploy_page(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match first(&console, "DescribeApps", "AppIds", &id, "Apps").await {
        Some(app) => deploy_form(&console, &signed, &app, None).await,
        None => not_found(&console, &signed, "That app"),
    }
}

async fn deploy(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let Some(app) = first(&console, "DescribeApps", "AppIds", &id, "Apps").await else {
        return not_found(&console, &signed, "That app");
    };
    let name = form.get("Command");
    let mut input =
        json!({ "StackId": s(&app, "StackId"), "AppId": id, "Command": { "Name": name } });
    let instances = form.all("InstanceIds");
    let layers = form.all("LayerIds");
    if !instances.is_empty() {
        input["InstanceIds"] = json!(instances);
    }
    if !layers.is_empty() {
        input["LayerIds"] = json!(layers);
    }
    let comment = form.get("Comment");
    if !comment.is_empty() {
        input["Comment"] = comment.into();
    }
    match console.call("CreateDeployment", input).await {
        Ok(v) => see_other(&format!("/console/deployments/{}", s(&v, "DeploymentId"))),
        Err(e) => {
            let error = error_ctx(&e, &["InstanceIds", "LayerIds", "Command", "Comment"]);
            deploy_form(&console, &signed, &app, Some(error)).await
        }
    }
}

async fn deployments(
    State(console): State<Console>,
    signed: Signed,
    Path(stack_id): Path<String>,
) -> Response {
    let Some(stack) = first(&console, "DescribeStacks", "StackIds", &stack_id, "Stacks").await
    else {
        return not_found(&console, &signed, "That stack");
    };
    let deployments = list(
        &console,
        "DescribeDeployments",
        json!({ "StackId": stack_id }),
        "Deployments",
    )
    .await;
    console.render(
        "deployments.html",
        json!({ "csrf": signed.csrf, "stack": stack, "deployments": deployments }),
    )
}

async fn deployment(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(dep) = first(
        &console,
        "DescribeDeployments",
        "DeploymentIds",
        &id,
        "Deployments",
    )
    .await
    else {
        return not_found(&console, &signed, "That deployment");
    };
    let commands = list(
        &console,
        "DescribeCommands",
        json!({ "DeploymentId": id }),
        "Commands",
    )
    .await;
    let instances = list(
        &console,
        "DescribeInstances",
        json!({ "StackId": s(&dep, "StackId") }),
        "Instances",
    )
    .await;
    let rows: Vec<Value> = commands
        .iter()
        .map(|c| {
            let host = instances
                .iter()
                .find(|i| s(i, "InstanceId") == s(c, "InstanceId"))
                .map(|i| s(i, "Hostname"))
                .unwrap_or("");
            let log = crate::live::read_log(&console, s(c, "CommandId"));
            json!({ "c": c, "hostname": host, "log": log })
        })
        .collect();
    console.render(
        "deployment.html",
        json!({ "csrf": signed.csrf, "d": dep, "rows": rows }),
    )
}

async fn command_log(
    State(console): State<Console>,
    _signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match crate::live::read_log(&console, &id) {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (StatusCode::NOT_FOUND, "no log for this command (yet)\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_field_they_name() {
        let e = ApiError::Validation("Name must be 1 to 64 characters".into());
        assert_eq!(field_of(&e, STACK_FIELDS).as_deref(), Some("Name"));
        let e = ApiError::Validation("CustomJson is not valid JSON".into());
        assert_eq!(field_of(&e, STACK_FIELDS).as_deref(), Some("CustomJson"));
        let e = ApiError::Validation(
            "There is already a layer with the short name 'workers' in this stack".into(),
        );
        assert_eq!(field_of(&e, LAYER_FIELDS).as_deref(), Some("Shortname"));
        let e = ApiError::Validation("something else entirely".into());
        assert_eq!(field_of(&e, STACK_FIELDS), None);
    }

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(safe_next(Some("/console/stacks/x")), "/console/stacks/x");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console/");
        assert_eq!(safe_next(Some("//evil.example/console/")), "/console/");
        assert_eq!(safe_next(None), "/console/");
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let f = Form::parse(b"LayerIds=a&LayerIds=b&Name=+x+&_csrf=t");
        assert_eq!(f.all("LayerIds"), vec!["a", "b"]);
        assert_eq!(f.get("Name"), "x");
        assert!(!f.values().contains_key("_csrf"));
    }
}
