//! The agent's loop: hello, heartbeats, long-polls, and for each command the exactly-once dance
//! (history lookup, ack, run, log stream, completion through the outbox).
//!
//! Exactly once rests on two records in the state directory: a command's history entry is made
//! before it runs and gets `result.json` when it ends, and its completion sits in the outbox
//! until the server took it. A command that comes back (the server restarted and forgot it was
//! done) finds its result and only has its completion sent again; one whose entry has no result
//! was cut off by an agent restart and is reported failed rather than started a second time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsworks_model::CommandName;
use opsworks_protocol::{
    Ack, AgentCommand, AgentRelease, CommandOutcome, Completion, Goodbye, Heartbeat,
    HeartbeatReply, Hello, HelloReply, LogChunk, MAX_POLL_SECONDS, PollReply, PollRequest,
};
use serde_json::Value;

use crate::client::{Backoff, Client};
use crate::error::{AgentError, Result};
use crate::runner::{self, CmdLog, RunSettings};
use crate::state::{AgentInfo, Entry, StateDir, StoredResult, now_rfc3339};
use crate::update::Installed;

/// How often a running command's new log output is sent.
const LOG_INTERVAL: Duration = Duration::from_millis(200);
/// The most log text sent in one request.
const LOG_CHUNK_BYTES: usize = 256 * 1024;
/// How many times a completion is tried before it waits in the outbox for the next loop.
const COMPLETE_ATTEMPTS: u32 = 4;
/// Extra time a poll request gets beyond the wait it asked for.
const POLL_SLACK: Duration = Duration::from_secs(10);

/// A running agent.
pub struct Agent {
    client: Client,
    instance_id: String,
    state: StateDir,
    settings: RunSettings,
    /// The command being run, for heartbeats and `agent-report`.
    running: Arc<Mutex<Option<String>>>,
    /// Whether a long poll is out: the server counts an agent waiting in a poll as alive, so no
    /// heartbeat is sent meanwhile (nor a second connection held for it).
    polling: Arc<AtomicBool>,
    /// One command at a time in this process (the run lock file covers other processes).
    run_lock: tokio::sync::Mutex<()>,
    info: Mutex<AgentInfo>,
    /// The installation it runs from (registered machines), which it updates and removes.
    installed: Option<Installed>,
}

impl Agent {
    /// An agent for `instance_id` talking through `client`.
    pub fn new(
        client: Client,
        instance_id: String,
        settings: RunSettings,
        info: AgentInfo,
    ) -> Agent {
        Agent {
            client,
            instance_id,
            state: settings.state.clone(),
            settings,
            running: Arc::new(Mutex::new(None)),
            polling: Arc::new(AtomicBool::new(false)),
            run_lock: tokio::sync::Mutex::new(()),
            info: Mutex::new(info),
            installed: None,
        }
    }

    /// The agent of an installation (a registered machine's): it reports its release, updates
    /// itself to the one the server names and uninstalls itself when deregistered.
    pub fn with_installation(mut self, installed: Option<Installed>) -> Agent {
        self.installed = installed;
        self
    }

