//! Limits on failed sign-ins, per client address and per account, over sliding windows.
//!
//! An attempt is counted when it starts (so a burst of concurrent tries is limited before any of
//! them is hashed) and forgotten when it succeeds; each count is of the attempts of the last
//! [`Rule::window`], so a limit lifts by itself as the oldest failures age out: nobody is locked
//! out for good. A successful sign-in clears its address's count.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max` failed attempts in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// How many failures the window holds.
    pub max: usize,
    /// How far back failures count.
    pub window: Duration,
}

/// Per client address: a person mistyping gets ten tries in five minutes.
pub const PER_ADDRESS: Rule = Rule {
    max: 10,
    window: Duration::from_secs(300),
};

/// Per account, whatever the address: a guesser spread over many addresses gets a hundred tries
/// in five minutes, however many addresses it has.
pub const PER_ACCOUNT: Rule = Rule {
    max: 100,
    window: Duration::from_secs(300),
};

/// The times of the attempts within one key's window, oldest first.
#[derive(Debug, Default)]
struct Window(VecDeque<Instant>);

impl Window {
    /// Drops what is older than the window.
    fn prune(&mut self, rule: Rule, now: Instant) {
        while self
            .0
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= rule.window)
        {
            self.0.pop_front();
        }
    }

    /// When full: how long until the oldest attempt leaves the window.
    fn wait(&self, rule: Rule, now: Instant) -> Option<Duration> {
        if self.0.len() < rule.max {
            return None;
        }
        let oldest = *self.0.front()?;
        Some(
            rule.window
                .saturating_sub(now.saturating_duration_since(oldest)),
        )
    }
}

/// The windows of every key of one kind (addresses or accounts).
#[derive(Debug)]
struct Windows<K> {
    rule: Rule,
    by_key: HashMap<K, Window>,
}

impl<K: std::hash::Hash + Eq + Clone> Windows<K> {
    fn new(rule: Rule) -> Self {
        Windows {
            rule,
            by_key: HashMap::new(),
        }
    }

    /// How long `key` must wait, after dropping whatever has aged out (of every key, once the
    /// map has grown: memory stays proportional to the attempts of one window).
    fn wait(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let rule = self.rule;
        if self.by_key.len() > 256 {
            self.by_key.retain(|_, w| {
                w.prune(rule, now);
                !w.0.is_empty()
            });
        }
        let w = self.by_key.get_mut(key)?;
        w.prune(rule, now);
        w.wait(rule, now)
    }

    fn add(&mut self, key: K, now: Instant) {
        self.by_key.entry(key).or_default().0.push_back(now);
    }

    /// Forgets one attempt of `key` made at `at`.
    fn forget(&mut self, key: &K, at: Instant) {
        if let Some(w) = self.by_key.get_mut(key) {
            if let Some(i) = w.0.iter().position(|t| *t == at) {
                w.0.remove(i);
            }
            if w.0.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
}

/// The key of a client address: the address itself, or an IPv6 address's /64 (one host usually
/// holds the whole /64).
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// An attempt under way, counted in its address's and account's windows.
#[derive(Debug)]
pub struct Attempt {
    address: IpAddr,
    account: String,
    at: Instant,
}

/// The sign-in limits of one console.
#[derive(Debug)]
pub struct SignInLimits {
    inner: Mutex<(Windows<IpAddr>, Windows<String>)>,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits::new(PER_ADDRESS, PER_ACCOUNT)
    }
}

impl SignInLimits {
    /// Limits with these rules.
    pub fn new(per_address: Rule, per_account: Rule) -> Self {
        SignInLimits {
            inner: Mutex::new((Windows::new(per_address), Windows::new(per_account))),
        }
    }

