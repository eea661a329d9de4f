//! Tags: TagResource, UntagResource, ListTags, on stack and layer ARNs.
//!
//! A resource's own tags are one `Kind::Tags` document `{ResourceArn, Tags}` whose ID is the ARN
//! the resource carries (so DeleteStack removes it by the stack's `Arn`), indexed by the stack. A
//! layer shows its stack's tags overridden by its own ([`tags::effective_layer_tags`]).

use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::tags::{self, Tags};
use opsworks_model::{Arn, ResourceKind};
use opsworks_store::{Filter, Kind, Write};

use super::stacks::load_stack;
use super::{OpResult, Req, apply, list, load, put, required_str, str_list};
use crate::App;

/// A tagged resource, resolved from its ARN.
struct Resource {
    /// The ARN as stored on the resource: the ID of its tags document.
    arn: String,
    /// The stack it is (or belongs to).
    stack_id: String,
    /// Whether it is a layer (else a stack).
    is_layer: bool,
}

fn invalid(e: tags::TagError) -> ApiError {
    ApiError::Validation(e.to_string())
}

/// Parses the ARN and finds the stack or layer it names: a malformed ARN or an instance ARN is a
/// ValidationException; a stack or layer that does not exist (here, in this account and region)
/// is `Unable to find <stack|layer> with ID <id>`.
async fn resolve(app: &App, given: &str) -> Result<Resource, ApiError> {
    let arn = Arn::parse(given).ok_or_else(|| {
        ApiError::Validation(format!(
            "Invalid ResourceArn {given}: expected the ARN of a stack (arn:aws:opsworks:<region>:<account>:stack/<id>/) or a layer (arn:aws:opsworks:<region>:<account>:layer/<id>)"
        ))
    })?;
    let (kind, what, is_layer) = match arn.kind {
        ResourceKind::Stack => (Kind::Stack, "stack", false),
        ResourceKind::Layer => (Kind::Layer, "layer", true),
        ResourceKind::Instance => {
            return Err(ApiError::Validation(format!(
                "Tags apply to stacks and layers only; {given} is an instance ARN (instances carry their layers' and stack's tags)"
            )));
        }
    };
    let doc = load(app, kind, what, &arn.id).await?;
    let stored = doc
        .get("Arn")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if Arn::parse(&stored).as_ref() != Some(&arn) {
        // Same ID, but another account or region: not a resource of this server.
        return Err(ApiError::not_found(what, &arn.id));
    }
    let stack_id = doc
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or(&arn.id)
        .to_string();
    let stack = if is_layer {
        load_stack(app, &stack_id).await?
    } else {
        doc
    };
    if stack
        .pointer("/ConfigurationManager/Version")
        .and_then(Value::as_str)
        == Some("11.4")
    {
        return Err(ApiError::Validation(
            "Tagging is not available for stacks on Chef 11.4".into(),
        ));
    }
    Ok(Resource {
        arn: stored,
        stack_id,
        is_layer,
    })
}

/// The own tags stored for `arn` (none when never tagged).
async fn own_tags(app: &App, arn: &str) -> Result<Tags, ApiError> {
    let doc = app
        .store()
        .get(Kind::Tags, arn)
        .await
        .map_err(super::store_error)?;
    Ok(doc
        .and_then(|d| d.get("Tags").cloned())
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default())
}

/// The write that stores `tags` as the own tags of `res` (or drops the document when empty).
fn store_tags(res: &Resource, tags: &Tags) -> Write {
    if tags.is_empty() {
        Write::Delete {
            kind: Kind::Tags,
            id: res.arn.clone(),
        }
    } else {
        put(
            Kind::Tags,
            &res.arn,
            &res.stack_id,
            None,
            json!({ "ResourceArn": res.arn, "Tags": tags }),
        )
    }
}

/// Every layer of the stack with its own tags, for the inherited-tag total.
async fn layers_with_tags(app: &App, stack_id: &str) -> Result<Vec<(String, Tags)>, ApiError> {
    let mut out = Vec::new();
    for layer in list(app, Kind::Layer, Filter::Stack(stack_id)).await? {
        if let Some(arn) = layer.get("Arn").and_then(Value::as_str) {
            out.push((arn.to_string(), own_tags(app, arn).await?));
        }
    }
    Ok(out)
}

