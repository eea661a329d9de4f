//! Catalog and diagnostics: DescribeOperatingSystems, DescribeAgentVersions, DescribeServiceErrors.

use super::{OpResult, Req, unsupported};
use crate::App;

/// DescribeOperatingSystems.
pub async fn describe_operating_systems(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeOperatingSystems"))
}

/// DescribeAgentVersions.
pub async fn describe_agent_versions(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeAgentVersions"))
}

/// DescribeServiceErrors.
pub async fn describe_service_errors(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeServiceErrors"))
}
