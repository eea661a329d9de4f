//! Host operations for the recipe engine's system resources: packages, users and groups, cron
//! entries, git checkouts, downloads, and services — through systemd when it is PID 1, otherwise
//! through the project's own supervisor daemon ([`supervisor`]). Plain synchronous functions; no
//! recipe language here.

mod cmd;
pub mod cron;
pub mod definition;
mod error;
pub mod fetch;
pub mod git;
pub mod package;
pub mod service;
pub mod supervisor;
pub mod users;

pub use error::{HostError, Result};
