//! Which agents are alive, and the wake-ups of the ones waiting in a long poll.
//!
//! An agent is alive while it waits in a long poll, and for a while after it last spoke. A new
//! command for an instance wakes its waiting poll at once. With several servers on one database,
//! what this server hears is also flushed to the database in batches ([`Presence::take_seen`]),
//! so whichever server runs the watchdog sees agents polling any server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The agents this server hears from.
#[derive(Debug)]
pub struct Presence {
    /// One wake-up per instance: a long-polling agent waits on it, a new command notifies it.
    wakeups: Mutex<HashMap<String, Arc<Notify>>>,
    /// When each agent last spoke.
    last_seen: Mutex<HashMap<String, Instant>>,
    /// Agents waiting in a long poll right now (an agent waiting is alive).
    polling: Mutex<HashMap<String, usize>>,
    /// Agents heard from since the last flush to a shared database.
    unflushed: Mutex<HashSet<String>>,
    /// When this server started: an agent not heard from since counts as silent from then.
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Presence {
    fn default() -> Self {
        Self {
            wakeups: Mutex::default(),
            last_seen: Mutex::default(),
            polling: Mutex::default(),
            unflushed: Mutex::default(),
            started: Instant::now(),
        }
    }
}

impl Presence {
    /// The wake-up of an instance's agent.
    pub fn wakeup(&self, instance_id: &str) -> Arc<Notify> {
        lock(&self.wakeups)
            .entry(instance_id.to_string())
            .or_default()
            .clone()
    }

    /// Wakes the agent of an instance: a command is waiting for it.
    pub fn notify(&self, instance_id: &str) {
        // notify_one stores a permit when nobody waits yet, so a poll that starts later sees it.
        self.wakeup(instance_id).notify_one();
    }

    /// Wakes the agent of an instance if it ever long-polled this server (a command was created
    /// through another server: only the one it waits on needs to hear).
    pub fn notify_waiting(&self, instance_id: &str) {
        if let Some(w) = lock(&self.wakeups).get(instance_id) {
            w.notify_one();
        }
    }

    /// Wakes every agent waiting here: each looks at its commands again (after notifications
    /// from other servers may have been missed).
    pub fn wake_all(&self) {
        for w in lock(&self.wakeups).values() {
            w.notify_one();
        }
    }

    /// Records that an instance's agent spoke now.
    pub fn saw(&self, instance_id: &str) {
        lock(&self.last_seen).insert(instance_id.to_string(), Instant::now());
        let mut unflushed = lock(&self.unflushed);
        if !unflushed.contains(instance_id) {
            unflushed.insert(instance_id.to_string());
        }
    }

    /// The agents heard from since the last call, and those waiting in a poll now (alive as
    /// long as they wait), for the shared database.
    pub fn take_seen(&self) -> Vec<String> {
        let mut seen: HashSet<String> = std::mem::take(&mut *lock(&self.unflushed));
        seen.extend(
            lock(&self.polling)
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(id, _)| id.clone()),
        );
        seen.into_iter().collect()
    }

    /// Puts back what [`take_seen`](Self::take_seen) gave when it could not be flushed.
    pub fn unflushed(&self, seen: Vec<String>) {
        lock(&self.unflushed).extend(seen);
    }

    /// Restarts an instance's silence clock: its agent was just (re)started with its machine and
    /// gets a whole healing timeout to speak first. Its words before the boot do not count: the
    /// silence of a booting agent is measured from its boot.
    pub fn booted(&self, instance_id: &str) {
        lock(&self.last_seen).insert(instance_id.to_string(), Instant::now());
    }

    /// Forgets an instance (deleted): its wake-up and its last word.
    pub fn forget(&self, instance_id: &str) {
        lock(&self.wakeups).remove(instance_id);
        lock(&self.last_seen).remove(instance_id);
        lock(&self.unflushed).remove(instance_id);
    }

    /// How long an instance's agent has been silent: zero while it waits in a long poll, else the
    /// time since it last spoke (or since this server started).
    pub fn silence(&self, instance_id: &str) -> Duration {
        if lock(&self.polling).get(instance_id).is_some_and(|n| *n > 0) {
            return Duration::ZERO;
        }
        lock(&self.last_seen)
            .get(instance_id)
            .copied()
            .unwrap_or(self.started)
            .elapsed()
    }

    /// Marks an agent as waiting in a long poll until the returned guard drops.
    pub fn polling(self: &Arc<Self>, instance_id: &str) -> PollGuard {
        *lock(&self.polling)
            .entry(instance_id.to_string())
            .or_default() += 1;
        PollGuard {
            presence: self.clone(),
            instance_id: instance_id.to_string(),
        }
    }

    /// How many agents are connected: waiting in a long poll, or heard from within `within`.
    pub fn connected(&self, within: Duration) -> usize {
        let polling = lock(&self.polling);
        let last_seen = lock(&self.last_seen);
        let mut ids: HashSet<&String> = polling
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(id, _)| id)
            .collect();
        ids.extend(
            last_seen
                .iter()
                .filter(|(_, t)| t.elapsed() < within)
                .map(|(id, _)| id),
        );
        ids.len()
    }
}

/// An agent's long poll in progress; see [`Presence::polling`].
pub struct PollGuard {
    presence: Arc<Presence>,
    instance_id: String,
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        self.presence.saw(&self.instance_id);
        if let Some(n) = lock(&self.presence.polling).get_mut(&self.instance_id) {
            *n = n.saturating_sub(1);
        }
    }
}
