//! Watch: a chunked stream of JSON lines `{"type": …, "object": …}` fed from the watch cache.
//!
//! A watcher that cannot keep up (its buffer in the cache's fan-out overflows) gets an `ERROR`
//! event with a 410 `Expired` Status and the stream ends: never silent loss, and it never holds
//! up the store or other watchers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::objects::{parse_rv, partial_metadata, store_error, Ctx};
use super::request::Representation;
use super::{Body, BoxError};
use crate::api::registry;
use crate::api::selector::FieldSelector;
use crate::api::status::StatusError;
use crate::store::cache::{CacheEvent, CachedObject};
use crate::store::{EventKind, Revision, StoreError};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

struct Encoder {
    def: &'static registry::ResourceDef,
    repr: Representation,
    ctx_table: Option<Arc<Ctx>>,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &CachedObject) -> Option<Bytes> {
        if self.repr == Representation::Object && self.def.storage_version {
            let mut out = Vec::with_capacity(obj.json.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(&obj.json);
            out.extend_from_slice(b"}\n");
            return Some(Bytes::from(out));
        }
        let v = registry::from_storage(self.def, obj.value().ok()?);
        let object = match (self.repr, &self.ctx_table) {
            (Representation::Table, Some(ctx)) => {
                let t = ctx.table(std::slice::from_ref(&v), !self.sent_columns, None);
                self.sent_columns = true;
                t
            }
            (Representation::Metadata, _) => partial_metadata(&v),
            _ => v,
        };
        line(kind, &object)
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> Option<Bytes> {
        let mut meta = json!({ "resourceVersion": rev.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let (kind, av) = match self.repr {
            Representation::Table => ("Table".to_string(), "meta.k8s.io/v1".to_string()),
            Representation::Metadata => ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string()),
            Representation::Object => (self.def.kind.to_string(), self.def.api_version()),
        };
        line("BOOKMARK", &json!({ "kind": kind, "apiVersion": av, "metadata": meta }))
    }
}

fn line(kind: &str, object: &Value) -> Option<Bytes> {
    let mut out = serde_json::to_vec(&json!({ "type": kind, "object": object })).ok()?;
    out.push(b'\n');
    Some(Bytes::from(out))
}

fn error_line(e: &StatusError) -> Bytes {
    line("ERROR", &e.to_status()).unwrap_or_default()
}

/// What a watcher with `filter` sees of an event: the event type and the object to send.
fn classify<'a>(
    ev: &'a CacheEvent,
    filter: &dyn Fn(&CachedObject) -> bool,
) -> Option<(&'static str, &'a CachedObject)> {
    match ev.kind {
        EventKind::Put => {
            let now = filter(&ev.object);
            let before = ev.prev.as_deref().is_some_and(filter);
            match (before, now) {
                (false, true) => Some(("ADDED", &ev.object)),
                (true, true) => Some(("MODIFIED", &ev.object)),
                // Left the selection: the watcher sees it go.
                (true, false) => Some(("DELETED", &ev.object)),
                (false, false) => None,
            }
        }
        EventKind::Delete => filter(&ev.object).then_some(("DELETED", &ev.object)),
    }
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok::<_, BoxError>(Frame::data(b)));
    let body: Body = StreamBody::new(stream).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

pub async fn serve(ctx: &Ctx, name: Option<&str>) -> Result<Response<Body>, StatusError> {
    let (labels, mut fields) = ctx.selectors()?;
    if let Some(name) = name {
        // The legacy /watch/<resource>/<name> form.
        let mut text = format!("metadata.name={name}");
        if let Some(f) = ctx.query.get("fieldSelector") {
            text = format!("{f},{text}");
        }
        fields = FieldSelector::parse(&text).map_err(|e| StatusError::bad_request(e.to_string()))?;
    }
    let filter = ctx.filter(labels, fields);
    let repr = super::request::negotiate(ctx.accept.as_deref())?;
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let send_initial = match ctx.query.get("sendInitialEvents") {
        Some("true") => {
            if ctx.query.get("resourceVersionMatch") != Some("NotOlderThan") {
                return Err(StatusError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![crate::api::status::Cause::forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )],
                ));
            }
            if !bookmarks {
                return Err(StatusError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![crate::api::status::Cause::forbidden(
                        "allowWatchBookmarks",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    )],
                ));
            }
            true
        }
        _ => false,
    };
    let after = match ctx.query.get("resourceVersion") {
        None | Some("0") => None,
        Some(rv) if send_initial => {
            // Initial events at least as new as rv: the current state.
            let rev = parse_rv(rv)?;
            let current = ctx.api.cache.sync().await.map_err(|e| store_error(e, ctx.def, ""))?;
            if rev > current {
                return Err(store_error(StoreError::FutureRevision { requested: rev, current }, ctx.def, ""));
            }
            None
        }
        Some(rv) => Some(parse_rv(rv)?),
    };
    let timeout = match ctx.query.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        // Upstream spreads long watches over 30–60 minutes.
        _ => Duration::from_secs(1800 + rand::random_range(0..1800)),
    };
    let prefix = ctx.def.prefix(ctx.ns.as_deref());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let watch = match ctx.api.cache.watch(&prefix, after).await {
        Ok(w) => w,
        Err(StoreError::Compacted { requested, compacted }) => {
            let _ = tx.try_send(error_line(&StatusError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            ))));
            drop(tx);
            return Ok(stream_response(rx));
        }
        Err(StoreError::FutureRevision { requested, current }) => {
            return Err(store_error(StoreError::FutureRevision { requested, current }, ctx.def, ""));
        }
        Err(e) => return Err(store_error(e, ctx.def, "")),
    };
    let table_ctx = match repr {
        Representation::Table => {
            Some(Arc::new(Ctx::new(ctx.api.clone(), ctx.def, ctx.ns.clone(), ctx.query.clone(), ctx.accept.clone())?))
        }
        _ => None,
    };
    let mut enc = Encoder { def: ctx.def, repr, ctx_table: table_ctx, sent_columns: false };
    let initial_rev = watch.after;
    tokio::spawn(async move {
        let mut last_rev = after.unwrap_or(initial_rev);
        for ev in &watch.replay {
            if let Some((kind, obj)) = classify(ev, &filter) {
                let kind = if after.is_none() { "ADDED" } else { kind };
                if let Some(b) = enc.event(kind, obj) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            last_rev = last_rev.max(ev.revision);
        }
        last_rev = last_rev.max(initial_rev);
        if send_initial {
            if let Some(b) = enc.bookmark(last_rev, true) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        let mut live = watch.live;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = tx.closed() => break,
                _ = tick.tick(), if bookmarks => {
                    if let Some(b) = enc.bookmark(last_rev, false) {
                        if tx.send(b).await.is_err() { break; }
                    }
                }
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        if ev.revision <= watch.after || !ev.object.key.starts_with(&prefix) {
                            continue;
                        }
                        last_rev = ev.revision;
                        if let Some((kind, obj)) = classify(&ev, &filter) {
                            if let Some(b) = enc.event(kind, obj) {
                                if tx.send(b).await.is_err() { break; }
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(message = "watch too slow, closing it", prefix = %prefix, dropped = n);
                        let e = StatusError::gone(format!("too old resource version: {last_rev}: the watch fell behind by {n} events and was closed; list again"));
                        let _ = tx.send(error_line(&e)).await;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    });
    Ok(stream_response(rx))
}
