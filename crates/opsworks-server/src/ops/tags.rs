//! Tags: TagResource, UntagResource, ListTags, on stack and layer ARNs.
//!
//! A resource's own tags are one [`TagSet`] stored under the ARN the resource carries (so
//! DeleteStack removes it by the stack's `Arn`), indexed by the stack. A layer shows its stack's
//! tags overridden by its own ([`tags::effective_layer_tags`]).

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::resource::{Layer, Stack, TagSet};
use opsworks_model::tags::{self, Tags};
use opsworks_model::{Arn, Kind, ResourceKind};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply};
use crate::core::Write;

/// A tagged resource, resolved from its ARN.
struct Tagged {
    /// The ARN as stored on the resource: the ID of its tags.
    arn: String,
    /// The stack it is (or belongs to).
    stack_id: String,
    /// The stack's ARN.
    stack_arn: String,
    /// Whether it is a layer (else a stack).
    is_layer: bool,
}

fn invalid(e: tags::TagError) -> ApiError {
    ApiError::Validation(e.to_string())
}

/// Parses the ARN and finds the stack or layer it names: a malformed ARN or an instance ARN is a
/// ValidationException; a stack or layer that does not exist (here, in this account and region)
/// is `Unable to find <stack|layer> with ID <id>`.
async fn resolve(w: &mut Write<'_>, given: &str) -> Result<Tagged, ApiError> {
    let arn = Arn::parse(given).ok_or_else(|| {
        ApiError::Validation(format!(
            "Invalid ResourceArn {given}: expected the ARN of a stack (arn:aws:opsworks:<region>:<account>:stack/<id>/) or a layer (arn:aws:opsworks:<region>:<account>:layer/<id>)"
        ))
    })?;
    let (stored, stack_id, is_layer) = match arn.kind {
        ResourceKind::Stack => {
            let s = w.get::<Stack>(&arn.id).await?;
            (s.arn, s.stack_id, false)
        }
        ResourceKind::Layer => {
            let l = w.get::<Layer>(&arn.id).await?;
            (l.arn, l.stack_id, true)
        }
        ResourceKind::Instance => {
            return Err(ApiError::Validation(format!(
                "Tags apply to stacks and layers only; {given} is an instance ARN (instances carry their layers' and stack's tags)"
            )));
        }
    };
    if Arn::parse(&stored).as_ref() != Some(&arn) {
        // Same ID, but another account or region: not a resource of this server.
        let what = if is_layer { "layer" } else { "stack" };
        return Err(ApiError::not_found(what, &arn.id));
    }
    let stack: Stack = w.get(&stack_id).await?;
    if stack.chef_version() == "11.4" {
        return Err(ApiError::Validation(
            "Tagging is not available for stacks on Chef 11.4".into(),
        ));
    }
    Ok(Tagged {
        arn: stored,
        stack_id,
        stack_arn: stack.arn,
        is_layer,
    })
}

/// The own tags stored for `arn` (none when never tagged).
async fn own_tags(w: &mut Write<'_>, arn: &str) -> Result<Tags, ApiError> {
    Ok(w.find::<TagSet>(arn)
        .await?
        .map(|t| t.tags)
        .unwrap_or_default())
}

/// Stores `tags` as the own tags of `res` (or drops them when empty).
async fn store_tags(w: &mut Write<'_>, res: &Tagged, tags: Tags) -> Result<(), ApiError> {
    if tags.is_empty() {
        w.delete(Kind::Tags, &res.arn).await?;
    } else {
        w.put(&TagSet {
            resource_arn: res.arn.clone(),
            stack_id: res.stack_id.clone(),
            tags,
        })
        .await?;
    }
    Ok(())
}

/// TagResource: adds tags to a stack or layer, overwriting the values of keys it has. Keys and
/// values are trimmed and checked; the whole request is refused if one tag is.
pub async fn tag_resource(cx: Ctx<'_>, req: shapes::TagResourceRequest) -> OpResult {
    let mut pairs = Vec::with_capacity(req.tags.len());
    for (k, v) in &req.tags {
        let v = v.as_deref().ok_or_else(|| {
            ApiError::Validation(format!("The value of tag '{k}' must be a string"))
        })?;
        pairs.push((k.as_str(), v));
    }
    let mut w = cx.core.write().await?;
    let res = resolve(&mut w, &req.resource_arn).await?;
    let tags = tags::with_tags(&own_tags(&mut w, &res.arn).await?, pairs).map_err(invalid)?;
    if res.is_layer {
        let inherited = own_tags(&mut w, &res.stack_arn).await?;
        tags::check_total(&tags::effective_layer_tags(&inherited, &tags)).map_err(invalid)?;
    } else {
        let layers: Vec<Layer> = w.list(Filter::Stack(&res.stack_id)).await?;
        for layer in layers {
            let layer_tags = own_tags(&mut w, &layer.arn).await?;
            tags::check_total(&tags::effective_layer_tags(&tags, &layer_tags)).map_err(invalid)?;
        }
    }
    store_tags(&mut w, &res, tags).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// UntagResource: removes the named keys from the resource's own tags (absent keys are fine; a
/// layer keeps showing a key its stack sets).
pub async fn untag_resource(cx: Ctx<'_>, req: shapes::UntagResourceRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let res = resolve(&mut w, &req.resource_arn).await?;
    let mut tags = own_tags(&mut w, &res.arn).await?;
    for k in &req.tag_keys {
        tags.remove(k.trim());
    }
    store_tags(&mut w, &res, tags).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// ListTags: a stack's tags, or a layer's effective tags (its stack's overridden by its own).
///
/// The API documents `MaxResults` and `NextToken` as "Do not use. A validation exception occurs
/// if you add" them, so they are refused here too.
pub async fn list_tags(cx: Ctx<'_>, req: shapes::ListTagsRequest) -> OpResult {
    for (member, given) in [
        ("MaxResults", req.max_results.is_some()),
        ("NextToken", req.next_token.is_some()),
    ] {
        if given {
            return Err(ApiError::Validation(format!(
                "ListTags does not take {member}; it returns every tag at once"
            )));
        }
    }
    // A read, but through a transaction so the resource and its tags are read consistently.
    let mut w = cx.core.write().await?;
    let res = resolve(&mut w, &req.resource_arn).await?;
    let own = own_tags(&mut w, &res.arn).await?;
    let shown = if res.is_layer {
        let inherited = own_tags(&mut w, &res.stack_arn).await?;
        tags::effective_layer_tags(&inherited, &own)
    } else {
        own
    };
    drop(w);
    Reply::json(&json!({ "Tags": shown }))
}
