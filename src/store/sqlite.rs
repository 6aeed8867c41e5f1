//! The SQLite backend: an append-only revision log in one table, written by one thread with
//! group commit.
//!
//! Schema: `kv(rev PRIMARY KEY, key, create_rev, prev_rev, deleted, value)` with one index on
//! `(key, rev)`. Every create, update and delete appends a row; a delete appends a tombstone with an
//! empty value. Revisions are assigned here, in the writer thread, so they are dense and ordered.
//!
//! Durability: WAL with `synchronous=FULL`. All writes queued while one transaction commits are
//! committed together in the next one (group commit): many concurrent writers share one fsync, and
//! a write is acknowledged only after the transaction holding it committed.
//!
//! Compaction runs in the same thread in small steps (a bounded range of revisions per
//! transaction) between write batches, so writers are never stalled behind a long delete.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Event, EventBatch, EventKind, KeyValue, Revision, StoreError};

/// How many queued writes one transaction takes at most.
const MAX_BATCH: usize = 2048;
/// How many revisions one compaction step covers.
const COMPACTION_STEP: i64 = 1000;

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    /// How often a compaction target is chosen.
    pub compaction_interval: Duration,
    /// How much history (by age) survives compaction.
    pub compaction_retention: Duration,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            compaction_interval: Duration::from_secs(60),
            compaction_retention: Duration::from_secs(300),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

enum Op {
    Create { key: String, value: Bytes },
    Update { key: String, value: Bytes, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Revision, StoreError>>,
}

struct Shared {
    current: AtomicI64,
    compacted: AtomicI64,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<EventBatch>>>,
}

pub struct SqliteBackend {
    writer: Mutex<Option<std_mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    reader: Arc<Mutex<Connection>>,
    shared: Arc<Shared>,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // auto_vacuum must be chosen before the first table exists; harmless afterwards.
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -2000;",
    )?;
    Ok(conn)
}

fn init_schema(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS kv (
             rev INTEGER PRIMARY KEY,
             key TEXT NOT NULL,
             create_rev INTEGER NOT NULL,
             prev_rev INTEGER NOT NULL,
             deleted INTEGER NOT NULL,
             value BLOB NOT NULL
         );
         CREATE INDEX IF NOT EXISTS kv_key_rev ON kv (key, rev);
         CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )?;
    Ok(())
}

/// The smallest string greater than every string starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = char::from_u32(c as u32 + 1) {
            chars.push(next);
            return chars.into_iter().collect();
        }
    }
    "\u{10FFFF}".to_string()
}

impl SqliteBackend {
    /// Open (creating if needed) the database and start the writer thread.
    pub fn open(config: SqliteConfig) -> Result<Arc<SqliteBackend>, StoreError> {
        if let Some(dir) = config.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(format!("{}: {e}", dir.display())))?;
        }
        let conn = open(&config.path)?;
        init_schema(&conn)?;
        // Start from a small WAL: whatever a crash left is checkpointed now.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        let max_rev: Revision = conn.query_row("SELECT IFNULL(MAX(rev), 0) FROM kv", [], |r| r.get(0))?;
        let compacted: Revision = conn
            .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let shared = Arc::new(Shared {
            current: AtomicI64::new(max_rev.max(compacted)),
            compacted: AtomicI64::new(compacted),
            subscribers: Mutex::new(Vec::new()),
        });
        let reader = open(&config.path)?;
        let (tx, rx) = std_mpsc::channel();
        let mut writer = Writer {
            conn,
            shared: shared.clone(),
            next_rev: max_rev.max(compacted) + 1,
            config,
            samples: VecDeque::new(),
            compact_target: compacted,
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Database(format!("spawning the writer thread: {e}")))?;
        Ok(Arc::new(SqliteBackend {
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            reader: Arc::new(Mutex::new(reader)),
            shared,
        }))
    }

    /// Stop accepting writes, let queued ones commit, and wait for the writer thread.
    pub fn close(&self) {
        self.writer.lock().map(|mut w| w.take()).ok();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }

    fn submit(&self, op: Op) -> BoxFuture<'_, Result<Revision, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = match self.writer.lock() {
            Ok(w) => w.as_ref().map(|w| w.send(Request { op, reply }).is_ok()).unwrap_or(false),
            Err(_) => false,
        };
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        }
        .boxed()
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let reader = self.reader.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = reader.lock().map_err(|_| StoreError::Database("reader lock poisoned".into()))?;
                f(&conn)
            })
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
        }
        .boxed()
    }

    fn check_revision(&self, at: Revision) -> Result<(), StoreError> {
        let compacted = self.compacted_revision();
        if at < compacted {
            return Err(StoreError::Compacted { requested: at, compacted });
        }
        let current = self.current_revision();
        if at > current {
            return Err(StoreError::FutureRevision { requested: at, current });
        }
        Ok(())
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.close();
    }
}

