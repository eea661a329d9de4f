//! The operations, one module per resource family, and what they share.
//!
//! Every handler is named after the operation it serves (`describe_stacks`) and takes the request
//! body already validated against the service model, so handlers check only what the model does
//! not carry: lengths, cross-member rules, the stored state.

pub mod apps;
pub mod catalog;
pub mod deployments;
pub mod instances;
pub mod layers;
pub mod scaling;
pub mod stacks;
pub mod tags;

use serde_json::{Map, Value, json};

use opsworks_api::{ApiError, FILTERED, model};
use opsworks_store::{Filter, Kind, StoreError, Write};

use crate::App;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The access key that signed the request.
    pub access_key_id: String,
    /// Whom the key belongs to (`root`, ...).
    pub principal: String,
    /// The region of the signature's scope.
    pub region: String,
}

/// A validated request body.
pub type Req = Map<String, Value>;

/// What an operation returns: the response body.
pub type OpResult = Result<Value, ApiError>;

/// Runs the operation named `operation` (known to the model).
pub async fn dispatch(
    app: &App,
    caller: &Caller,
    operation: &str,
    input: Value,
) -> Result<Reply, ApiError> {
    let req = match input {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if operation == "DescribeInstances" {
        // The one Describe whose answers grow large: it passes stored documents on unparsed.
        return instances::describe_instances(app, req).await;
    }
    let reply = match operation {
        "CreateStack" => stacks::create_stack(app, caller, req).await,
        "DescribeStacks" => stacks::describe_stacks(app, req).await,
        "UpdateStack" => stacks::update_stack(app, req).await,
        "DeleteStack" => stacks::delete_stack(app, req).await,
        "CloneStack" => stacks::clone_stack(app, caller, req).await,
        "DescribeStackSummary" => stacks::describe_stack_summary(app, req).await,
        "StartStack" => stacks::start_stack(app, req).await,
        "StopStack" => stacks::stop_stack(app, req).await,
        "DescribeStackProvisioningParameters" => {
            stacks::describe_stack_provisioning_parameters(app, req).await
        }

        "CreateLayer" => layers::create_layer(app, req).await,
        "DescribeLayers" => layers::describe_layers(app, req).await,
        "UpdateLayer" => layers::update_layer(app, req).await,
        "DeleteLayer" => layers::delete_layer(app, req).await,
        "GetHostnameSuggestion" => layers::get_hostname_suggestion(app, req).await,

        "CreateInstance" => instances::create_instance(app, req).await,
        "UpdateInstance" => instances::update_instance(app, req).await,
        "DeleteInstance" => instances::delete_instance(app, req).await,
        "StartInstance" => instances::start_instance(app, req).await,
        "StopInstance" => instances::stop_instance(app, req).await,
        "RebootInstance" => instances::reboot_instance(app, req).await,

        "CreateApp" => apps::create_app(app, req).await,
        "DescribeApps" => apps::describe_apps(app, req).await,
        "UpdateApp" => apps::update_app(app, req).await,
        "DeleteApp" => apps::delete_app(app, req).await,

        "CreateDeployment" => deployments::create_deployment(app, caller, req).await,
        "DescribeDeployments" => deployments::describe_deployments(app, req).await,
        "DescribeCommands" => deployments::describe_commands(app, req).await,

        "DescribeOperatingSystems" => catalog::describe_operating_systems(app, req).await,
        "DescribeAgentVersions" => catalog::describe_agent_versions(app, req).await,
        "DescribeServiceErrors" => catalog::describe_service_errors(app, req).await,

        "SetTimeBasedAutoScaling" => scaling::set_time_based_auto_scaling(app, req).await,
        "DescribeTimeBasedAutoScaling" => scaling::describe_time_based_auto_scaling(app, req).await,
        "SetLoadBasedAutoScaling" => scaling::set_load_based_auto_scaling(app, req).await,
        "DescribeLoadBasedAutoScaling" => scaling::describe_load_based_auto_scaling(app, req).await,

        "TagResource" => tags::tag_resource(app, req).await,
        "UntagResource" => tags::untag_resource(app, req).await,
        "ListTags" => tags::list_tags(app, req).await,

        other => Err(unsupported(other)),
    };
    reply.map(Reply::Json)
}

/// A response body: a JSON value, or JSON text assembled from stored documents as they are.
#[derive(Debug)]
pub enum Reply {
    /// A value to serialize.
    Json(Value),
    /// JSON text, already serialized.
    Raw(String),
}

impl Reply {
    /// The body's text.
    pub fn into_text(self) -> String {
        match self {
            Self::Json(v) => v.to_string(),
            Self::Raw(t) => t,
        }
    }

    /// The body as a value (for tests and callers that inspect it).
    pub fn into_value(self) -> Result<Value, ApiError> {
        match self {
            Self::Json(v) => Ok(v),
            Self::Raw(t) => serde_json::from_str(&t)
                .map_err(|e| ApiError::Internal(format!("stored document: {e}"))),
        }
    }
}

/// `{"<member>": [doc, doc, ...]}` from stored documents: each is passed on as stored unless it
/// carries private members (`_...`), which `view` then removes.
pub fn raw_list(
    member: &str,
    docs: Vec<String>,
    view: fn(Value) -> Value,
) -> Result<Reply, ApiError> {
    let mut out =
        String::with_capacity(docs.iter().map(|d| d.len() + 1).sum::<usize>() + member.len() + 8);
    out.push_str("{\"");
    out.push_str(member);
    out.push_str("\":[");
    for (i, doc) in docs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if doc.contains("\"_") {
            let v: Value = serde_json::from_str(&doc)
                .map_err(|e| ApiError::Internal(format!("stored document: {e}")))?;
            out.push_str(&view(v).to_string());
        } else {
            out.push_str(&doc);
        }
    }
    out.push_str("]}");
    Ok(Reply::Raw(out))
}

