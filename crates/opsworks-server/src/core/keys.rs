//! Access keys: the master key that seals their secrets at rest, the root key, and the lookup
//! SigV4 verification uses on every request (memory first, then the store).

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;

use opsworks_model::resource::KeyLastUsed;
use opsworks_store::{AccessKeyRecord, Store, StoreError};

use crate::ServerError;
use crate::core::{CoreError, CoreResult};

const NONCE_LEN: usize = 12;

/// The principal name of the root key.
pub const ROOT: &str = "root";

/// Seals and opens secrets with the data dir's master key (AES-256-GCM, random nonce per secret).
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Loads `DIR/master.key`, creating it (mode 0600) with a fresh random key on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, ServerError> {
        let path = data_dir.join("master.key");
        let io = |source| ServerError::Io {
            path: path.clone(),
            source,
        };
        let key: Vec<u8> = match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim()).map_err(|e| {
                ServerError::Keys(format!("{}: not a hex key: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill(&mut key);
                write_private(&path, &format!("{}\n", hex::encode(key))).map_err(io)?;
                key.to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ServerError::Keys(format!(
                "{} is readable by others (mode {mode:o}); it must be 0600",
                path.display()
            )));
        }
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| {
            ServerError::Keys(format!(
                "{}: the master key must be 32 bytes",
                path.display()
            ))
        })?;
        Ok(Self { cipher })
    }

    /// Seals a secret: nonce followed by ciphertext.
    pub fn seal(&self, secret: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        // Encryption only fails for plaintexts beyond AES-GCM's 64 GiB bound.
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), secret.as_bytes())
            .unwrap_or_default();
        [nonce.as_slice(), &ct].concat()
    }

    /// Opens a sealed secret; `None` when it was sealed under another key or is damaged.
    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let pt = self.cipher.decrypt(&Nonce::from(nonce), ct).ok()?;
        String::from_utf8(pt).ok()
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    // The mode given to open() only applies to new files; make sure an old file is tightened too.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// A credential a caller signs with.
#[derive(Clone)]
pub struct Credential {
    /// The secret access key.
    pub secret: String,
    /// Whom it belongs to.
    pub principal: String,
}

/// The access keys in force, cached in memory so verifying a signature needs no database read.
/// What it holds belongs to one stamp of the store's access-key generation: a key issued,
/// revoked or deleted anywhere (on another server sharing the database too) changes the stamp,
/// and the ring reads its keys again.
#[derive(Clone)]
pub struct KeyRing {
    sealer: Arc<Sealer>,
    keys: Arc<RwLock<Ring>>,
    /// The last use of each IAM user key since it was last written down (with its second).
    last_used: Arc<Mutex<HashMap<String, (i64, KeyLastUsed)>>>,
}

#[derive(Default)]
struct Ring {
    /// The stamp the credentials were read under; `None` before the first request.
    stamp: Option<u64>,
    map: HashMap<String, Credential>,
}

/// What bootstrapping the root key did, for the caller to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKey {
    /// A key was generated now and written to this file; its secret is shown once.
    Generated {
        /// The access key ID.
        access_key_id: String,
        /// The secret, to print once.
        secret: String,
        /// The file holding both.
        file: PathBuf,
    },
    /// The key given in the environment is installed.
    FromEnvironment {
        /// The access key ID.
        access_key_id: String,
    },
    /// A root key existed already.
    Existing {
        /// The access key ID.
        access_key_id: String,
    },
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