impl Backend for SqliteBackend {
    fn create(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<Revision, StoreError>> {
        self.submit(Op::Create { key, value })
    }

    fn update(&self, key: String, value: Bytes, expected: Revision) -> BoxFuture<'_, Result<Revision, StoreError>> {
        self.submit(Op::Update { key, value, expected })
    }

    fn delete(&self, key: String, expected: Option<Revision>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        self.submit(Op::Delete { key, expected })
    }

    fn list(
        &self,
        prefix: String,
        start_after: Option<String>,
        limit: usize,
        at: Revision,
    ) -> BoxFuture<'_, Result<Vec<KeyValue>, StoreError>> {
        if let Err(e) = self.check_revision(at) {
            return async move { Err(e) }.boxed();
        }
        let shared = self.shared.clone();
        self.read(move |conn| {
            let end = prefix_end(&prefix);
            let mut stmt = conn.prepare_cached(
                "SELECT k.key, k.rev, k.create_rev, k.deleted, k.value FROM kv k
                 WHERE k.rev IN (SELECT MAX(rev) FROM kv WHERE key >= ?1 AND key < ?2 AND key > ?3 AND rev <= ?4 GROUP BY key)
                 ORDER BY k.key",
            )?;
            let after = start_after.unwrap_or_default();
            let mut rows = stmt.query(params![prefix, end, after, at])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let deleted: i64 = row.get(3)?;
                if deleted != 0 {
                    continue;
                }
                let value: Vec<u8> = row.get(4)?;
                out.push(KeyValue {
                    key: row.get(0)?,
                    mod_revision: row.get(1)?,
                    create_revision: row.get(2)?,
                    value: Bytes::from(value),
                });
                if limit > 0 && out.len() >= limit {
                    break;
                }
            }
            // A compaction may have run while we read: the answer is only valid if it did not pass `at`.
            let compacted = shared.compacted.load(Ordering::SeqCst);
            if at < compacted {
                return Err(StoreError::Compacted { requested: at, compacted });
            }
            Ok(out)
        })
    }

    fn events(&self, after: Revision, upto: Revision) -> BoxFuture<'_, Result<Vec<Event>, StoreError>> {
        if let Err(e) = self.check_revision(after).and_then(|_| self.check_revision(upto)) {
            return async move { Err(e) }.boxed();
        }
        let shared = self.shared.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT k.rev, k.key, k.create_rev, k.deleted, k.value, p.rev, p.create_rev, p.value
                 FROM kv k LEFT JOIN kv p ON p.rev = k.prev_rev
                 WHERE k.rev > ?1 AND k.rev <= ?2 ORDER BY k.rev",
            )?;
            let mut rows = stmt.query(params![after, upto])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let key: String = row.get(1)?;
                let prev = match row.get::<_, Option<Revision>>(5)? {
                    Some(prev_rev) => Some(KeyValue {
                        key: key.clone(),
                        mod_revision: prev_rev,
                        create_revision: row.get(6)?,
                        value: Bytes::from(row.get::<_, Vec<u8>>(7)?),
                    }),
                    None => None,
                };
                let deleted: i64 = row.get(3)?;
                let rev: Revision = row.get(0)?;
                let create_revision: Revision = row.get(2)?;
                let (kind, value) = if deleted != 0 {
                    (EventKind::Delete, prev.as_ref().map(|p| p.value.clone()).unwrap_or_default())
                } else {
                    (EventKind::Put, Bytes::from(row.get::<_, Vec<u8>>(4)?))
                };
                out.push(Event { kind, kv: KeyValue { key, value, create_revision, mod_revision: rev }, prev });
            }
            let compacted = shared.compacted.load(Ordering::SeqCst);
            if after < compacted {
                return Err(StoreError::Compacted { requested: after, compacted });
            }
            Ok(out)
        })
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<EventBatch> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.shared.subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    fn current_revision(&self) -> Revision {
        self.shared.current.load(Ordering::SeqCst)
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::SeqCst)
    }
}

