//! The watch cache: every key's current object in memory, kept current by the backend's committed
//! events, plus a bounded window of recent events, fanned out to watchers.
//!
//! Reads are consistent: before answering, a read waits until the cache has applied everything the
//! backend had committed when the read began (the backend's current revision), so a client always
//! sees its own writes.
//!
//! Objects are stored as JSON bytes with `metadata.resourceVersion` already set to their revision,
//! together with the labels and selectable fields extracted once at ingest, so lists are filtered
//! without parsing and answered by copying bytes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::{Backend, Event, EventKind, KeyValue, Revision, StoreError};

/// Events kept for watchers resuming from a recent revision.
const HISTORY: usize = 10_000;
/// Events buffered per watcher before it counts as too slow and is cut off (default).
pub const FANOUT: usize = 16_384;

/// What the cache keeps of an object.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub revision: Revision,
    pub create_revision: Revision,
    /// The object, JSON, with `metadata.resourceVersion` set.
    pub json: Bytes,
    pub labels: BTreeMap<String, String>,
    pub fields: Vec<(&'static str, String)>,
}

impl CachedObject {
    /// Parse the JSON again (for transformations such as Tables).
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }
}

/// A change, as watchers see it.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub revision: Revision,
    /// The object after the change (for a delete: its last state, at the delete's revision).
    pub object: Arc<CachedObject>,
    /// The object before the change.
    pub prev: Option<Arc<CachedObject>>,
}

/// Turns a stored value into what the cache keeps: sets the resourceVersion, extracts labels and
/// selectable fields. Supplied by the API layer, which knows what the keys mean.
pub trait Decoder: Send + Sync + 'static {
    fn decode(&self, key: &str, revision: Revision, value: &[u8]) -> Result<CachedObject, String>;
}

/// A decoder that only parses JSON and sets `metadata.resourceVersion` (for tests and tools).
pub struct PlainJson;

impl Decoder for PlainJson {
    fn decode(&self, key: &str, revision: Revision, value: &[u8]) -> Result<CachedObject, String> {
        let mut v: Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        set_resource_version(&mut v, revision);
        let labels = v
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        Ok(CachedObject {
            key: key.to_string(),
            revision,
            create_revision: 0,
            json: Bytes::from(serde_json::to_vec(&v).map_err(|e| e.to_string())?),
            labels,
            fields: Vec::new(),
        })
    }
}

/// Set `metadata.resourceVersion` of an object to `revision`.
pub fn set_resource_version(v: &mut Value, revision: Revision) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
    }
}

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    revision: Revision,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event newer than this is in `history`.
    history_floor: Revision,
}

pub struct Cache {
    backend: Arc<dyn Backend>,
    decoder: Arc<dyn Decoder>,
    state: RwLock<State>,
    live: broadcast::Sender<Arc<CacheEvent>>,
    applied: watch::Sender<Revision>,
}

/// A live watch: replayed events first, then live ones.
pub struct Watch {
    pub replay: Vec<Arc<CacheEvent>>,
    /// Live events; skip those at or below `after`.
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    pub after: Revision,
}

/// A list result.
pub struct Listing {
    pub revision: Revision,
    pub objects: Vec<Arc<CachedObject>>,
    /// More matching keys exist after the last returned one.
    pub more: bool,
    /// How many matching objects follow (only counted when `more`).
    pub remaining: usize,
}

impl Cache {
    /// Load the backend's current state and start following its events.
    pub async fn start(backend: Arc<dyn Backend>, decoder: Arc<dyn Decoder>) -> Result<Arc<Cache>, StoreError> {
        Self::start_with(backend, decoder, FANOUT).await
    }

    /// Like [`Cache::start`], with `fanout` events buffered per watcher.
    pub async fn start_with(
        backend: Arc<dyn Backend>,
        decoder: Arc<dyn Decoder>,
        fanout: usize,
    ) -> Result<Arc<Cache>, StoreError> {
        let mut events = backend.subscribe();
        let at = backend.current_revision();
        let kvs = backend.list(String::new(), None, 0, at).await?;
        let mut objects = BTreeMap::new();
        for kv in kvs {
            match decoder.decode(&kv.key, kv.mod_revision, &kv.value) {
                Ok(mut o) => {
                    o.create_revision = kv.create_revision;
                    objects.insert(kv.key.clone(), Arc::new(o));
                }
                Err(e) => {
                    tracing::warn!(message = "undecodable object skipped", key = %kv.key, error = %e)
                }
            }
        }
        let (live, _) = broadcast::channel(fanout.max(16));
        let (applied, _) = watch::channel(at);
        let cache = Arc::new(Cache {
            backend,
            decoder,
            state: RwLock::new(State { objects, revision: at, history: VecDeque::new(), history_floor: at }),
            live,
            applied,
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            while let Some(batch) = events.recv().await {
                let Some(cache) = weak.upgrade() else { break };
                cache.apply(&batch);
            }
        });
        Ok(cache)
    }

