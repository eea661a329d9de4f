//! The control plane: the OpsWorks Stacks API served over HTTP.
//!
//! A request flows `http` (read, authenticate with SigV4, find the operation, validate the body
//! against the service model) → `ops` (the operation named in `X-Amz-Target`, one module per
//! resource family) → the [`opsworks_store::Store`]. Errors are [`opsworks_api::ApiError`]s, rendered
//! as AWS renders them at the edge.

pub mod agents;
pub mod app;
pub mod config;
pub mod events;
pub mod http;
pub mod keys;
pub mod lifecycle;
pub mod logs;
pub mod machines;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod scheduler;
pub mod watchdog;

pub use app::App;
pub use config::{MetricsConfig, ServerConfig};

use std::future::Future;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data dir or a file in it could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The store failed to open.
    #[error(transparent)]
    Store(#[from] opsworks_store::StoreError),
    /// The master key or credentials are unusable.
    #[error("{0}")]
    Keys(String),
}

/// Serves `router` (the API's, usually with the console merged in) on `listener` until
/// `shutdown` resolves.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
