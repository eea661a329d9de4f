//! The typed store the server uses: resources read through a cache, written in transactions.
//!
//! The cache keeps, per kind, the resources read by ID and the lists read by filter, each entry
//! shared (`Arc`) with what callers hold, plus room for the entry's serialized form so an answer
//! listing many resources copies bytes instead of serializing them again.
//!
//! Correctness: a committed transaction drops what it touched before its commit is acknowledged,
//! so a client that saw a write acknowledged reads it afterwards. A read that raced a commit
//! stores what it read only if no commit touching its kind ended meanwhile (a per-kind counter,
//! checked under the cache's lock). Where another process may write the same database (a shared
//! PostgreSQL), the backend's generation of the kind is read first and a change drops the kind's
//! entries; the embedded engine instead locks its data dir to one process.

use std::any::Any;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use crate::{
    AccessKeyRecord, Backend, BackendTx, EventRecord, Filter, Kind, MetricsStore, NewAudit,
    NewEvent, Resource, Row, StoreError,
};

/// A resource as the cache shares it: the value, and its serialized form once someone made it.
pub struct Cached<R> {
    inner: Arc<Entry<R>>,
}

struct Entry<R> {
    value: R,
    wire: OnceLock<Box<[u8]>>,
}

impl<R> Clone for Cached<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R> Deref for Cached<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.inner.value
    }
}

impl<R: std::fmt::Debug> std::fmt::Debug for Cached<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.value.fmt(f)
    }
}

impl<R> Cached<R> {
    fn new(value: R) -> Self {
        Self {
            inner: Arc::new(Entry {
                value,
                wire: OnceLock::new(),
            }),
        }
    }

    /// The entry's serialized form, made by `make` the first time it is asked for. The form must
    /// depend only on the resource (not on who asks), as every reader shares it.
    pub fn wire(&self, make: impl FnOnce(&R) -> Vec<u8>) -> &[u8] {
        self.inner
            .wire
            .get_or_init(|| make(&self.inner.value).into_boxed_slice())
    }

    /// A copy of the value, to change and write back.
    pub fn to_owned_value(&self) -> R
    where
        R: Clone,
    {
        self.inner.value.clone()
    }
}

/// An owned filter, as a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FilterKey {
    All,
    Stack(String),
    Parent(String),
    Instance(String),
}

impl FilterKey {
    fn of(filter: Filter<'_>) -> Option<Self> {
        Some(match filter {
            Filter::All => Self::All,
            Filter::Stack(s) => Self::Stack(s.into()),
            Filter::Parent(p) => Self::Parent(p.into()),
            Filter::Instance(i) => Self::Instance(i.into()),
            // Lists by IDs are answered from the entries by ID.
            Filter::Ids(_) => return None,
        })
    }
}

type AnyEntry = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
struct KindCache {
    /// Raised (under the lock) by every commit that touched the kind.
    local_gen: u64,
    /// The backend's generation the entries belong to (shared databases only).
    backend_gen: Option<i64>,
    by_id: HashMap<String, AnyEntry>,
    lists: HashMap<FilterKey, Arc<Vec<AnyEntry>>>,
}

/// The most entries kept of a kind; past it the kind's cache starts over (a crude bound that
/// keeps memory in check without bookkeeping on every hit). The history kinds (deployments,
/// commands, service errors, status transitions) only grow while a server runs, and are read
/// mostly while fresh: a small bound keeps a long-running server's memory flat. The others
/// number what an operator made (stacks, layers, instances, users...), kept whole up to a bound
/// no real installation meets.
fn max_entries(kind: Kind) -> usize {
    match kind {
        Kind::Deployment | Kind::Command | Kind::ServiceError | Kind::Transition => 500,
        _ => 200_000,
    }
}

/// What seals secrets at rest (the server's master key): the store seals every resource's
/// secrets ([`Resource::secrets_mut`]) as it writes them and opens them as it reads.
pub trait Sealing: Send + Sync {
    /// The sealed form of a secret (opaque text).
    fn seal(&self, plain: &str) -> String;
    /// The secret of a sealed form, or `None` when this key did not seal it.
    fn open(&self, sealed: &str) -> Option<String>;
}

/// Marks a sealed secret in a stored resource, so plain values from before sealing existed read
/// as they are (and are sealed at the next write).
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// The store: typed reads through the cache, typed writes in transactions.
pub struct Store {
    backend: Arc<dyn Backend>,
    sealing: Option<Arc<dyn Sealing>>,
    cache: Mutex<HashMap<Kind, KindCache>>,
    /// Writers of this process queue here (fairly) before taking the database's write lock.
    writers: tokio::sync::Mutex<()>,
}

