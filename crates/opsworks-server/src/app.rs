//! The server's shared state: the store, the keys, the account, and the write lock.

use std::sync::Arc;

use opsworks_store::{Engine, Store};
use rand::Rng;

use crate::keys::{KeyRing, RootKey, Sealer};
use crate::{ServerConfig, ServerError};

/// Shared state of every request; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    keys: KeyRing,
    account_id: String,
    region: String,
    /// Mutating operations check and write under this lock, so two concurrent requests cannot both
    /// pass a check (a unique name, an empty stack) that only one of them may pass.
    write_lock: tokio::sync::Mutex<()>,
}

impl App {
    /// Opens the data dir (creating it), the store, the master key and the access keys.
    pub async fn open(config: &ServerConfig) -> Result<(Self, RootKey), ServerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| ServerError::Io { path: dir.clone(), source })?;
        let store = opsworks_store::open(&Engine::Sqlite { path: dir.join("opsworks.db") }).await?;
        let sealer = Sealer::load_or_create(dir)?;
        let (keys, root) = KeyRing::load(&store, sealer, dir, config.root_key.clone()).await?;
        // A stable 12-digit account ID for ARNs, chosen once per data dir.
        let fresh: String = (0..12).map(|_| char::from(b'0' + rand::rng().random_range(0..10u8))).collect();
        let account_id = store.setting_or_insert("account_id", &fresh).await?;
        let app = Self {
            inner: Arc::new(Inner {
                store,
                keys,
                account_id,
                region: config.region.clone(),
                write_lock: tokio::sync::Mutex::new(()),
            }),
        };
        Ok((app, root))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The access keys.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The account ID used in ARNs.
    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// The server's region.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Takes the write lock for a check-then-write sequence.
    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.write_lock.lock().await
    }
}