    /// Starts an attempt from `address` on `account` at `now`, counted as a failure until
    /// [`SignInLimits::succeeded`]; or, when either window is full, how long to wait.
    pub fn begin(&self, address: IpAddr, account: &str, now: Instant) -> Result<Attempt, Duration> {
        let address = address_key(address);
        let account = account.to_string();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (by_address, by_account) = &mut *guard;
        let wait = [
            by_address.wait(&address, now),
            by_account.wait(&account, now),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        by_address.add(address, now);
        by_account.add(account.clone(), now);
        Ok(Attempt {
            address,
            account,
            at: now,
        })
    }

    /// The attempt was right: its address starts afresh, and it no longer counts against the
    /// account.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (by_address, by_account) = &mut *guard;
        by_address.by_key.remove(&attempt.address);
        by_account.forget(&attempt.account, attempt.at);
    }
}

/// Whole seconds to tell a client to wait: rounded up, at least one.
pub fn seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn rule(max: usize, secs: u64) -> Rule {
        Rule {
            max,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn an_address_is_limited_then_let_in_again_as_failures_age() {
        let limits = SignInLimits::new(rule(3, 60), rule(100, 60));
        let t0 = Instant::now();
        for i in 0..3 {
            limits
                .begin(A, "root", t0 + Duration::from_secs(i))
                .unwrap();
        }
        let wait = limits
            .begin(A, "root", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "until the first one is 60 s old"
        );
        assert_eq!(seconds(wait), 50);
        // Another address is not held back.
        limits
            .begin(B, "root", t0 + Duration::from_secs(10))
            .unwrap();
        // The window slides: one more try once the oldest failure is a minute old, not three.
        limits
            .begin(A, "root", t0 + Duration::from_secs(60))
            .unwrap();
        assert!(
            limits
                .begin(A, "root", t0 + Duration::from_secs(60))
                .is_err()
        );
        assert!(
            limits
                .begin(A, "root", t0 + Duration::from_secs(62))
                .is_ok()
        );
    }

    #[test]
    fn success_clears_the_address_and_does_not_count_against_the_account() {
        let limits = SignInLimits::new(rule(3, 60), rule(5, 60));
        let t0 = Instant::now();
        limits.begin(A, "root", t0).unwrap();
        limits.begin(A, "root", t0).unwrap();
        let ok = limits.begin(A, "root", t0).unwrap();
        limits.succeeded(ok);
        // The address starts afresh: three more tries.
        for _ in 0..3 {
            limits.begin(A, "root", t0).unwrap();
        }
        // The account holds 2 + 3 failures, its limit: another address is refused too.
        assert!(limits.begin(B, "root", t0).is_err());
        // Other accounts are counted apart.
        limits.begin(B, "someone", t0).unwrap();
    }

    #[test]
    fn the_account_limit_holds_across_addresses() {
        let limits = SignInLimits::new(rule(10, 60), rule(5, 60));
        let t0 = Instant::now();
        for i in 0..5u8 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i));
            limits.begin(addr, "root", t0).unwrap();
        }
        let wait = limits
            .begin(
                "10.9.9.9".parse().unwrap(),
                "root",
                t0 + Duration::from_millis(1500),
            )
            .unwrap_err();
        assert_eq!(seconds(wait), 59);
    }

    #[test]
    fn ipv6_hosts_share_their_64_and_old_windows_are_dropped() {
        let limits = SignInLimits::new(rule(2, 60), rule(10_000, 60));
        let t0 = Instant::now();
        limits
            .begin("2001:db8::1".parse().unwrap(), "root", t0)
            .unwrap();
        limits
            .begin("2001:db8::2".parse().unwrap(), "root", t0)
            .unwrap();
        assert!(
            limits
                .begin("2001:db8::3".parse().unwrap(), "root", t0)
                .is_err()
        );
        assert!(
            limits
                .begin("2001:db8:0:1::3".parse().unwrap(), "root", t0)
                .is_ok()
        );
        for i in 0..1000u32 {
            limits
                .begin(IpAddr::V4(i.into()), "root", t0 + Duration::from_secs(1))
                .unwrap();
        }
        // A window later, one more attempt drops the thousand stale windows.
        limits
            .begin(B, "root", t0 + Duration::from_secs(120))
            .unwrap();
        let held = limits.inner.lock().unwrap().0.by_key.len();
        assert!(held <= 2, "{held} address windows kept");
    }

    #[test]
    fn waits_are_whole_seconds_rounded_up() {
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::ZERO), 1);
        assert_eq!(seconds(Duration::from_millis(2500)), 3);
        assert_eq!(seconds(Duration::from_secs(7)), 7);
    }
}