    fn decode_kv(&self, kv: &KeyValue) -> Arc<CachedObject> {
        match self.decoder.decode(&kv.key, kv.mod_revision, &kv.value) {
            Ok(mut o) => {
                o.create_revision = kv.create_revision;
                Arc::new(o)
            }
            Err(e) => {
                tracing::warn!(message = "undecodable object", key = %kv.key, error = %e);
                Arc::new(CachedObject {
                    key: kv.key.clone(),
                    revision: kv.mod_revision,
                    create_revision: kv.create_revision,
                    json: kv.value.clone(),
                    labels: BTreeMap::new(),
                    fields: Vec::new(),
                })
            }
        }
    }

    fn apply(&self, batch: &[Event]) {
        // Decode outside the lock.
        let decoded: Vec<(EventKind, Arc<CachedObject>)> =
            batch.iter().filter(|e| e.kv.mod_revision > 0).map(|e| (e.kind, self.decode_kv(&e.kv))).collect();
        let mut last = None;
        {
            let Ok(mut st) = self.state.write() else {
                return;
            };
            for (kind, obj) in decoded {
                if obj.revision <= st.revision {
                    continue; // already loaded at start
                }
                let prev = match kind {
                    EventKind::Put => st.objects.insert(obj.key.clone(), obj.clone()),
                    EventKind::Delete => st.objects.remove(&obj.key),
                };
                let ev = Arc::new(CacheEvent { kind, revision: obj.revision, object: obj, prev });
                st.revision = ev.revision;
                st.history.push_back(ev.clone());
                // History the store has compacted away is of no use to anyone.
                let compacted = self.backend.compacted_revision();
                while st.history.front().is_some_and(|e| e.revision <= compacted) {
                    if let Some(old) = st.history.pop_front() {
                        st.history_floor = old.revision;
                    }
                }
                if st.history.len() > HISTORY {
                    if let Some(old) = st.history.pop_front() {
                        st.history_floor = old.revision;
                    }
                }
                // Sent under the lock so that watchers registering under the lock see no gap.
                let _ = self.live.send(ev);
                last = Some(st.revision);
            }
        }
        if let Some(rev) = last {
            self.applied.send_replace(rev);
        }
    }

