//! What several servers on one database share beyond resources, keys and events: notifications
//! (a command for an agent polling another server, events for every server's streams, revoked
//! keys, machine work for the server that runs a machine), the registry of servers and their
//! URLs, leases (the background work only one server does), when each agent was last heard from,
//! and command logs. Only an engine that several processes share implements it
//! ([`crate::Backend::cluster`]); the embedded engine serves one server and needs none of it.
//!
//! Times that servers compare (leases, last-seen) are the database's clock, never a server's, so
//! servers whose clocks disagree still agree on who leads and who is silent.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;

/// A notification: a channel and its payload, delivered to every listening server once the
/// transaction that sent it commits ([`crate::BackendTx::notify`]), in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel.
    pub channel: String,
    /// The payload (at most [`MAX_PAYLOAD`] bytes).
    pub payload: String,
}

/// The longest payload a notification carries (PostgreSQL's limit is 8,000 bytes).
pub const MAX_PAYLOAD: usize = 7_900;

/// A subscription to channels.
#[async_trait]
pub trait Listener: Send {
    /// The next notification; `Ok(None)` when the connection was lost and made again, so
    /// notifications sent meanwhile may be missed (the caller catches up from the tables).
    async fn next(&mut self) -> Result<Option<Notification>, StoreError>;
}

/// A server of the cluster, as it registers itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecord {
    /// Its stable ID (kept in its data dir).
    pub server_id: String,
    /// The URL clients and log links reach it at.
    pub advertise_url: String,
    /// The URL its instances' agents reach it at.
    pub agent_url: String,
    /// Seconds since it last said it is alive (by the database's clock); 0 when registering.
    pub silent_seconds: f64,
}

/// How appending a piece of a command's log went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAppend {
    /// New text was kept.
    Appended,
    /// The piece was already there (a retry): nothing changed.
    Duplicate,
    /// The piece starts after the end of what is kept (`have` bytes): refused, a log has no holes.
    Gap {
        /// Bytes kept so far.
        have: u64,
    },
    /// The log would grow past the limit: refused.
    TooLarge,
    /// The command has ended and the piece is new: refused.
    Ended,
}

/// What servers sharing a database use to work as one.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Subscribes to `channels` on a connection of its own.
    async fn listen(&self, channels: &[&str]) -> Result<Box<dyn Listener>, StoreError>;

    /// Sends a notification now, outside any transaction.
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError>;

    /// Registers (or refreshes) a server: it is alive now.
    async fn register_server(&self, server: &ServerRecord) -> Result<(), StoreError>;
    /// Removes a server that stops.
    async fn deregister_server(&self, server_id: &str) -> Result<(), StoreError>;
    /// The servers that said they are alive within `within`, by ID.
    async fn servers(&self, within: Duration) -> Result<Vec<ServerRecord>, StoreError>;

    /// Takes the lease `name` for `holder` for `ttl`, or renews it if `holder` has it; true when
    /// `holder` has it now. Another holder's lease is taken only once it expired.
    async fn hold_lease(&self, name: &str, holder: &str, ttl: Duration)
    -> Result<bool, StoreError>;
    /// Gives the lease up (a server stopping), so another may take it at once.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Records that these instances' agents were heard from now, through `server_id`. Not part
    /// of any write transaction (it takes no write lock): cheap enough for every agent.
    async fn record_presence(
        &self,
        server_id: &str,
        instance_ids: &[String],
    ) -> Result<(), StoreError>;
    /// How long each agent heard from at all has been silent, through any server.
    async fn presence(&self) -> Result<HashMap<String, Duration>, StoreError>;
    /// Forgets an instance's presence (deleted).
    async fn forget_presence(&self, instance_id: &str) -> Result<(), StoreError>;

    /// Appends `text` at byte `offset` of a command's log (see [`LogAppend`]); `ended` refuses
    /// new text, `max_bytes` bounds the whole log.
    async fn append_log(
        &self,
        command_id: &str,
        offset: u64,
        text: &str,
        ended: bool,
        max_bytes: u64,
    ) -> Result<LogAppend, StoreError>;
    /// A command's log, its last `tail` bytes at most (cut at a character boundary); `None`
    /// when it has none.
    async fn read_log(&self, command_id: &str, tail: u64) -> Result<Option<String>, StoreError>;
    /// Which of these commands have a log.
    async fn logs_present(&self, command_ids: &[String]) -> Result<HashSet<String>, StoreError>;
}
