//! Sign-in for the console: the root user's console password (an argon2 hash on disk), checked
//! by a small fixed pool of hashers (IAM users' login-profile hashes in the same pool and
//! buffers); sessions held in memory, each the root's or an IAM user's, and the CSRF token every
//! form carries.
//!
//! One argon2 check with the default parameters works through 19 MiB. Checks run at most
//! [`HASHINGS`] at a time, on blocking threads, each in one of the pool's buffers (wiped after
//! use): however many sign-ins arrive at once, the hashing holds at most `HASHINGS × 19 MiB`, and
//! the others wait their turn.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// How many password checks run at once (each works through the hash's memory cost, 19 MiB by
/// default).
pub const HASHINGS: usize = 2;

/// The environment variable that sets the console password (replacing the stored one).
pub const PASSWORD_ENV: &str = opsworks_env::OPSWORKS_CONSOLE_PASSWORD;

/// Errors while setting up the console's password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The password file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The stored hash is not an argon2 PHC string.
    #[error("{path} does not hold a password hash: {message}")]
    BadHash {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// Hashing failed.
    #[error("hashing the console password: {0}")]
    Hash(String),
}

/// Where the password came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Generated at this start: shown once.
    Generated(String),
    /// Set from `OPSWORKS_CONSOLE_PASSWORD`.
    Environment,
    /// Kept from an earlier start.
    Existing,
}

/// The root user's console password, as its argon2 hash, and the pool that checks attempts.
#[derive(Debug, Clone)]
pub struct Password {
    stored: Arc<Stored>,
    pool: Arc<Pool>,
}

/// A parsed argon2 hash: what a check recomputes, and what it must get.
struct Stored {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("algorithm", &self.algorithm)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Stored {
    fn parse(hash: &str) -> Result<Stored, String> {
        let phc = PasswordHash::new(hash).map_err(|e| e.to_string())?;
        let algorithm = Algorithm::new(phc.algorithm.as_str()).map_err(|e| e.to_string())?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
            None => Version::default(),
        };
        let params = Params::try_from(&phc).map_err(|e| e.to_string())?;
        let salt = phc.salt.as_ref().ok_or("the hash has no salt")?.to_vec();
        let expected = phc
            .hash
            .as_ref()
            .ok_or("the hash has no output")?
            .as_bytes()
            .to_vec();
        Ok(Stored {
            algorithm,
            version,
            params,
            salt,
            expected,
        })
    }

    /// Whether `attempt` hashes to the stored output, working in `memory` (resized to the
    /// hash's memory cost, wiped afterwards).
    fn check(&self, attempt: &[u8], memory: &mut Vec<Block>) -> bool {
        let blocks = self.params.block_count();
        if memory.len() != blocks {
            *memory = vec![Block::new(); blocks];
        }
        let mut out = vec![0u8; self.expected.len()];
        let argon = Argon2::new(self.algorithm, self.version, self.params.clone());
        let ok = argon
            .hash_password_into_with_memory(attempt, &self.salt, &mut out, &mut memory[..])
            .is_ok()
            && bool::from(out.ct_eq(&self.expected));
        memory.fill(Block::new());
        ok
    }
}

/// At most [`HASHINGS`] checks at a time, each with a buffer of its own, kept for the next one.
#[derive(Debug)]
struct Pool {
    permits: Semaphore,
    buffers: Mutex<Vec<Vec<Block>>>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            permits: Semaphore::new(HASHINGS),
            buffers: Mutex::new(Vec::new()),
        }
    }
}

