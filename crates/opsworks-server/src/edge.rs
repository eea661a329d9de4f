//! The edge: everything that speaks HTTP. The OpsWorks API (`api`), the agent protocol
//! (`agents`), what machines download to join (`installer`) and the agent releases operators
//! add (`releases`), the event log (`events`), monitoring (`metrics`) and signed log links (`logs`),
//! with one authentication ([`auth`], answering a [`auth::Caller`]) and one renderer of errors
//! ([`render`]) for all of them. Handlers here parse and authenticate, then call the operations or
//! the core; they hold no rules of their own.

pub mod agents;
pub mod api;
pub mod audit;
pub mod auth;
pub mod events;
pub mod installer;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod query;
pub mod rds_import;
pub mod releases;
pub mod render;

use axum::Router;

use crate::core::Core;

/// Every route of the server but the mounts (the console), on one router.
pub fn router(core: Core) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(agents::routes())
        .merge(installer::routes())
        .merge(releases::routes())
        .merge(logs::routes())
        .merge(events::routes())
        .merge(metrics::routes())
        .merge(audit::routes())
        .merge(rds_import::routes())
        .with_state(core)
}