/// The latest row of a key.
struct Latest {
    rev: Revision,
    create_rev: Revision,
    deleted: bool,
    value: Vec<u8>,
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    next_rev: Revision,
    config: SqliteConfig,
    /// (when, current revision then): to find the revision as of `retention` ago.
    samples: VecDeque<(Instant, Revision)>,
    /// Compact up to here; compaction steps run while `compacted < compact_target`.
    compact_target: Revision,
}

impl Writer {
    fn run(&mut self, rx: std_mpsc::Receiver<Request>) {
        let mut next_sample = Instant::now();
        loop {
            let compacting = self.shared.compacted.load(Ordering::SeqCst) < self.compact_target;
            let wait = if compacting { Duration::ZERO } else { next_sample.saturating_duration_since(Instant::now()) };
            let first = match rx.recv_timeout(wait) {
                Ok(r) => Some(r),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                self.commit(batch);
            }
            let now = Instant::now();
            if now >= next_sample {
                self.sample(now);
                next_sample = now + self.config.compaction_interval;
            }
            if self.shared.compacted.load(Ordering::SeqCst) < self.compact_target {
                if let Err(e) = self.compact_step() {
                    tracing::warn!(message = "store compaction step failed", error = %e);
                    self.compact_target = self.shared.compacted.load(Ordering::SeqCst);
                }
            }
        }
    }

    /// Record the current revision and pick the newest revision that is older than the retention.
    fn sample(&mut self, now: Instant) {
        let current = self.shared.current.load(Ordering::SeqCst);
        self.samples.push_back((now, current));
        let mut target = None;
        while let Some(&(t, rev)) = self.samples.front() {
            if now.duration_since(t) >= self.config.compaction_retention {
                target = Some(rev);
                self.samples.pop_front();
            } else {
                break;
            }
        }
        if let Some(rev) = target {
            if rev > self.compact_target {
                self.compact_target = rev;
            }
        }
    }

