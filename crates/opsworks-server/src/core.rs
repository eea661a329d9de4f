//! The core of the control plane, below the operations: the shared state and its write
//! transactions, instance status changes, commands and the lifecycle chain, the machines instances
//! run on, the event log, monitoring, and the background workers (scheduler, watchdog, metrics
//! maintenance, package proxy, event pruning).
//!
//! The core knows nothing of HTTP or of the wire: it speaks typed resources and returns
//! [`CoreError`]; the edge maps that to the API's error codes.

pub mod agent_releases;
pub mod appliances;
pub mod audit;
pub mod cluster;
pub mod commands;
pub mod elastic_ips;
pub mod elb;
mod error;
pub mod events;
pub mod identity;
pub mod instances;
pub mod keys;
pub mod lifecycle;
pub mod logs;
pub mod machines;
pub mod metrics;
pub mod presence;
pub mod proxy;
pub mod rds;
pub mod registration;
pub mod scheduler;
pub mod service_errors;
mod state;
pub mod users;
pub mod volumes;
pub mod watchdog;
pub mod workers;

pub use error::{CoreError, CoreResult};
pub use state::{Core, Write};

/// The current time in AWS's timestamp format (`CreatedAt`).
pub fn now() -> String {
    opsworks_model::timestamp(jiff::Timestamp::now())
}