impl Store {
    /// A store in front of `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            sealing: None,
            cache: Mutex::new(HashMap::new()),
            writers: tokio::sync::Mutex::new(()),
        }
    }

    /// Seals resources' secrets at rest with `sealing`.
    pub fn with_sealing(mut self, sealing: Arc<dyn Sealing>) -> Self {
        self.sealing = Some(sealing);
        self
    }

    fn decode<R: Resource>(&self, id: &str, text: &str) -> Result<R, StoreError> {
        let mut r: R = serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
            kind: R::KIND.as_str(),
            id: id.to_string(),
            source,
        })?;
        if let Some(sealing) = &self.sealing {
            for secret in r.secrets_mut() {
                if let Some(sealed) = secret.strip_prefix(SEALED_PREFIX) {
                    *secret = sealing.open(sealed).ok_or_else(|| StoreError::Sealed {
                        kind: R::KIND.as_str(),
                        id: id.to_string(),
                    })?;
                }
            }
        }
        Ok(r)
    }

    fn encode<R: Resource>(&self, resource: &R) -> Result<String, StoreError> {
        let encode = |r: &R| {
            serde_json::to_string(r).map_err(|source| StoreError::Encode {
                kind: R::KIND.as_str(),
                id: r.id().to_string(),
                source,
            })
        };
        let Some(sealing) = &self.sealing else {
            return encode(resource);
        };
        let mut sealed = resource.clone();
        for secret in sealed.secrets_mut() {
            if !secret.is_empty() && !secret.starts_with(SEALED_PREFIX) {
                *secret = format!("{SEALED_PREFIX}{}", sealing.seal(secret));
            }
        }
        encode(&sealed)
    }

    /// The backend, for what is not resources (settings, keys, events, metrics).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The instance metrics.
    pub fn metrics(&self) -> &dyn MetricsStore {
        self.backend.metrics()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Kind, KindCache>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the backend's generation of `kind` (shared databases) and returns the local one to
    /// stamp a read with.
    async fn read_stamp(&self, kind: Kind) -> Result<u64, StoreError> {
        let backend_gen = self.backend.generation(kind).await?;
        let mut cache = self.lock();
        let k = cache.entry(kind).or_default();
        if backend_gen.is_some() && k.backend_gen != backend_gen {
            // Another process wrote this kind: what we hold may be old.
            k.by_id.clear();
            k.lists.clear();
            k.local_gen += 1;
            k.backend_gen = backend_gen;
        }
        Ok(k.local_gen)
    }

    /// A stamp per kind that changes whenever a transaction touching the kind commits (here, or
    /// on another server sharing the database): what a cache derived from several kinds (a
    /// user's policies, the access keys in memory) compares to know it is still right. One
    /// round trip to a shared database for all of them.
    pub async fn stamps(&self, kinds: &[Kind]) -> Result<Vec<u64>, StoreError> {
        let backend = self.backend.generations(kinds).await?;
        let mut cache = self.lock();
        Ok(kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let k = cache.entry(*kind).or_default();
                let backend_gen = backend.as_ref().map(|g| g[i]);
                if backend_gen.is_some() && k.backend_gen != backend_gen {
                    k.by_id.clear();
                    k.lists.clear();
                    k.local_gen += 1;
                    k.backend_gen = backend_gen;
                }
                k.local_gen
            })
            .collect())
    }

    /// One resource.
    pub async fn get<R: Resource>(&self, id: &str) -> Result<Option<Cached<R>>, StoreError> {
        let stamp = self.read_stamp(R::KIND).await?;
        if let Some(hit) = self.lock().get(&R::KIND).and_then(|k| k.by_id.get(id)) {
            return Ok(Some(downcast(hit.clone())));
        }
        let Some(text) = self.backend.get(R::KIND, id).await? else {
            return Ok(None);
        };
        let entry = Cached::new(self.decode::<R>(id, &text)?);
        let mut cache = self.lock();
        let k = cache.entry(R::KIND).or_default();
        if k.local_gen == stamp {
            if k.by_id.len() >= max_entries(R::KIND) {
                k.by_id.clear();
                k.lists.clear();
            }
            k.by_id.insert(id.to_string(), erase(&entry));
        }
        Ok(Some(entry))
    }

    /// The resources of a kind matching `filter`, in insertion order.
    pub async fn list<R: Resource>(
        &self,
        filter: Filter<'_>,
    ) -> Result<Vec<Cached<R>>, StoreError> {
        let stamp = self.read_stamp(R::KIND).await?;
        let key = FilterKey::of(filter);
        if let Some(key) = &key
            && let Some(hit) = self.lock().get(&R::KIND).and_then(|k| k.lists.get(key))
        {
            return Ok(hit.iter().map(|e| downcast(e.clone())).collect());
        }
        let rows = self.backend.list(R::KIND, filter).await?;
        let mut out = Vec::with_capacity(rows.len());
        {
            // Reuse entries already shared (and their serialized forms) where the cache has them.
            let cache = self.lock();
            let known = cache.get(&R::KIND).filter(|k| k.local_gen == stamp);
            for (id, text) in &rows {
                let entry = match known.and_then(|k| k.by_id.get(id)) {
                    Some(e) => downcast::<R>(e.clone()),
                    None => Cached::new(self.decode::<R>(id, text)?),
                };
                out.push(entry);
            }
        }
        let mut cache = self.lock();
        let k = cache.entry(R::KIND).or_default();
        // A list longer than the kind's bound is answered, not kept.
        if k.local_gen == stamp && out.len() <= max_entries(R::KIND) {
            if k.by_id.len() + out.len() >= max_entries(R::KIND) {
                k.by_id.clear();
                k.lists.clear();
            }
            for e in &out {
                k.by_id.insert(e.id().to_string(), erase(e));
            }
            if let Some(key) = key {
                k.lists
                    .insert(key, Arc::new(out.iter().map(erase).collect()));
            }
        }
        Ok(out)
    }

    /// How many resources of a kind match `filter`.
    pub async fn count<R: Resource>(&self, filter: Filter<'_>) -> Result<u64, StoreError> {
        if let Some(key) = FilterKey::of(filter) {
            self.read_stamp(R::KIND).await?;
            if let Some(hit) = self.lock().get(&R::KIND).and_then(|k| k.lists.get(&key)) {
                return Ok(hit.len() as u64);
            }
        }
        self.backend.count(R::KIND, filter).await
    }

    /// Starts a write transaction: it waits for this process's other writers, then for the
    /// database's write lock.
    pub async fn write(&self) -> Result<Txn<'_>, StoreError> {
        let queued = self.writers.lock().await;
        let tx = self.backend.begin().await?;
        Ok(Txn {
            store: self,
            tx: Some(tx),
            _queued: queued,
            touched: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Drops every cached entry of the kinds and IDs a commit touched.
    fn invalidate(&self, touched: &[(Kind, String)]) {
        let mut cache = self.lock();
        for (kind, id) in touched {
            let k = cache.entry(*kind).or_default();
            k.by_id.remove(id);
            k.lists.clear();
            k.local_gen += 1;
        }
    }
}

fn erase<R: Resource>(e: &Cached<R>) -> AnyEntry {
    e.inner.clone()
}

fn downcast<R: Resource>(e: AnyEntry) -> Cached<R> {
    match e.downcast::<Entry<R>>() {
        Ok(inner) => Cached { inner },
        // Each kind has one resource type, so an entry of the kind is always of that type.
        Err(_) => unreachable!("cache entry of {:?} holds another type", R::KIND),
    }
}

/// A write transaction. Reads see its own writes; [`commit`](Txn::commit) makes everything
/// durable at once and returns the events it recorded, in order, for broadcasting. Dropped
/// without commit (an error on the way), it changes nothing.
pub struct Txn<'a> {
    store: &'a Store,
    tx: Option<Box<dyn BackendTx>>,
    _queued: tokio::sync::MutexGuard<'a, ()>,
    touched: Vec<(Kind, String)>,
    events: Vec<EventRecord>,
}