    /// Runs forever: the server being away or refusing is retried, never fatal.
    pub async fn run(self: Arc<Self>) {
        self.recover_interrupted();
        let hello = self.hello().await;
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeats(
            self.client.clone(),
            self.instance_id.clone(),
            self.running.clone(),
            self.polling.clone(),
            Duration::from_secs(hello.heartbeat_seconds.max(1)),
        )));
        let _metrics = AbortOnDrop(tokio::spawn(crate::metrics::run(
            self.client.clone(),
            self.instance_id.clone(),
            hello
                .metrics_seconds
                .map_or(crate::metrics::DEFAULT_INTERVAL, Duration::from_secs),
        )));
        self.follow_release(hello.agent_release.as_ref()).await;
        let poll_seconds = hello.poll_seconds.min(MAX_POLL_SECONDS);
        let mut backoff = Backoff::default();
        loop {
            let outbox_empty = self.flush_outbox().await;
            // With completions still waiting, come back at once rather than after a long wait.
            let wait = if outbox_empty { poll_seconds } else { 0 };
            let req = PollRequest {
                instance_id: self.instance_id.clone(),
                wait_seconds: wait,
            };
            self.polling.store(true, Ordering::SeqCst);
            let polled = self
                .client
                .call::<_, PollReply>("poll", &req, Duration::from_secs(wait) + POLL_SLACK)
                .await;
            self.polling.store(false, Ordering::SeqCst);
            match polled {
                Ok(reply) => {
                    backoff.reset();
                    self.client.learn(&reply.servers);
                    self.touch(None);
                    self.handle_batch(reply.commands).await;
                    if reply.deregistered {
                        self.leave().await;
                    }
                    self.follow_release(reply.agent_release.as_ref()).await;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "poll failed");
                    tokio::time::sleep(delay).await;
                    if !e.is_transient() {
                        // The server may have forgotten us (a restart with a new store): say
                        // hello again before polling on.
                        self.hello().await;
                    }
                }
            }
        }
    }

    /// Moves to the release the server names, when this agent is installed and runs another.
    async fn follow_release(&self, wanted: Option<&AgentRelease>) {
        let (Some(installed), Some(wanted)) = (&self.installed, wanted) else {
            return;
        };
        if !installed.wants(wanted) {
            return;
        }
        // Returns only when the update could not be made; this agent carries on.
        if let Err(e) = installed.apply(&self.client, wanted).await {
            tracing::error!(version = %wanted.version, error = %e, "cannot update the agent");
        }
    }

    /// The machine was deregistered: say goodbye, then uninstall (from a process outside the
    /// service, which removing the service does not end). Waits to be stopped.
    async fn leave(&self) {
        tracing::info!("the machine was deregistered: uninstalling the agent");
        let bye = Goodbye {
            instance_id: self.instance_id.clone(),
        };
        if let Err(e) = self
            .client
            .call_retrying::<_, Value>("goodbye", &bye, Some(5))
            .await
        {
            tracing::warn!(error = %e, "the server did not take the goodbye; uninstalling anyway");
        }
        if self.installed.is_none() {
            tracing::error!(
                "this agent was not installed (no --install-dir): nothing to uninstall; stop it"
            );
            return;
        }
        let started = std::env::current_exe()
            .and_then(|exe| crate::update::detach("uninstall", &exe, &["agent-uninstall".into()]));
        match started {
            Ok(()) => std::future::pending::<()>().await,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the uninstaller; remove the agent with `opsworks agent-uninstall`")
            }
        }
    }

    /// Says hello until the server accepts it.
    async fn hello(&self) -> HelloReply {
        let installed = self.installed.as_ref();
        let hello = Hello {
            instance_id: self.instance_id.clone(),
            agent_version: installed
                .and_then(|i| i.release())
                .map_or_else(|| crate::VERSION.to_string(), |r| r.version.clone()),
            hostname: crate::facts::hostname(),
            reported_os: crate::facts::reported_os(),
            addresses: crate::facts::addresses(),
            release: installed.and_then(|i| i.release()).cloned(),
            rolled_back: installed.and_then(|i| i.rolled_back()),
        };
        let mut backoff = Backoff::default();
        loop {
            match self
                .client
                .call_retrying::<_, HelloReply>("hello", &hello, Some(1))
                .await
            {
                Ok(reply) => {
                    tracing::info!(stack_id = %reply.stack_id, server = %self.client.server(), "the server accepted the agent");
                    self.client.learn(&reply.servers);
                    if let Some(i) = &self.installed {
                        i.reported_in();
                    }
                    if let Ok(mut info) = self.info.lock() {
                        info.reported_in_at = Some(now_rfc3339());
                    }
                    self.touch(None);
                    return reply;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "hello failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Runs a poll's commands in order; of several `configure`s only the newest runs, the older
    /// ones end as skipped.
    pub async fn handle_batch(&self, commands: Vec<AgentCommand>) {
        let newest_configure = commands
            .iter()
            .rposition(|c| c.kind == CommandName::Configure);
        for (i, cmd) in commands.iter().enumerate() {
            match newest_configure {
                Some(last) if cmd.kind == CommandName::Configure && i < last => {
                    self.skip(cmd, &commands[last].command_id).await
                }
                _ => self.process(cmd).await,
            }
        }
    }

    /// Records `cmd` as skipped (superseded by `by`) and reports it.
    async fn skip(&self, cmd: &AgentCommand, by: &str) {
        let _guard = self.run_lock.lock().await;
        if self.redelivered(cmd).await {
            return;
        }
        let result = (|| -> Result<StoredResult> {
            let entry = self.state.create_entry(cmd)?;
            CmdLog::open(&entry.log_path())?
                .line(format!("skipped: superseded by the newer configure {by}"));
            let result = StoredResult {
                completion: Completion {
                    instance_id: self.instance_id.clone(),
                    command_id: cmd.command_id.clone(),
                    outcome: CommandOutcome::Skipped,
                    exit_code: 0,
                    report: Some(serde_json::json!({"superseded_by": by})),
                    app_revisions: None,
                },
                started_at: None,
                completed_at: now_rfc3339(),
            };
            entry.write_result(&result)?;
            self.state.prune(Some(&entry))?;
            Ok(result)
        })();
        match result {
            Ok(r) => self.deliver(&r.completion, true).await,
            Err(e) => {
                tracing::error!(command_id = %cmd.command_id, error = %e, "cannot record a skipped command")
            }
        }
    }

    /// Whether `cmd` was seen before; if so its (possibly recovered) completion is sent again.
    async fn redelivered(&self, cmd: &AgentCommand) -> bool {
        let entry = match self.state.find(&cmd.command_id) {
            Ok(Some(entry)) => entry,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the command history");
                return false;
            }
        };
        let result = match entry.result() {
            Ok(Some(result)) => result,
            // Started but never finished, and not yet recovered at startup.
            Ok(None) | Err(_) => self.record_interrupted(&entry, &cmd.command_id),
        };
        tracing::info!(command_id = %cmd.command_id, "command delivered again; re-sending its completion");
        self.deliver(&result.completion, true).await;
        true
    }

    /// Records a command the agent stopped in the middle of as failed. Running it again could
    /// repeat half-done work, so it is not.
    fn record_interrupted(&self, entry: &Entry, command_id: &str) -> StoredResult {
        if let Ok(log) = CmdLog::open(&entry.log_path()) {
            log.line("the agent stopped while this command ran; it is not run again");
        }
        let result = StoredResult {
            completion: Completion {
                instance_id: self.instance_id.clone(),
                command_id: command_id.to_string(),
                outcome: CommandOutcome::Failed,
                exit_code: 1,
                report: Some(serde_json::json!({"error": "interrupted by an agent restart"})),
                app_revisions: None,
            },
            started_at: None,
            completed_at: now_rfc3339(),
        };
        if let Err(e) = entry.write_result(&result) {
            tracing::error!(error = %e, "cannot record the result of an interrupted command");
        }
        result
    }

    /// At startup: every history entry without a result was cut off by the last agent's end;
    /// its failure goes to the outbox so the server hears of it without handing it out again.
    fn recover_interrupted(&self) {
        let entries = match self.state.entries() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the command history");
                return;
            }
        };
        for entry in entries {
            if !matches!(entry.result(), Ok(None)) {
                continue;
            }
            let Ok(cmd) = entry.command() else { continue };
            tracing::warn!(command_id = %cmd.command_id, "command interrupted by the agent's last stop; reporting it failed");
            let result = self.record_interrupted(&entry, &cmd.command_id);
            if let Err(e) = self.state.outbox_put(&result.completion) {
                tracing::error!(error = %e, "cannot write the outbox");
            }
        }
    }

    /// Acks, runs and reports one command, unless it ran before.
    async fn process(&self, cmd: &AgentCommand) {
        let _guard = self.run_lock.lock().await;
        if self.redelivered(cmd).await {
            return;
        }
        let ack = Ack {
            instance_id: self.instance_id.clone(),
            command_id: cmd.command_id.clone(),
        };
        // Nothing has started yet, so waiting for the server here loses nothing.
        if let Err(e) = self
            .client
            .call_retrying::<_, Value>("ack", &ack, None)
            .await
        {
            tracing::warn!(command_id = %cmd.command_id, error = %e, "the server refused the ack; not running the command");
            return;
        }
        let entry = match self.state.create_entry(cmd) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(command_id = %cmd.command_id, error = %e, "cannot record the command");
                let completion = self.completion(
                    cmd,
                    CommandOutcome::Failed,
                    1,
                    Some(serde_json::json!({"error": e.to_string()})),
                );
                self.deliver(&completion, false).await;
                return;
            }
        };
        if let Err(e) = self.state.prune(Some(&entry)) {
            tracing::warn!(error = %e, "cannot prune the command history");
        }
        let started_at = now_rfc3339();
        self.set_running(Some(cmd.command_id.clone()));
        let ran = self.run_logged(cmd, &entry).await;
        self.set_running(None);
        let result = StoredResult {
            completion: Completion {
                app_revisions: (!ran.app_revisions.is_empty()).then_some(ran.app_revisions),
                ..self.completion(cmd, ran.outcome, ran.exit_code, Some(ran.report))
            },
            started_at: Some(started_at),
            completed_at: now_rfc3339(),
        };
        if let Err(e) = entry.write_result(&result) {
            tracing::error!(command_id = %cmd.command_id, error = %e, "cannot record the result");
        }
        self.deliver(&result.completion, !ran.log_shipped).await;
    }

    /// Runs the command under the run lock file, streaming its log while it runs.
    async fn run_logged(&self, cmd: &AgentCommand, entry: &Entry) -> Ran {
        let log = match CmdLog::open(&entry.log_path()) {
            Ok(log) => log,
            Err(e) => {
                return Ran {
                    outcome: CommandOutcome::Failed,
                    exit_code: 1,
                    report: serde_json::json!({"error": e.to_string()}),
                    app_revisions: BTreeMap::new(),
                    log_shipped: false,
                };
            }
        };
        let state = self.state.clone();
        let file_lock = match tokio::task::spawn_blocking(move || state.lock_run()).await {
            Ok(Ok(lock)) => Some(lock),
            Ok(Err(e)) => {
                log.line(format!("warning: {e}"));
                None
            }
            Err(_) => None,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shipper = tokio::spawn(stream_log(
            self.client.clone(),
            self.instance_id.clone(),
            cmd.command_id.clone(),
            entry.log_path(),
            stop_rx,
        ));
        let outcome = runner::execute(&self.settings, cmd, entry, &log).await;
        drop(file_lock);
        let _ = stop_tx.send(true);
        let log_shipped = shipper.await.unwrap_or(false);
        self.touch(None);
        Ran {
            outcome: outcome.outcome,
            exit_code: outcome.exit_code,
            report: outcome.report,
            app_revisions: outcome.app_revisions,
            log_shipped,
        }
    }

    fn completion(
        &self,
        cmd: &AgentCommand,
        outcome: CommandOutcome,
        exit_code: i32,
        report: Option<Value>,
    ) -> Completion {
        Completion {
            instance_id: self.instance_id.clone(),
            command_id: cmd.command_id.clone(),
            outcome,
            exit_code,
            report,
            app_revisions: None,
        }
    }

    /// Puts the completion in the outbox and tries to send it (with the whole log first when
    /// `with_log`); what does not get through waits in the outbox for the next loop.
    async fn deliver(&self, completion: &Completion, with_log: bool) {
        if let Err(e) = self.state.outbox_put(completion) {
            tracing::error!(error = %e, "cannot write the outbox");
        }
        self.send_completion(completion, with_log).await;
    }

    /// Sends one completion; true when the outbox no longer needs it.
    async fn send_completion(&self, completion: &Completion, with_log: bool) -> bool {
        if with_log && let Ok(Some(entry)) = self.state.find(&completion.command_id) {
            let mut ship = LogShipper::new(entry.log_path());
            if let Err(e) = ship
                .ship(
                    &self.client,
                    &self.instance_id,
                    &completion.command_id,
                    true,
                )
                .await
            {
                tracing::warn!(command_id = %completion.command_id, error = %e, "cannot send the log yet");
                return false;
            }
        }
        match self
            .client
            .call_retrying::<_, Value>("complete", completion, Some(COMPLETE_ATTEMPTS))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!(command_id = %completion.command_id, error = %e, "completion kept in the outbox");
                return false;
            }
            Err(e) => {
                // The server will not take it however often it is sent.
                tracing::error!(command_id = %completion.command_id, error = %e, "the server refused the completion; dropped");
            }
        }
        if let Err(e) = self.state.outbox_remove(&completion.command_id) {
            tracing::error!(error = %e, "cannot clear the outbox");
        }
        self.touch(None);
        true
    }

    /// Sends what waits in the outbox, logs included; true when it is empty afterwards.
    async fn flush_outbox(&self) -> bool {
        let items = match self.state.outbox() {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return true;
            }
        };
        for completion in items {
            if !self.send_completion(&completion, true).await {
                return false;
            }
        }
        true
    }

    fn set_running(&self, id: Option<String>) {
        if let Ok(mut r) = self.running.lock() {
            *r = id.clone();
        }
        self.touch(Some(id));
    }

    /// Records activity (and the running command, when given) in `agent.json`.
    fn touch(&self, running: Option<Option<String>>) {
        let Ok(mut info) = self.info.lock() else {
            return;
        };
        info.last_activity = now_rfc3339();
        if let Some(r) = running {
            info.running = r;
        }
        if let Err(e) = self.state.write_info(&info) {
            tracing::warn!(error = %e, "cannot write agent.json");
        }
    }
}

