//! Tags: TagResource, UntagResource, ListTags.

use super::{OpResult, Req, unsupported};
use crate::App;

/// TagResource.
pub async fn tag_resource(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("TagResource"))
}

/// UntagResource.
pub async fn untag_resource(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("UntagResource"))
}

/// ListTags.
pub async fn list_tags(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("ListTags"))
}