    /// Wait until the cache reflects every write the backend acknowledged before this call.
    pub async fn sync(&self) -> Result<Revision, StoreError> {
        let want = self.backend.current_revision();
        let mut rx = self.applied.subscribe();
        let res =
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|r| *r >= want)).await.map(|r| r.map(|v| *v));
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Database(format!("the watch cache did not reach revision {want} in time"))),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The current object at `key`, after a consistent sync.
    pub async fn get(&self, key: &str) -> Result<Option<Arc<CachedObject>>, StoreError> {
        self.sync().await?;
        let st = self.state.read().map_err(|_| StoreError::Closed)?;
        Ok(st.objects.get(key).cloned())
    }

    /// The object at `key` as of an old revision, from the backend.
    pub async fn get_at(&self, key: &str, at: Revision) -> Result<Option<Arc<CachedObject>>, StoreError> {
        let kvs = self.backend.list(key.to_string(), None, 0, at).await?;
        Ok(kvs.iter().find(|kv| kv.key == key).map(|kv| self.decode_kv(kv)))
    }

    /// Objects under `prefix` after `start_after` that `filter` accepts, at most `limit` (0 = all).
    /// With `at`, as of that revision (from the backend unless it is the cache's own revision).
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
        filter: &(dyn Fn(&CachedObject) -> bool + Sync),
    ) -> Result<Listing, StoreError> {
        let current = self.sync().await?;
        if let Some(at) = at.filter(|a| *a != current) {
            return self.list_from_backend(prefix, start_after, limit, at, filter).await;
        }
        let st = self.state.read().map_err(|_| StoreError::Closed)?;
        let lower = match start_after {
            Some(s) if s >= prefix => std::ops::Bound::Excluded(s.to_string()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        let mut objects = Vec::new();
        let mut more = false;
        let mut remaining = 0;
        for (k, o) in st.objects.range((lower, std::ops::Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if !filter(o) {
                continue;
            }
            if limit > 0 && objects.len() >= limit {
                more = true;
                remaining += 1;
                continue;
            }
            objects.push(o.clone());
        }
        Ok(Listing { revision: st.revision, objects, more, remaining })
    }

    async fn list_from_backend(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Revision,
        filter: &(dyn Fn(&CachedObject) -> bool + Sync),
    ) -> Result<Listing, StoreError> {
        let kvs = self.backend.list(prefix.to_string(), start_after.map(str::to_string), 0, at).await?;
        let mut objects = Vec::new();
        let mut more = false;
        let mut remaining = 0;
        for kv in &kvs {
            let o = self.decode_kv(kv);
            if !filter(&o) {
                continue;
            }
            if limit > 0 && objects.len() >= limit {
                more = true;
                remaining += 1;
                continue;
            }
            objects.push(o);
        }
        Ok(Listing { revision: at, objects, more, remaining })
    }

    /// Watch every change under `prefix` after revision `after`. `None` means from now, replaying
    /// the current state as creations first (upstream's semantics for an unset or "0" version).
    pub async fn watch(&self, prefix: &str, after: Option<Revision>) -> Result<Watch, StoreError> {
        let current = self.sync().await?;
        if let Some(a) = after {
            let compacted = self.backend.compacted_revision();
            if a < compacted {
                return Err(StoreError::Compacted { requested: a, compacted });
            }
            if a > current {
                // Upstream waits briefly for a future revision; the cache is synced, so it is bogus.
                return Err(StoreError::FutureRevision { requested: a, current });
            }
        }
        let (replay, live, floor, at) = {
            let st = self.state.read().map_err(|_| StoreError::Closed)?;
            let live = self.live.subscribe();
            match after {
                None => {
                    let replay: Vec<Arc<CacheEvent>> = st
                        .objects
                        .range(prefix.to_string()..)
                        .take_while(|(k, _)| k.starts_with(prefix))
                        .map(|(_, o)| {
                            Arc::new(CacheEvent {
                                kind: EventKind::Put,
                                revision: o.revision,
                                object: o.clone(),
                                prev: None,
                            })
                        })
                        .collect();
                    return Ok(Watch { replay, live, after: st.revision });
                }
                Some(a) if a >= st.history_floor => {
                    let replay = st
                        .history
                        .iter()
                        .filter(|e| e.revision > a && e.object.key.starts_with(prefix))
                        .cloned()
                        .collect();
                    return Ok(Watch { replay, live, after: st.revision });
                }
                Some(a) => (Vec::<Arc<CacheEvent>>::new(), live, a, st.revision),
            }
        };
        // Older than the in-memory window: replay from the backend, then continue live.
        debug_assert!(replay.is_empty());
        let events = self.backend.events(floor, at).await?;
        let replay = events
            .iter()
            .filter(|e| e.kv.key.starts_with(prefix))
            .map(|e| {
                Arc::new(CacheEvent {
                    kind: e.kind,
                    revision: e.kv.mod_revision,
                    object: self.decode_kv(&e.kv),
                    prev: e.prev.as_ref().map(|p| self.decode_kv(p)),
                })
            })
            .collect();
        Ok(Watch { replay, live, after: at })
    }

    /// The revision the cache has applied.
    pub fn revision(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.state.read().map(|s| s.objects.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteBackend, SqliteConfig};

    async fn setup(dir: &std::path::Path) -> (Arc<SqliteBackend>, Arc<Cache>) {
        let b = SqliteBackend::open(SqliteConfig::new(dir.join("db"))).unwrap();
        let c = Cache::start(b.clone(), Arc::new(PlainJson)).await.unwrap();
        (b, c)
    }

    fn obj(name: &str, v: i32) -> Bytes {
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({"metadata": {"name": name, "labels": {"v": v.to_string()}}}))
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn reads_see_own_writes_and_carry_resource_version() {
        let dir = tempfile::tempdir().unwrap();
        let (b, c) = setup(dir.path()).await;
        let rev = b.create("/p/a".into(), obj("a", 1)).await.unwrap();
        let got = c.get("/p/a").await.unwrap().expect("visible at once");
        assert_eq!(got.revision, rev);
        assert_eq!(got.value().unwrap()["metadata"]["resourceVersion"], rev.to_string());
        for i in 0..5 {
            b.create(format!("/p/b{i}"), obj("b", i)).await.unwrap();
        }
        let page = c.list("/p/", None, 2, None, &|_| true).await.unwrap();
        assert_eq!(page.objects.len(), 2);
        assert!(page.more);
        assert_eq!(page.remaining, 4);
        let filtered =
            c.list("/p/", None, 0, None, &|o| o.labels.get("v").map(String::as_str) == Some("3")).await.unwrap();
        assert_eq!(filtered.objects.len(), 1);
        // An old revision is read from the backend.
        let old = c.list("/p/", None, 0, Some(rev), &|_| true).await.unwrap();
        assert_eq!(old.objects.len(), 1);
    }

    #[tokio::test]
    async fn watch_resumes_from_memory_and_from_backend() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = setup(dir.path()).await;
        let r1 = b.create("/w/a".into(), obj("a", 1)).await.unwrap();
        let r2 = b.update("/w/a".into(), obj("a", 2), r1).await.unwrap();
        // A fresh cache after these writes must get r1..r2 from the backend.
        let c = Cache::start(b.clone(), Arc::new(PlainJson)).await.unwrap();
        let w = c.watch("/w/", Some(r1)).await.unwrap();
        assert_eq!(w.replay.len(), 1);
        assert_eq!(w.replay[0].revision, r2);
        assert_eq!(w.replay[0].prev.as_ref().unwrap().revision, r1);
        let mut w = c.watch("/w/", Some(r2)).await.unwrap();
        assert!(w.replay.is_empty());
        let r3 = b.delete("/w/a".into(), None).await.unwrap();
        let ev = w.live.recv().await.unwrap();
        assert_eq!((ev.kind, ev.revision), (EventKind::Delete, r3));
        assert_eq!(ev.object.value().unwrap()["metadata"]["resourceVersion"], r3.to_string());
        // From "now": the current state first.
        b.create("/w/b".into(), obj("b", 1)).await.unwrap();
        let w = c.watch("/w/", None).await.unwrap();
        assert_eq!(w.replay.len(), 1);
    }
}