    fn latest(tx: &rusqlite::Transaction<'_>, key: &str) -> Result<Option<Latest>, rusqlite::Error> {
        tx.prepare_cached("SELECT rev, create_rev, deleted, value FROM kv WHERE key = ?1 ORDER BY rev DESC LIMIT 1")?
            .query_row([key], |r| {
                Ok(Latest {
                    rev: r.get(0)?,
                    create_rev: r.get(1)?,
                    deleted: r.get::<_, i64>(2)? != 0,
                    value: r.get(3)?,
                })
            })
            .optional()
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let start_rev = self.next_rev;
        let outcome = self.apply(&batch);
        match outcome {
            Ok((results, events)) => {
                if !events.is_empty() {
                    let batch_events: EventBatch = events.into();
                    if let Ok(mut subs) = self.shared.subscribers.lock() {
                        subs.retain(|s| s.send(batch_events.clone()).is_ok());
                    }
                }
                self.shared.current.store(self.next_rev - 1, Ordering::SeqCst);
                for (req, res) in batch.into_iter().zip(results) {
                    let _ = req.reply.send(res);
                }
            }
            Err(e) => {
                self.next_rev = start_rev;
                tracing::error!(message = "store commit failed", error = %e);
                for req in batch {
                    let _ = req.reply.send(Err(e.clone()));
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn apply(&mut self, batch: &[Request]) -> Result<(Vec<Result<Revision, StoreError>>, Vec<Event>), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO kv (rev, key, create_rev, prev_rev, deleted, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for req in batch {
                let (key, expected) = match &req.op {
                    Op::Create { key, .. } => (key, None),
                    Op::Update { key, expected, .. } => (key, Some(*expected)),
                    Op::Delete { key, expected } => (key, *expected),
                };
                let latest = Self::latest(&tx, key)?.filter(|l| !l.deleted);
                let rev = self.next_rev;
                let result = match (&req.op, latest) {
                    (Op::Create { value, .. }, None) => {
                        insert.execute(params![rev, key, rev, 0, 0, &value[..]])?;
                        events.push(Event {
                            kind: EventKind::Put,
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: rev,
                                mod_revision: rev,
                            },
                            prev: None,
                        });
                        Ok(rev)
                    }
                    (Op::Create { .. }, Some(_)) => Err(StoreError::AlreadyExists(key.clone())),
                    (_, None) => Err(StoreError::NotFound(key.clone())),
                    (_, Some(l)) if expected.is_some_and(|e| e != l.rev) => {
                        Err(StoreError::Conflict { key: key.clone(), current: l.rev })
                    }
                    (Op::Update { value, .. }, Some(l)) => {
                        insert.execute(params![rev, key, l.create_rev, l.rev, 0, &value[..]])?;
                        events.push(Event {
                            kind: EventKind::Put,
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: l.create_rev,
                                mod_revision: rev,
                            },
                            prev: Some(KeyValue {
                                key: key.clone(),
                                value: Bytes::from(l.value),
                                create_revision: l.create_rev,
                                mod_revision: l.rev,
                            }),
                        });
                        Ok(rev)
                    }
                    (Op::Delete { .. }, Some(l)) => {
                        insert.execute(params![rev, key, l.create_rev, l.rev, 1, &[] as &[u8]])?;
                        let last = Bytes::from(l.value);
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: key.clone(),
                                value: last.clone(),
                                create_revision: l.create_rev,
                                mod_revision: rev,
                            },
                            prev: Some(KeyValue {
                                key: key.clone(),
                                value: last,
                                create_revision: l.create_rev,
                                mod_revision: l.rev,
                            }),
                        });
                        Ok(rev)
                    }
                };
                if result.is_ok() {
                    self.next_rev += 1;
                }
                results.push(result);
            }
        }
        tx.commit()?;
        Ok((results, events))
    }

    /// Remove, for one range of revisions at or below the target, every older row that a row of the
    /// range supersedes, and the range's tombstones.
    fn compact_step(&mut self) -> Result<(), StoreError> {
        let from = self.shared.compacted.load(Ordering::SeqCst);
        let target = self.compact_target;
        let to = (from + COMPACTION_STEP).min(target);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Rows superseded by a row of this range (wherever they are), and this range's tombstones.
        tx.execute(
            "DELETE FROM kv WHERE rev IN
                 (SELECT k.rev FROM kv n JOIN kv k ON k.key = n.key AND k.rev < n.rev WHERE n.rev > ?1 AND n.rev <= ?2)
             OR (rev > ?1 AND rev <= ?2 AND deleted = 1)",
            params![from, to],
        )?;
        tx.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?1)", [to])?;
        tx.commit()?;
        self.shared.compacted.store(to, Ordering::SeqCst);
        if to >= target {
            // Done: give freed pages back and keep the WAL small.
            self.conn.execute_batch("PRAGMA incremental_vacuum(2000);")?;
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            tracing::debug!(message = "store compacted", revision = to);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(dir: &Path) -> Arc<SqliteBackend> {
        SqliteBackend::open(SqliteConfig::new(dir.join("state.db"))).expect("open")
    }

    #[tokio::test]
    async fn create_update_delete_with_cas() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let r1 = b.create("/a/x".into(), Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(
            b.create("/a/x".into(), Bytes::from_static(b"1")).await,
            Err(StoreError::AlreadyExists("/a/x".into()))
        );
        let r2 = b.update("/a/x".into(), Bytes::from_static(b"2"), r1).await.unwrap();
        assert!(r2 > r1);
        assert_eq!(
            b.update("/a/x".into(), Bytes::from_static(b"3"), r1).await,
            Err(StoreError::Conflict { key: "/a/x".into(), current: r2 })
        );
        assert!(matches!(b.delete("/a/x".into(), Some(r1)).await, Err(StoreError::Conflict { .. })));
        let r3 = b.delete("/a/x".into(), Some(r2)).await.unwrap();
        assert_eq!(b.current_revision(), r3);
        assert!(matches!(b.update("/a/x".into(), Bytes::new(), r3).await, Err(StoreError::NotFound(_))));
        // Listing as of r2 still sees the value.
        let at_r2 = b.list("/a/".into(), None, 0, r2).await.unwrap();
        assert_eq!(at_r2.len(), 1);
        assert_eq!(at_r2[0].value, Bytes::from_static(b"2"));
        assert_eq!(at_r2[0].create_revision, r1);
        assert!(b.list("/a/".into(), None, 0, r3).await.unwrap().is_empty());
        // Recreate after delete starts a new lifetime.
        let r4 = b.create("/a/x".into(), Bytes::from_static(b"4")).await.unwrap();
        let events = b.events(0, r4).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Put, EventKind::Put, EventKind::Delete, EventKind::Put]);
        assert_eq!(events[2].kv.value, Bytes::from_static(b"2"));
        assert!(events[3].prev.is_none());
    }

    #[tokio::test]
    async fn concurrent_writers_share_commits_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path());
        let mut sub = b.subscribe();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { b.create(format!("/k/{i:04}"), Bytes::from(vec![b'x'; 100])).await }));
        }
        let mut revs = Vec::new();
        for t in tasks {
            revs.push(t.await.unwrap().unwrap());
        }
        revs.sort();
        revs.dedup();
        assert_eq!(revs.len(), 200, "every write got its own revision");
        assert_eq!(*revs.last().unwrap(), 200);
        let mut seen = 0;
        while seen < 200 {
            let batch = sub.recv().await.unwrap();
            for (i, e) in batch.iter().enumerate() {
                assert_eq!(e.kv.mod_revision, (seen + i + 1) as i64, "events arrive in revision order");
            }
            seen += batch.len();
        }
        b.close();
        drop(b);
        let b = backend(dir.path());
        assert_eq!(b.current_revision(), 200);
        let page = b.list("/k/".into(), Some("/k/0099".into()), 10, 200).await.unwrap();
        assert_eq!(page.first().map(|kv| kv.key.as_str()), Some("/k/0100"));
        assert_eq!(page.len(), 10);
        assert_eq!(b.create("/k/new".into(), Bytes::new()).await.unwrap(), 201);
    }

    #[tokio::test]
    async fn compaction_removes_superseded_history_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SqliteConfig::new(dir.path().join("state.db"));
        cfg.compaction_interval = Duration::from_millis(50);
        cfg.compaction_retention = Duration::ZERO;
        let b = SqliteBackend::open(cfg).unwrap();
        let r1 = b.create("/c/a".into(), Bytes::from_static(b"1")).await.unwrap();
        let mut last = r1;
        for i in 0..50 {
            last = b.update("/c/a".into(), Bytes::from(format!("{i}")), last).await.unwrap();
        }
        let gone = b.create("/c/b".into(), Bytes::new()).await.unwrap();
        b.delete("/c/b".into(), Some(gone)).await.unwrap();
        let now = b.current_revision();
        // Let the writer take samples and compact up to `now`.
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.compacted_revision() < now {
            assert!(Instant::now() < deadline, "compaction did not run");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(b.events(r1, now).await, Err(StoreError::Compacted { .. })));
        assert!(matches!(b.list("/c/".into(), None, 0, r1).await, Err(StoreError::Compacted { .. })));
        let current = b.list("/c/".into(), None, 0, b.current_revision()).await.unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].value, Bytes::from_static(b"49"));
        let rows: i64 = b.reader.lock().unwrap().query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1, "only the live row remains");
    }

    #[test]
    fn prefix_end_is_exclusive_bound() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert!("/registry/pods/x" < prefix_end("/registry/pods/").as_str());
    }
}
