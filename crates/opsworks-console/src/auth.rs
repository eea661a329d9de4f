//! Sign-in for the console: the root user's console password (an argon2 hash on disk), sessions
//! held in memory, and the CSRF token every form carries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use subtle::ConstantTimeEq;

/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

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

/// The root user's console password, as its argon2 hash.
#[derive(Debug, Clone)]
pub struct Password {
    hash: String,
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
            return Ok((Password { hash }, PasswordSource::Environment));
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let hash = text.trim().to_string();
                PasswordHash::new(&hash).map_err(|e| AuthError::BadHash {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                Ok((Password { hash }, PasswordSource::Existing))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let plain = random_token(12);
                let hash = hash(&plain)?;
                write_private(&path, &hash)?;
                Ok((Password { hash }, PasswordSource::Generated(plain)))
            }
            Err(source) => Err(AuthError::Io { path, source }),
        }
    }

    /// Whether `attempt` is the password.
    pub fn verify(&self, attempt: &str) -> bool {
        PasswordHash::new(&self.hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(attempt.as_bytes(), &h)
                .is_ok()
        })
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

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token its forms carry.
    pub csrf: String,
    last_used: Instant,
}

/// The live sessions, by cookie value.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its cookie value.
    pub fn create(&self) -> String {
        let token = random_token(32);
        let session = Session {
            csrf: random_token(16),
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

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_generated_once_then_kept_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (p, source) = Password::open(dir.path()).unwrap();
        let PasswordSource::Generated(plain) = source else {
            panic!("expected a generated password, got {source:?}");
        };
        assert!(p.verify(&plain));
        assert!(!p.verify("wrong"));
        let (again, source) = Password::open(dir.path()).unwrap();
        assert_eq!(source, PasswordSource::Existing);
        assert!(again.verify(&plain));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("console-password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn sessions_start_and_end() {
        let sessions = Sessions::default();
        let token = sessions.create();
        let s = sessions.get(&token).unwrap();
        assert_eq!(s.csrf.len(), 32);
        assert!(sessions.get("nope").is_none());
        sessions.remove(&token);
        assert!(sessions.get(&token).is_none());
    }
}