impl Txn<'_> {
    fn tx(&mut self) -> &mut Box<dyn BackendTx> {
        // Only `commit` takes it, and `commit` consumes the transaction.
        self.tx.as_mut().expect("transaction is open until commit")
    }

    /// One resource, as of this transaction.
    pub async fn get<R: Resource>(&mut self, id: &str) -> Result<Option<R>, StoreError> {
        match self.tx().get(R::KIND, id).await? {
            Some(text) => Ok(Some(self.store.decode(id, &text)?)),
            None => Ok(None),
        }
    }

    /// The resources of a kind matching `filter`, as of this transaction.
    pub async fn list<R: Resource>(&mut self, filter: Filter<'_>) -> Result<Vec<R>, StoreError> {
        let rows = self.tx().list(R::KIND, filter).await?;
        rows.iter()
            .map(|(id, text)| self.store.decode(id, text))
            .collect()
    }

    /// How many resources of a kind match `filter`, as of this transaction.
    pub async fn count<R: Resource>(&mut self, filter: Filter<'_>) -> Result<u64, StoreError> {
        self.tx().count(R::KIND, filter).await
    }

    /// Inserts or replaces a resource.
    pub async fn put<R: Resource>(&mut self, resource: &R) -> Result<(), StoreError> {
        let doc = self.store.encode(resource)?;
        let row = Row {
            kind: R::KIND,
            id: resource.id(),
            stack_id: resource.stack_id(),
            parent_id: resource.parent_id(),
            instance_id: resource.instance_id(),
            doc: &doc,
        };
        self.tx
            .as_mut()
            .expect("transaction is open until commit")
            .put(row)
            .await?;
        self.touched.push((R::KIND, resource.id().to_string()));
        Ok(())
    }

    /// Deletes a resource of `kind` (absent is fine).
    pub async fn delete(&mut self, kind: Kind, id: &str) -> Result<(), StoreError> {
        self.tx().delete(kind, id).await?;
        self.touched.push((kind, id.to_string()));
        Ok(())
    }

    /// Appends an event to the log; it is broadcast once the transaction commits.
    pub async fn record_event(&mut self, event: NewEvent) -> Result<i64, StoreError> {
        let seq = self.tx().append_event(&event).await?;
        self.events.push(EventRecord { seq, event });
        Ok(seq)
    }

    /// Inserts or replaces an access key. Raises the generation of [`Kind::AccessKey`], so key
    /// caches (of this server and others) look again.
    pub async fn put_access_key(&mut self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        self.tx().put_access_key(key).await?;
        self.touched
            .push((Kind::AccessKey, key.access_key_id.clone()));
        Ok(())
    }

    /// Deletes every access key of a principal; returns how many went. Raises the generation of
    /// [`Kind::AccessKey`].
    pub async fn delete_access_keys_of(&mut self, principal: &str) -> Result<u64, StoreError> {
        let n = self.tx().delete_access_keys_of(principal).await?;
        // No document has this ID: the entry only raises the kind's generation.
        self.touched.push((Kind::AccessKey, String::new()));
        Ok(n)
    }

    /// Deletes one access key (absent is fine). Raises the generation of [`Kind::AccessKey`].
    pub async fn delete_access_key(&mut self, access_key_id: &str) -> Result<(), StoreError> {
        self.tx().delete_access_key(access_key_id).await?;
        self.touched
            .push((Kind::AccessKey, access_key_id.to_string()));
        Ok(())
    }

    /// Appends an entry to the audit log.
    pub async fn record_audit(&mut self, entry: &NewAudit) -> Result<i64, StoreError> {
        self.tx().append_audit(entry).await
    }

    /// Notifies the servers listening on `channel` once this transaction commits (shared
    /// databases; nothing otherwise).
    pub async fn notify(&mut self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.tx().notify(channel, payload).await
    }

    /// The store this transaction writes.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Commits: durable and visible once this returns `Ok`; the cache no longer holds anything
    /// the transaction touched. Returns the events recorded, in sequence order.
    pub async fn commit(self) -> Result<Vec<EventRecord>, StoreError> {
        self.commit_with(|_| {}).await
    }

    /// [`commit`](Self::commit), calling `committed` with the events recorded while this process's
    /// other writers still wait: what it does with them (broadcast them) happens in commit order.
    pub async fn commit_with(
        mut self,
        committed: impl FnOnce(&[EventRecord]),
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut tx = self.tx.take().expect("transaction is open until commit");
        let mut kinds: Vec<Kind> = self.touched.iter().map(|(k, _)| *k).collect();
        kinds.sort();
        kinds.dedup();
        if !kinds.is_empty() {
            tx.bump_generations(&kinds).await?;
        }
        let result = tx.commit().await;
        // Invalidate even when the commit failed: the database may or may not hold the writes
        // (a lost connection after COMMIT), and the cache must not claim either way.
        self.store.invalidate(&self.touched);
        result?;
        let events = std::mem::take(&mut self.events);
        committed(&events);
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use opsworks_model::resource::Transition;

    use super::*;
    use crate::{Engine, open};

    fn cached(store: &Store, kind: Kind) -> usize {
        store.lock().get(&kind).map_or(0, |k| k.by_id.len())
    }

    #[tokio::test]
    async fn the_history_kinds_cache_stays_bounded_and_reads_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&Engine::Sqlite {
            path: dir.path().join("opsworks.db"),
        })
        .await
        .unwrap();
        let n = max_entries(Kind::Transition) + 500;
        let mut tx = store.write().await.unwrap();
        for i in 0..n {
            tx.put(&Transition {
                transition_id: format!("t{i}"),
                instance_id: "i".into(),
                stack_id: "s".into(),
                from: "booting".into(),
                to: "online".into(),
                event: "SetupSucceeded".into(),
                at: "2026-12-07T00:00:00Z".into(),
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        for i in 0..n {
            let t = store.get::<Transition>(&format!("t{i}")).await.unwrap();
            assert_eq!(t.unwrap().transition_id, format!("t{i}"));
            assert!(cached(&store, Kind::Transition) <= max_entries(Kind::Transition));
        }
        // A list longer than the bound is answered whole and not kept.
        assert_eq!(
            store.list::<Transition>(Filter::All).await.unwrap().len(),
            n
        );
        assert!(cached(&store, Kind::Transition) <= max_entries(Kind::Transition));
        assert!(store.lock()[&Kind::Transition].lists.is_empty());
    }
}
