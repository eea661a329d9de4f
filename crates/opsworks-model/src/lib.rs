//! The OpsWorks domain model, free of I/O: what the control plane reasons about.
//!
//! Identifiers and ARNs, timestamps in AWS's format, the instance state machine (every status
//! change of an instance is a [`instance::transition`]), layer types with their built-in recipes,
//! hostname themes, and the limits AWS documents but the service model does not carry.

pub mod app;
pub mod catalog;
pub mod command;
pub mod deployment;
pub mod event;
pub mod ids;
pub mod instance;
pub mod instance_types;
pub mod layer;
pub mod limits;
pub mod metrics;
pub mod rds;
pub mod resource;
pub mod scaling;
pub mod tags;
pub mod themes;

mod serde_str;

pub use command::CommandName;
pub use event::EventKind;
pub use ids::{Arn, ResourceKind, ec2_id, new_id, timestamp};
pub use instance::{InstanceEvent, InstanceStatus, TransitionError};
pub use resource::{Kind, Resource};
