//! The store: a revision log of keys to opaque values, and the watch cache that serves lists and
//! watches from memory.
//!
//! * [`Backend`] is the durable log (SQLite today, etcd later). One global, monotonically
//!   increasing revision orders every write; it is every object's `resourceVersion`.
//! * [`cache::Cache`] sits on top of any backend: it holds the current state of every key in memory,
//!   kept current by the backend's stream of committed events, and fans those events out to
//!   watchers. The API server reads through the cache and writes to the backend.
//!
//! Only the API server uses this module (architecture invariant).

pub mod cache;
pub mod sqlite;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// A store revision. `0` means "none yet".
pub type Revision = i64;

/// A key with its current value as of some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision that created the key (the first write after it last did not exist).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One committed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put, the new value; for a delete, the last value the key had, with `mod_revision` set
    /// to the revision of the delete.
    pub kv: KeyValue,
    /// The value the key had before this write (`None` for a create).
    pub prev: Option<KeyValue>,
}

/// Committed events, in revision order, one batch per commit.
pub type EventBatch = Arc<[Event]>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    #[error("key {key} is at revision {current}, not the expected one")]
    Conflict { key: String, current: Revision },
    #[error("revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("the store is shutting down")]
    Closed,
    #[error("database error: {0}")]
    Database(String),
}

/// A durable revision log. Implementations: [`sqlite::SqliteBackend`].
///
/// Writes are acknowledged only once durable. Reads at a revision older than
/// [`Backend::compacted_revision`] fail with [`StoreError::Compacted`].
pub trait Backend: Send + Sync + 'static {
    /// Create `key`; fails with `AlreadyExists` if it exists.
    fn create(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<Revision, StoreError>>;
    /// Replace `key`'s value if its mod revision is `expected`; `Conflict` otherwise.
    fn update(&self, key: String, value: Bytes, expected: Revision) -> BoxFuture<'_, Result<Revision, StoreError>>;
    /// Delete `key`, if `expected` is given only when its mod revision is that one.
    fn delete(&self, key: String, expected: Option<Revision>) -> BoxFuture<'_, Result<Revision, StoreError>>;
    /// Keys under `prefix` as of revision `at`, in key order, after `start_after`, at most `limit`
    /// (0 = no limit).
    fn list(
        &self,
        prefix: String,
        start_after: Option<String>,
        limit: usize,
        at: Revision,
    ) -> BoxFuture<'_, Result<Vec<KeyValue>, StoreError>>;
    /// Every event with a revision in `(after, upto]`, in order.
    fn events(&self, after: Revision, upto: Revision) -> BoxFuture<'_, Result<Vec<Event>, StoreError>>;
    /// A stream of every event committed from now on, one batch per commit, never lossy.
    fn subscribe(&self) -> mpsc::UnboundedReceiver<EventBatch>;
    /// The newest committed revision.
    fn current_revision(&self) -> Revision;
    /// Revisions at or below this one may be gone.
    fn compacted_revision(&self) -> Revision;
}
