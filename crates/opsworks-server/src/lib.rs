//! The control plane: the OpsWorks Stacks API and everything beside it on one port.
//!
//! Layers, each importing only downward: the edge ([`edge`]: HTTP, authentication, error
//! rendering) → the operations ([`ops`]: one module per resource family, handlers named after the
//! operations, typed requests in and wire shapes out) → the core ([`core`]: state, status
//! changes, commands and the lifecycle chain, machines, events, monitoring, workers) → the store.
//! [`Server::start`] assembles them.

pub mod config;
pub mod core;
pub mod edge;
pub mod ops;
pub mod server;

pub use config::{Instances, MetricsConfig, Mount, Mounted, ServerConfig};
pub use core::Core;
pub use server::{LocalInstances, Server};

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
    /// Local instances were asked for, and this host cannot run them.
    #[error("local instances cannot run on this host: {0}")]
    Instances(String),
    /// A mount (the console) could not be set up.
    #[error("{0}")]
    Mount(String),
}

#[cfg(test)]
pub(crate) mod testkit;