impl KeyRing {
    /// Loads every stored key, installing or generating the root key as configured.
    pub async fn load(
        store: &Store,
        sealer: Arc<Sealer>,
        data_dir: &Path,
        root_from_env: Option<(String, String)>,
    ) -> Result<(Self, RootKey), ServerError> {
        let ring = Self {
            sealer,
            keys: Arc::default(),
            last_used: Arc::default(),
        };
        let now = opsworks_model::timestamp(jiff::Timestamp::now());
        let existing_root = store
            .backend()
            .access_keys()
            .await?
            .into_iter()
            .find(|k| k.principal == ROOT);
        let root = match (root_from_env, existing_root) {
            (Some((id, secret)), _) => {
                if id.is_empty() || secret.is_empty() {
                    return Err(ServerError::Keys(
                        "the root access key ID and secret must not be empty".into(),
                    ));
                }
                let record = AccessKeyRecord {
                    access_key_id: id.clone(),
                    sealed_secret: ring.sealer.seal(&secret),
                    principal: ROOT.into(),
                    created_at: now,
                };
                put_key(store, &record).await?;
                RootKey::FromEnvironment { access_key_id: id }
            }
            (None, Some(existing)) => RootKey::Existing {
                access_key_id: existing.access_key_id,
            },
            (None, None) => {
                let id = format!(
                    "AKIA{}",
                    random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
                );
                let secret = random_string(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    40,
                );
                let file = data_dir.join("root-credentials");
                let text = format!(
                    "[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
                );
                write_private(&file, &text).map_err(|source| ServerError::Io {
                    path: file.clone(),
                    source,
                })?;
                let record = AccessKeyRecord {
                    access_key_id: id.clone(),
                    sealed_secret: ring.sealer.seal(&secret),
                    principal: ROOT.into(),
                    created_at: now,
                };
                put_key(store, &record).await?;
                RootKey::Generated {
                    access_key_id: id,
                    secret,
                    file,
                }
            }
        };
        let mut keys = HashMap::new();
        for record in store.backend().access_keys().await? {
            let Some(secret) = ring.sealer.open(&record.sealed_secret) else {
                return Err(ServerError::Keys(format!(
                    "the secret of access key {} cannot be opened with this data dir's master.key",
                    record.access_key_id
                )));
            };
            keys.insert(
                record.access_key_id,
                Credential {
                    secret,
                    principal: record.principal,
                },
            );
        }
        ring.keys.write().unwrap_or_else(|p| p.into_inner()).map = keys;
        Ok((ring, root))
    }

    /// The credential of an access key ID, as held in memory.
    pub fn get(&self, access_key_id: &str) -> Option<Credential> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(access_key_id)
            .cloned()
    }

    /// The credential of an access key: from memory while `stamp` (the store's stamp of
    /// `Kind::AccessKey`, read for this request) is the one the ring holds keys under, else
    /// from the store (another server, or an earlier life of this one, may have issued it);
    /// `None` when no such key exists.
    pub async fn resolve(
        &self,
        store: &Store,
        access_key_id: &str,
        stamp: u64,
    ) -> Option<Credential> {
        {
            let ring = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if ring.stamp == Some(stamp)
                && let Some(c) = ring.map.get(access_key_id)
            {
                return Some(c.clone());
            }
        }
        {
            let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
            if ring.stamp != Some(stamp) {
                // A key changed somewhere: what is held may be revoked or inactive.
                ring.map.clear();
                ring.stamp = Some(stamp);
            }
        }
        let record = match store.backend().access_key(access_key_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("looking up an access key: {e}");
                return None;
            }
        };
        let secret = self.sealer.open(&record.sealed_secret)?;
        let credential = Credential {
            secret,
            principal: record.principal,
        };
        let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
        // Kept only if no change came meanwhile: a later request reads it again otherwise.
        if ring.stamp == Some(stamp) {
            ring.map
                .insert(access_key_id.to_string(), credential.clone());
        }
        Some(credential)
    }

    /// Notes that an IAM user's key signed a request now (for GetAccessKeyLastUsed; written down
    /// by [`take_last_used`](Self::take_last_used)'s caller from time to time). Cheap when the
    /// key was already noted this second for the same service and region (a busy client).
    pub fn note_use(&self, access_key_id: &str, service: &str, region: &str) {
        let now = jiff::Timestamp::now();
        let second = now.as_second();
        let mut map = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, old)) = map.get(access_key_id)
            && *s == second
            && old.service_name == service
            && old.region == region
        {
            return;
        }
        let used = KeyLastUsed {
            last_used_date: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            service_name: service.to_string(),
            region: region.to_string(),
        };
        map.insert(access_key_id.to_string(), (second, used));
    }

    /// The last use of a key noted since it was last written down.
    pub fn last_used(&self, access_key_id: &str) -> Option<KeyLastUsed> {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(access_key_id)
            .map(|(_, u)| u.clone())
    }

    /// Takes every use noted since the last call, to write down.
    pub fn take_last_used(&self) -> HashMap<String, KeyLastUsed> {
        std::mem::take(&mut *self.last_used.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(|(k, (_, u))| (k, u))
            .collect()
    }

    /// Creates a new key for `principal` in the transaction `w`, returning (ID, secret); the key
    /// works once `w` commits.
    pub async fn issue(
        &self,
        w: &mut crate::core::Write<'_>,
        principal: &str,
    ) -> CoreResult<(String, String)> {
        let id = format!(
            "AKIA{}",
            random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        );
        let secret = random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        );
        w.txn()
            .put_access_key(&AccessKeyRecord {
                access_key_id: id.clone(),
                sealed_secret: self.sealer.seal(&secret),
                principal: principal.into(),
                created_at: opsworks_model::timestamp(jiff::Timestamp::now()),
            })
            .await?;
        Ok((id, secret))
    }

    /// Revokes every key of `principal` in the transaction `w` (an instance's old credential when
    /// it starts again or stops); they stop working here at once.
    pub async fn revoke(&self, w: &mut crate::core::Write<'_>, principal: &str) -> CoreResult<()> {
        w.txn().delete_access_keys_of(principal).await?;
        self.forget(principal);
        // The other servers on a shared database forget them when this commits.
        w.revoked(principal).await
    }

    /// Drops every key from memory: each is read again from the store when next used (revocations
    /// by other servers may have been missed).
    pub fn forget_all(&self) {
        let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
        ring.map.clear();
        ring.stamp = None;
    }

    /// Drops the keys of `principal` from memory.
    pub fn forget(&self, principal: &str) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .retain(|_, c| c.principal != principal);
    }

    /// Drops one key from memory.
    pub fn forget_key(&self, access_key_id: &str) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .remove(access_key_id);
    }

    /// Creates a key for `principal` with the given ID and secret in the transaction `w` (an
    /// IAM user's CreateAccessKey, which chooses them).
    pub async fn put(
        &self,
        w: &mut crate::core::Write<'_>,
        access_key_id: &str,
        secret: &str,
        principal: &str,
    ) -> CoreResult<()> {
        w.txn()
            .put_access_key(&AccessKeyRecord {
                access_key_id: access_key_id.into(),
                sealed_secret: self.sealer.seal(secret),
                principal: principal.into(),
                created_at: opsworks_model::timestamp(jiff::Timestamp::now()),
            })
            .await?;
        Ok(())
    }

    /// Deletes one key in the transaction `w`; it stops working here at once, and on other
    /// servers once `w` commits (the access-key generation changes).
    pub async fn delete(
        &self,
        w: &mut crate::core::Write<'_>,
        access_key_id: &str,
    ) -> CoreResult<()> {
        w.txn().delete_access_key(access_key_id).await?;
        self.forget_key(access_key_id);
        Ok(())
    }

    /// A new secret access key: 40 characters as AWS makes them.
    pub fn new_secret() -> String {
        random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        )
    }

    /// The sealer, for other secrets kept at rest.
    #[allow(dead_code)]
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }
}

