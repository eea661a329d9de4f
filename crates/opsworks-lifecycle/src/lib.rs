//! Lifecycle rules, as pure functions of the stored resources: which recipes an event runs on an
//! instance, and the attributes and data bags every run receives.
//!
//! The control plane calls these when it creates a command; they do no I/O, so what an instance
//! will be told can be tested without a server.

pub mod config;
pub mod rds;
pub mod runlist;
pub mod services;

#[cfg(test)]
mod fixtures;

pub use config::{StackSnapshot, attributes, data_bags};
pub use runlist::{Event, run_list};