/// TagResource: adds tags to a stack or layer, overwriting the values of keys it has. Keys and
/// values are trimmed and checked; the whole request is refused if one tag is.
pub async fn tag_resource(app: &App, req: Req) -> OpResult {
    let given = required_str(&req, "ResourceArn")?.to_string();
    let new = req
        .get("Tags")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut pairs = Vec::with_capacity(new.len());
    for (k, v) in &new {
        let v = v.as_str().ok_or_else(|| {
            ApiError::Validation(format!("The value of tag '{k}' must be a string"))
        })?;
        pairs.push((k.as_str(), v));
    }
    let _guard = app.write_lock().await;
    let res = resolve(app, &given).await?;
    let tags = tags::with_tags(&own_tags(app, &res.arn).await?, pairs).map_err(invalid)?;
    if res.is_layer {
        let stack = load_stack(app, &res.stack_id).await?;
        let stack_arn = stack.get("Arn").and_then(Value::as_str).unwrap_or_default();
        let inherited = own_tags(app, stack_arn).await?;
        tags::check_total(&tags::effective_layer_tags(&inherited, &tags)).map_err(invalid)?;
    } else {
        for (_, layer_tags) in layers_with_tags(app, &res.stack_id).await? {
            tags::check_total(&tags::effective_layer_tags(&tags, &layer_tags)).map_err(invalid)?;
        }
    }
    apply(app, vec![store_tags(&res, &tags)]).await?;
    Ok(json!({}))
}

/// UntagResource: removes the named keys from the resource's own tags (absent keys are fine; a
/// layer keeps showing a key its stack sets).
pub async fn untag_resource(app: &App, req: Req) -> OpResult {
    let given = required_str(&req, "ResourceArn")?.to_string();
    let keys = str_list(&req, "TagKeys").unwrap_or_default();
    let _guard = app.write_lock().await;
    let res = resolve(app, &given).await?;
    let mut tags = own_tags(app, &res.arn).await?;
    for k in &keys {
        tags.remove(k.trim());
    }
    apply(app, vec![store_tags(&res, &tags)]).await?;
    Ok(json!({}))
}