/// The error of an operation of the model this server does not implement yet.
pub fn unsupported(operation: &str) -> ApiError {
    ApiError::UnsupportedOperation(format!(
        "The operation {operation} is not supported by this OpsWorks server yet"
    ))
}

/// Maps a store failure to the API's internal error; the detail goes to the log, not the client.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!("store error: {e}");
    ApiError::Internal("The server could not reach its store; see its log".into())
}

/// The current time in AWS's `CreatedAt` format.
pub fn now() -> String {
    opsworks_model::timestamp(jiff::Timestamp::now())
}

/// A string member of a request.
pub fn str_member<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.get(name).and_then(Value::as_str)
}

/// A string member the model marks required (so it is present); empty is refused here.
pub fn required_str<'a>(req: &'a Req, name: &str) -> Result<&'a str, ApiError> {
    match str_member(req, name) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ApiError::Validation(format!("{name} must not be empty"))),
    }
}

/// A list-of-strings member.
pub fn str_list(req: &Req, name: &str) -> Option<Vec<String>> {
    req.get(name).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    })
}

/// Refuses a string longer than `max` characters.
pub fn check_len(req: &Req, name: &str, max: usize) -> Result<(), ApiError> {
    match str_member(req, name) {
        Some(s) if s.chars().count() > max => Err(ApiError::Validation(format!(
            "{name} must be at most {max} characters long; it is {}",
            s.chars().count()
        ))),
        _ => Ok(()),
    }
}

/// Refuses a `CustomJson` member that is not a JSON object within the size limit.
pub fn check_custom_json(req: &Req) -> Result<(), ApiError> {
    if let Some(s) = str_member(req, "CustomJson") {
        opsworks_model::limits::check_custom_json(s)
            .map_err(|e| ApiError::Validation(e.to_string()))?;
    }
    Ok(())
}

/// At most one of `names` may be given: the rule of the Describe calls. Returns the one given.
pub fn at_most_one<'a>(req: &Req, names: &[&'a str]) -> Result<Option<&'a str>, ApiError> {
    let given: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| req.get(*n).is_some_and(|v| !v.is_null()))
        .collect();
    match given.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(ApiError::Validation(format!(
            "Please provide no more than one of {}",
            names.join(", ")
        ))),
    }
}

/// Copies into `doc` every member of `req` that the output shape `shape` has.
pub fn copy_members(req: &Req, doc: &mut Map<String, Value>, shape: &str, except: &[&str]) {
    let Some(shape) = model().shape(shape) else {
        return;
    };
    for name in shape.members.keys() {
        if except.contains(&name.as_str()) {
            continue;
        }
        if let Some(v) = req.get(name).filter(|v| !v.is_null()) {
            doc.insert(name.clone(), v.clone());
        }
    }
}

/// Replaces the value at `path` with the FILTERED marker when it is present and non-empty.
pub fn filter_secret(doc: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for p in parents {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(v) = cur.get_mut(*last)
        && v.as_str().is_some_and(|s| !s.is_empty())
    {
        *v = json!(FILTERED);
    }
}

/// Keeps the stored secret when an update echoes the FILTERED marker back (as clients that
/// describe, edit and update do), so a round trip never overwrites a secret with the marker.
pub fn keep_filtered_secret(new: &mut Value, old: &Value, path: &[&str]) {
    let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
    if new.pointer(&pointer).and_then(Value::as_str) == Some(FILTERED)
        && let (Some(slot), Some(prev)) = (new.pointer_mut(&pointer), old.pointer(&pointer))
    {
        *slot = prev.clone();
    }
}

/// Loads a document or answers `Unable to find <what> with ID <id>`.
pub async fn load(app: &App, kind: Kind, what: &str, id: &str) -> Result<Value, ApiError> {
    app.store()
        .get(kind, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(what, id))
}

/// Loads every document named by `ids`, answering not-found for the first one missing.
pub async fn load_all(
    app: &App,
    kind: Kind,
    what: &str,
    ids: &[String],
) -> Result<Vec<Value>, ApiError> {
    let docs = app
        .store()
        .list(kind, Filter::Ids(ids))
        .await
        .map_err(store_error)?;
    let id_field = format!("{}Id", capitalize(what));
    for id in ids {
        if !docs
            .iter()
            .any(|d| d.get(&id_field).and_then(Value::as_str) == Some(id))
        {
            return Err(ApiError::not_found(what, id));
        }
    }
    Ok(docs)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Lists the documents of a kind.
pub async fn list(app: &App, kind: Kind, filter: Filter<'_>) -> Result<Vec<Value>, ApiError> {
    app.store().list(kind, filter).await.map_err(store_error)
}

/// Applies writes atomically.
pub async fn apply(app: &App, writes: Vec<Write>) -> Result<(), ApiError> {
    app.store().apply(writes).await.map_err(store_error)
}

/// A write that stores `doc` under `id`, indexed by its stack (and parent, when given).
pub fn put(kind: Kind, id: &str, stack_id: &str, parent_id: Option<&str>, doc: Value) -> Write {
    Write::Put {
        kind,
        id: id.to_string(),
        stack_id: Some(stack_id.to_string()),
        parent_id: parent_id.map(String::from),
        doc,
    }
}

/// A string member of a stored document, empty when absent.
pub fn doc_str<'a>(doc: &'a Value, member: &str) -> &'a str {
    doc.get(member).and_then(Value::as_str).unwrap_or_default()
}

/// Removes the private members (prefixed `_`) that the API must not show.
pub fn public_view(mut doc: Value) -> Value {
    if let Some(m) = doc.as_object_mut() {
        m.retain(|k, _| !k.starts_with('_'));
    }
    doc
}