/// Writes down the last use of the IAM user keys noted since the last call (in one transaction;
/// what GetAccessKeyLastUsed reads on any server).
pub async fn write_last_used(core: &crate::core::Core) -> CoreResult<()> {
    let used = core.keys().take_last_used();
    if used.is_empty() {
        return Ok(());
    }
    let mut w = core.write().await?;
    for (id, last) in &used {
        if let Some(mut key) = w.find::<opsworks_model::resource::AccessKey>(id).await? {
            key.last_used = Some(last.clone());
            w.put(&key).await?;
        }
    }
    w.commit().await
}

/// Stores a key in a transaction of its own (the root key at start).
async fn put_key(store: &Store, record: &AccessKeyRecord) -> Result<(), StoreError> {
    let mut tx = store.write().await?;
    tx.put_access_key(record).await?;
    tx.commit().await.map(drop)
}

impl From<CoreError> for ServerError {
    fn from(e: CoreError) -> Self {
        ServerError::Keys(e.to_string())
    }
}

impl opsworks_store::Sealing for Sealer {
    fn seal(&self, plain: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sealer::seal(self, plain))
    }

    fn open(&self, sealed: &str) -> Option<String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .ok()?;
        Sealer::open(self, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_the_key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::load_or_create(dir.path()).unwrap();
        let sealed = sealer.seal("hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(sealer.open(&sealed).as_deref(), Some("hunter2"));
        // The same file gives the same key.
        assert_eq!(
            Sealer::load_or_create(dir.path())
                .unwrap()
                .open(&sealed)
                .as_deref(),
            Some("hunter2")
        );
        let other = tempfile::tempdir().unwrap();
        assert_eq!(
            Sealer::load_or_create(other.path()).unwrap().open(&sealed),
            None
        );
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
