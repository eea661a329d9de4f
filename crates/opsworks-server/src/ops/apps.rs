//! App operations: CreateApp, DescribeApps, UpdateApp, DeleteApp.

use super::{OpResult, Req, unsupported};
use crate::App;

/// CreateApp.
pub async fn create_app(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("CreateApp"))
}

/// DescribeApps.
pub async fn describe_apps(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeApps"))
}

/// UpdateApp.
pub async fn update_app(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("UpdateApp"))
}

/// DeleteApp.
pub async fn delete_app(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DeleteApp"))
}
