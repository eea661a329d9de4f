//! Layer operations: CreateLayer, DescribeLayers, UpdateLayer, DeleteLayer, GetHostnameSuggestion.

use super::{OpResult, Req, unsupported};
use crate::App;

/// CreateLayer.
pub async fn create_layer(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("CreateLayer"))
}

/// DescribeLayers.
pub async fn describe_layers(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeLayers"))
}

/// UpdateLayer.
pub async fn update_layer(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("UpdateLayer"))
}

/// DeleteLayer.
pub async fn delete_layer(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DeleteLayer"))
}

/// GetHostnameSuggestion.
pub async fn get_hostname_suggestion(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("GetHostnameSuggestion"))
}