/// Ends a background task when the agent's loop ends (on shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What [`Agent::run_logged`] gives back.
struct Ran {
    outcome: CommandOutcome,
    exit_code: i32,
    report: Value,
    /// The git commit each app was deployed at, by app ID.
    app_revisions: BTreeMap<String, String>,
    /// Whether the whole log reached the server.
    log_shipped: bool,
}

/// Sends a heartbeat every `every` while no long poll is out (a waiting poll tells the server
/// the agent is alive); failures are only logged (the poll loop deals with an unreachable server).
async fn heartbeats(
    client: Client,
    instance_id: String,
    running: Arc<Mutex<Option<String>>>,
    polling: Arc<AtomicBool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if polling.load(Ordering::SeqCst) {
            continue;
        }
        let beat = Heartbeat {
            instance_id: instance_id.clone(),
            running: running.lock().ok().and_then(|r| r.clone()),
        };
        match client
            .call::<_, Option<HeartbeatReply>>("heartbeat", &beat, Duration::from_secs(10))
            .await
        {
            // The servers of the control plane as they are now (some may have come or gone).
            Ok(reply) => client.learn(&reply.unwrap_or_default().servers),
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}

/// Streams the log at `path` every [`LOG_INTERVAL`] until `stop`, then sends the rest.
/// Returns whether everything reached the server.
async fn stream_log(
    client: Client,
    instance_id: String,
    command_id: String,
    path: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut ship = LogShipper::new(path);
    loop {
        let stopped = tokio::select! {
            _ = tokio::time::sleep(LOG_INTERVAL) => false,
            _ = stop.changed() => true,
        };
        if stopped || *stop.borrow() {
            break;
        }
        // A failed piece is sent again on the next tick; the server ignores what it has.
        let _ = ship.ship(&client, &instance_id, &command_id, false).await;
    }
    for attempt in 0..3u32 {
        if ship
            .ship(&client, &instance_id, &command_id, true)
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
    false
}

/// Reads a log file incrementally and sends it as [`LogChunk`]s. Offsets count bytes of the
/// text sent (the file's bytes, with invalid UTF-8 replaced the same way however the file is
/// cut into pieces), so the server can tell a repeated piece from a new one.
pub struct LogShipper {
    path: PathBuf,
    file_pos: u64,
    text_pos: u64,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last read.
    carry: Vec<u8>,
    /// A piece read but not yet accepted by the server.
    unsent: Option<Piece>,
}

/// A piece of log text and where reading goes on once the server has it.
#[derive(Debug, Clone)]
struct Piece {
    offset: u64,
    text: String,
    next_file_pos: u64,
    carry: Vec<u8>,
}

impl LogShipper {
    /// A shipper starting at the beginning of `path`.
    pub fn new(path: PathBuf) -> LogShipper {
        LogShipper {
            path,
            file_pos: 0,
            text_pos: 0,
            carry: Vec::new(),
            unsent: None,
        }
    }

    /// Sends everything new in the file; `last` when the file is complete (an incomplete UTF-8
    /// sequence at its end is then sent as U+FFFD).
    pub async fn ship(
        &mut self,
        client: &Client,
        instance_id: &str,
        command_id: &str,
        last: bool,
    ) -> Result<()> {
        loop {
            if self.unsent.is_none() {
                self.unsent = self.read_piece(last)?;
            }
            let Some(piece) = self.unsent.take() else {
                return Ok(());
            };
            let chunk = LogChunk {
                instance_id: instance_id.to_string(),
                command_id: command_id.to_string(),
                offset: piece.offset,
                text: piece.text.clone(),
            };
            if let Err(e) = client
                .call::<_, Value>("log", &chunk, Duration::from_secs(15))
                .await
            {
                // Sent again as it is next time, so the server sees the same offsets.
                self.unsent = Some(piece);
                return Err(e);
            }
            self.file_pos = piece.next_file_pos;
            self.text_pos = piece.offset + piece.text.len() as u64;
            self.carry = piece.carry;
        }
    }

    /// The next piece of text, if the file grew (or `last` flushes a carried partial char).
    fn read_piece(&self, last: bool) -> Result<Option<Piece>> {
        use std::io::{Read as _, Seek as _};
        let mut bytes = self.carry.clone();
        let mut next_file_pos = self.file_pos;
        let mut at_end = true;
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            f.seek(std::io::SeekFrom::Start(self.file_pos))
                .map_err(|e| AgentError::io("cannot read", &self.path, e))?;
            let mut buf = Vec::new();
            f.take(LOG_CHUNK_BYTES as u64)
                .read_to_end(&mut buf)
                .map_err(|e| AgentError::io("cannot read", &self.path, e))?;
            next_file_pos += buf.len() as u64;
            // A full read may have cut a character the next read completes.
            at_end = buf.len() < LOG_CHUNK_BYTES;
            bytes.extend_from_slice(&buf);
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let (text, carry) = decode(&bytes, last && at_end);
        if text.is_empty() {
            return Ok(None);
        }
        Ok(Some(Piece {
            offset: self.text_pos,
            text,
            next_file_pos,
            carry,
        }))
    }
}

/// Decodes `bytes` as UTF-8, invalid sequences as U+FFFD; an incomplete sequence at the end is
/// returned to carry into the next read unless `last`.
fn decode(bytes: &[u8], last: bool) -> (String, Vec<u8>) {
    let mut text = String::new();
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                text.push_str(s);
                return (text, Vec::new());
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                text.push_str(std::str::from_utf8(good).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        text.push('\u{FFFD}');
                        rest = &bad[n..];
                    }
                    None if last => {
                        text.push('\u{FFFD}');
                        return (text, Vec::new());
                    }
                    None => return (text, bad.to_vec()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decoding_does_not_depend_on_where_the_file_is_cut() {
        let bytes = "héllo \u{1F600} wörld".as_bytes().to_vec();
        let mut bad = bytes.clone();
        bad.insert(3, 0xff);
        for input in [bytes, bad] {
            let (whole, _) = decode(&input, true);
            for cut in 0..input.len() {
                let (a, carry) = decode(&input[..cut], false);
                let mut next = carry;
                next.extend_from_slice(&input[cut..]);
                let (b, _) = decode(&next, true);
                assert_eq!(format!("{a}{b}"), whole, "cut at {cut}");
            }
        }
    }
}