impl Password {
    /// Loads the hash from `DIR/console-password`; sets it from the environment when the
    /// variable is given, or generates a password at the first start.
    pub fn open(data_dir: &Path) -> Result<(Password, PasswordSource), AuthError> {
        let path = data_dir.join("console-password");
        if let Ok(plain) = std::env::var(PASSWORD_ENV)
            && !plain.is_empty()
        {
            let hash = hash(&plain)?;
            write_private(&path, &hash)?;
            return Ok((
                Password::from_hash(&path, &hash)?,
                PasswordSource::Environment,
            ));
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let password = Password::from_hash(&path, text.trim())?;
                Ok((password, PasswordSource::Existing))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let plain = random_token(12);
                let hash = hash(&plain)?;
                write_private(&path, &hash)?;
                let password = Password::from_hash(&path, &hash)?;
                Ok((password, PasswordSource::Generated(plain)))
            }
            Err(source) => Err(AuthError::Io { path, source }),
        }
    }

    fn from_hash(path: &Path, hash: &str) -> Result<Password, AuthError> {
        let stored = Stored::parse(hash).map_err(|message| AuthError::BadHash {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(Password {
            stored: Arc::new(stored),
            pool: Arc::default(),
        })
    }

    /// Whether `attempt` is the password: checked on a blocking thread once one of the pool's
    /// [`HASHINGS`] turns is free.
    pub async fn verify(&self, attempt: String) -> bool {
        self.check_in_pool(self.stored.clone(), attempt).await
    }

    /// Whether `attempt` is the password an argon2 PHC `hash` holds (an IAM user's login
    /// profile), checked in the same pool as the root's: every console sign-in together stays
    /// within `HASHINGS × 19 MiB`. A hash that does not parse matches nothing.
    pub async fn verify_hash(&self, hash: &str, attempt: String) -> bool {
        match Stored::parse(hash) {
            Ok(stored) => self.check_in_pool(Arc::new(stored), attempt).await,
            Err(e) => {
                tracing::error!("a login profile's password hash does not parse: {e}");
                false
            }
        }
    }

    async fn check_in_pool(&self, stored: Arc<Stored>, attempt: String) -> bool {
        let Ok(_turn) = self.pool.permits.acquire().await else {
            return false;
        };
        let mut memory = self
            .pool
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let checked = tokio::task::spawn_blocking(move || {
            let ok = stored.check(attempt.as_bytes(), &mut memory);
            (ok, memory)
        })
        .await;
        match checked {
            Ok((ok, memory)) => {
                self.pool
                    .buffers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(memory);
                ok
            }
            Err(e) => {
                tracing::error!("console password check failed: {e}");
                false
            }
        }
    }
}

fn hash(plain: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(plain.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn write_private(path: &Path, text: &str) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(format!("{text}\n").as_bytes()).map_err(io)
}

/// A random URL-safe token of `bytes` random bytes, hex-encoded.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

/// Whether two secrets are equal, in constant time.
pub fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The IAM user a session signed in, as the session remembers them: who, and which password
/// they proved (a mark of their login profile), so a replaced or removed profile ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user's ID (`AIDA...`): a rename keeps the session, a deleted user ends it.
    pub user_id: String,
    /// [`profile_mark`] of the login profile signed in with.
    pub mark: u64,
}

/// A mark of a login profile: changes when the profile is made again or its password changes
/// (never the password itself: a hash of its hash and creation date, kept in memory only).
pub fn profile_mark(create_date: &str, password_hash: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    create_date.hash(&mut h);
    password_hash.hash(&mut h);
    h.finish()
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token its forms carry.
    pub csrf: String,
    /// The IAM user signed in; `None` for the account's root.
    pub user: Option<SessionUser>,
    last_used: Instant,
}

/// The live sessions, by cookie value.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session of `user` (`None`: the root); returns its cookie value.
    pub fn create(&self, user: Option<SessionUser>) -> String {
        let token = random_token(32);
        let session = Session {
            csrf: random_token(16),
            user,
            last_used: Instant::now(),
        };
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        map.insert(token.clone(), session);
        token
    }

    /// The session of a cookie value, refreshed, when it is live.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get_mut(token)?;
        if session.last_used.elapsed() >= SESSION_IDLE {
            map.remove(token);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    /// Notes the new mark of a session's login profile (after the user changed their own
    /// password in it, so that change does not end it).
    pub fn remark(&self, token: &str, mark: u64) {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(SessionUser { mark: m, .. }) = map.get_mut(token).and_then(|s| s.user.as_mut())
        {
            *m = mark;
        }
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// Ends every session of the user `user_id` (deleted, or their login profile gone); returns
    /// how many there were.
    pub fn end_user(&self, user_id: &str) -> usize {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, s| s.user.as_ref().is_none_or(|u| u.user_id != user_id));
        before - map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_is_generated_once_then_kept_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (p, source) = Password::open(dir.path()).unwrap();
        let PasswordSource::Generated(plain) = source else {
            panic!("expected a generated password, got {source:?}");
        };
        assert!(p.verify(plain.clone()).await);
        assert!(!p.verify("wrong".into()).await);
        assert!(!p.verify(String::new()).await);
        let (again, source) = Password::open(dir.path()).unwrap();
        assert_eq!(source, PasswordSource::Existing);
        assert!(again.verify(plain.clone()).await);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("console-password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_share_a_pool_of_buffers_and_stay_right_under_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("console-password"),
            format!("{}\n", hash("right").unwrap()),
        )
        .unwrap();
        let (p, _) = Password::open(dir.path()).unwrap();
        let checks: Vec<_> = (0..12)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move {
                    let attempt = if i % 4 == 0 { "right" } else { "wrong" };
                    (i, p.verify(attempt.into()).await)
                })
            })
            .collect();
        for c in checks {
            let (i, ok) = c.await.unwrap();
            assert_eq!(ok, i % 4 == 0, "attempt {i}");
        }
        let buffers = p.pool.buffers.lock().unwrap();
        assert!(
            (1..=HASHINGS).contains(&buffers.len()),
            "{} buffers for {HASHINGS} turns",
            buffers.len()
        );
        assert!(
            buffers
                .iter()
                .flatten()
                .all(|b| b.as_ref().iter().all(|w| *w == 0)),
            "the hashing memory is wiped after each check"
        );
    }

    #[test]
    fn a_file_without_a_hash_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("console-password"), "not a hash\n").unwrap();
        let err = Password::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("does not hold a password hash"),
            "{err}"
        );
    }

    #[test]
    fn sessions_start_and_end() {
        let sessions = Sessions::default();
        let token = sessions.create(None);
        let s = sessions.get(&token).unwrap();
        assert_eq!(s.csrf.len(), 32);
        assert!(s.user.is_none());
        assert!(sessions.get("nope").is_none());
        sessions.remove(&token);
        assert!(sessions.get(&token).is_none());
        let alice = SessionUser {
            user_id: "AIDAALICE".into(),
            mark: profile_mark("2026-12-07T10:00:00Z", "$argon2id$x"),
        };
        let a1 = sessions.create(Some(alice.clone()));
        let a2 = sessions.create(Some(alice.clone()));
        let root = sessions.create(None);
        sessions.remark(&a1, 7);
        assert_eq!(sessions.get(&a1).unwrap().user.unwrap().mark, 7);
        assert_eq!(sessions.get(&a2).unwrap().user, Some(alice));
        assert_eq!(sessions.end_user("AIDAALICE"), 2);
        assert!(sessions.get(&a1).is_none() && sessions.get(&a2).is_none());
        assert!(sessions.get(&root).is_some(), "the root's session stays");
    }
}
