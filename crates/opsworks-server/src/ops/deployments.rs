//! Deployment operations: CreateDeployment, DescribeDeployments, DescribeCommands.

use super::{OpResult, Req, unsupported};
use crate::App;

/// CreateDeployment.
pub async fn create_deployment(_app: &App, _caller: &super::Caller, _req: Req) -> OpResult {
    Err(unsupported("CreateDeployment"))
}

/// DescribeDeployments.
pub async fn describe_deployments(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeDeployments"))
}

/// DescribeCommands.
pub async fn describe_commands(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeCommands"))
}