/// ListTags: a stack's tags, or a layer's effective tags (its stack's overridden by its own).
///
/// The API documents `MaxResults` and `NextToken` as "Do not use. A validation exception occurs
/// if you add" them, so they are refused here too.
pub async fn list_tags(app: &App, req: Req) -> OpResult {
    let given = required_str(&req, "ResourceArn")?.to_string();
    for member in ["MaxResults", "NextToken"] {
        if req.get(member).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::Validation(format!(
                "ListTags does not take {member}; it returns every tag at once"
            )));
        }
    }
    let res = resolve(app, &given).await?;
    let own = own_tags(app, &res.arn).await?;
    let shown = if res.is_layer {
        let stack = load_stack(app, &res.stack_id).await?;
        let inherited = own_tags(
            app,
            stack.get("Arn").and_then(Value::as_str).unwrap_or_default(),
        )
        .await?;
        tags::effective_layer_tags(&inherited, &own)
    } else {
        own
    };
    Ok(json!({ "Tags": shown }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::catalog::tests::{call, open, stack_with_instance};

    async fn arns(app: &App, sid: &str) -> (String, String) {
        let stack = call(app, "DescribeStacks", json!({"StackIds": [sid]}))
            .await
            .expect("stack");
        let layers = call(app, "DescribeLayers", json!({"StackId": sid}))
            .await
            .expect("layers");
        let s = stack["Stacks"][0]["Arn"]
            .as_str()
            .expect("stack arn")
            .to_string();
        (
            s,
            layers["Layers"][0]["Arn"]
                .as_str()
                .expect("layer arn")
                .to_string(),
        )
    }

    fn many(prefix: &str, n: usize) -> Value {
        Value::Object(
            (0..n)
                .map(|i| (format!("{prefix}{i}"), json!("v")))
                .collect(),
        )
    }

    #[tokio::test]
    async fn layers_show_stack_tags_overridden_by_their_own() {
        let (_dir, app) = open().await;
        let (sid, _) = stack_with_instance(&app).await;
        let (stack_arn, layer_arn) = arns(&app, &sid).await;
        call(
            &app,
            "TagResource",
            json!({"ResourceArn": stack_arn, "Tags": {"env": "prod", "team": "ops"}}),
        )
        .await
        .expect("tag");
        call(
            &app,
            "TagResource",
            json!({"ResourceArn": layer_arn, "Tags": {"env": "staging"}}),
        )
        .await
        .expect("tag");
        let layer = call(&app, "ListTags", json!({"ResourceArn": layer_arn}))
            .await
            .expect("list");
        assert_eq!(layer["Tags"], json!({"env": "staging", "team": "ops"}));
        let stack = call(&app, "ListTags", json!({"ResourceArn": stack_arn}))
            .await
            .expect("list");
        assert_eq!(stack["Tags"], json!({"env": "prod", "team": "ops"}));
        // Untagging the layer's key shows the stack's value again.
        call(
            &app,
            "UntagResource",
            json!({"ResourceArn": layer_arn, "TagKeys": ["env"]}),
        )
        .await
        .expect("untag");
        let layer = call(&app, "ListTags", json!({"ResourceArn": layer_arn}))
            .await
            .expect("list");
        assert_eq!(layer["Tags"], json!({"env": "prod", "team": "ops"}));
    }

    #[tokio::test]
    async fn a_layer_carries_at_most_50_tags_with_its_stacks() {
        let (_dir, app) = open().await;
        let (sid, _) = stack_with_instance(&app).await;
        let (stack_arn, layer_arn) = arns(&app, &sid).await;
        call(
            &app,
            "TagResource",
            json!({"ResourceArn": stack_arn, "Tags": many("s", 39)}),
        )
        .await
        .expect("39 on the stack");
        call(
            &app,
            "TagResource",
            json!({"ResourceArn": layer_arn, "Tags": many("l", 11)}),
        )
        .await
        .expect("50 in all");
        let over = call(
            &app,
            "TagResource",
            json!({"ResourceArn": layer_arn, "Tags": {"one-more": "v"}}),
        )
        .await;
        assert!(matches!(over, Err(ApiError::Validation(m)) if m.contains("at most 50")));
        // The stack's 40th tag would push its layer to 51: refused too.
        let over = call(
            &app,
            "TagResource",
            json!({"ResourceArn": stack_arn, "Tags": {"s39": "v"}}),
        )
        .await;
        assert!(matches!(over, Err(ApiError::Validation(m)) if m.contains("at most 50")));
        // Overriding an inherited key does not add one.
        call(
            &app,
            "TagResource",
            json!({"ResourceArn": layer_arn, "Tags": {"s0": "mine"}}),
        )
        .await
        .expect("override");
    }

    #[tokio::test]
    async fn chef_11_4_stacks_cannot_be_tagged() {
        let (_dir, app) = open().await;
        let stack = call(
            &app,
            "CreateStack",
            json!({"Name": "old", "Region": "us-east-1", "ServiceRoleArn": "arn:aws:iam::1:role/r",
                   "DefaultInstanceProfileArn": "arn:aws:iam::1:instance-profile/p",
                   "ConfigurationManager": {"Name": "Chef", "Version": "11.4"}}),
        )
        .await
        .expect("stack");
        let described = call(
            &app,
            "DescribeStacks",
            json!({"StackIds": [stack["StackId"]]}),
        )
        .await
        .expect("describe");
        let arn = described["Stacks"][0]["Arn"].clone();
        let refused = call(
            &app,
            "TagResource",
            json!({"ResourceArn": arn, "Tags": {"a": "b"}}),
        )
        .await;
        assert!(matches!(refused, Err(ApiError::Validation(m)) if m.contains("11.4")));
    }
}
