//! Handlers for stored resources: create, get, list, update, patch, delete, deletecollection and
//! the `status`, `scale`, `binding` and `finalize` subresources.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::request::{negotiate, Query, Representation, ResourceRequest, Verb};
use super::{admission, alloc, bytes_response, json_response, watch, ApiServer, Body};
use crate::api::managed::{self, Manager, Operation, Tracked};
use crate::api::registry::{self, ResourceDef};
use crate::api::selector::{self, FieldSelector, LabelSelector};
use crate::api::status::{Cause, StatusError};
use crate::api::strict::{self, FieldValidation};
use crate::api::{defaults, smp, structural, table, validation};
use crate::store::cache::{set_resource_version, CachedObject, Decoder};
use crate::store::{Revision, StoreError};

/// Decodes stored objects for the cache: sets the resourceVersion, extracts labels and the kind's
/// selectable fields.
pub struct ApiDecoder;

impl Decoder for ApiDecoder {
    fn decode(&self, key: &str, revision: Revision, value: &[u8]) -> Result<CachedObject, String> {
        let mut v: Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        set_resource_version(&mut v, revision);
        let def = registry::parse_key(key).and_then(|(storage, _, _)| registry::by_storage(storage));
        let fields = def.map(|d| selector::selectable_fields(d.group, d.plural, &v)).unwrap_or_default();
        Ok(CachedObject {
            key: key.to_string(),
            revision,
            create_revision: 0,
            labels: selector::labels_of(&v),
            fields,
            json: Bytes::from(serde_json::to_vec(&v).map_err(|e| e.to_string())?),
        })
    }
}

pub(crate) fn store_error(e: StoreError, def: &ResourceDef, name: &str) -> StatusError {
    match e {
        StoreError::AlreadyExists(_) => StatusError::already_exists(def.group, def.plural, name),
        StoreError::NotFound(_) => StatusError::not_found(def.group, def.plural, name),
        StoreError::Conflict { .. } => StatusError::stale(def.group, def.plural, name),
        StoreError::Compacted { requested, compacted } => StatusError::gone(format!(
            "The resourceVersion for the provided list is too old. (requested {requested}, compacted {compacted})"
        )),
        StoreError::FutureRevision { requested, current } => {
            let mut e = StatusError::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            );
            e.details = Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            );
            e.retry_after = Some(1);
            e
        }
        StoreError::Closed => StatusError::unavailable("the store is shutting down"),
        StoreError::Database(m) => StatusError::internal(m),
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Entry point for resource requests.
pub async fn serve(
    api: &Arc<ApiServer>,
    r: ResourceRequest,
    req: Request<Bytes>,
    query: Query,
    user: super::UserInfo,
) -> Result<Response<Body>, StatusError> {
    let def = registry::find(&r.group, &r.version, &r.resource)
        .ok_or_else(|| StatusError::new(404, "NotFound", "the server could not find the requested resource"))?;
    if !def.namespaced && r.namespace.is_some() {
        return Err(StatusError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    if let Some(sub) = r.subresource.as_deref() {
        if !def.has_subresource(sub) {
            return Err(StatusError::new(404, "NotFound", "the server could not find the requested resource"));
        }
    }
    if def.group == registry::METRICS_GROUP && def.custom.is_none() {
        return super::metrics::serve(api, def, &r, query).await;
    }
    let mut ctx = Ctx::new(api.clone(), def, r.namespace.clone(), query, header_str(&req, header::ACCEPT))?;
    ctx.user_agent = header_str(&req, header::USER_AGENT);
    let name = r.name.clone().unwrap_or_default();
    if super::reviews::is_review(def) {
        return match r.verb {
            Verb::Create => super::reviews::create(&ctx, &user, &req).await,
            other => {
                Err(StatusError::method_not_allowed(format!("{} is not supported on {}", other.as_str(), def.plural)))
            }
        };
    }
    match (r.verb, r.subresource.as_deref()) {
        (Verb::Get, None) | (Verb::Get, Some("status")) => ctx.get(&name).await,
        (Verb::List, None) => ctx.list().await,
        (Verb::Watch, None) => watch::serve(&ctx, r.name.as_deref()).await,
        (Verb::Create, None) => ctx.create(&req).await,
        (Verb::Update, None) => ctx.update(&name, &req, Part::Main).await,
        (Verb::Update, Some("status")) => ctx.update(&name, &req, Part::Status).await,
        (Verb::Patch, None) => ctx.patch(&name, &req, Part::Main).await,
        (Verb::Patch, Some("status")) => ctx.patch(&name, &req, Part::Status).await,
        (Verb::Delete, None) => ctx.delete(&name, req.body()).await,
        (Verb::DeleteCollection, None) => ctx.delete_collection(req.body()).await,
        (Verb::Get | Verb::Update | Verb::Patch, Some("scale")) => ctx.scale(&name, r.verb, &req).await,
        (Verb::Create, Some("binding")) => ctx.bind(&name, req.body()).await,
        (Verb::Create, Some("eviction")) => {
            let ct = header_str(&req, header::CONTENT_TYPE);
            super::eviction::evict(&ctx, &name, ct.as_deref(), req.body()).await
        }
        (Verb::Create, Some("token")) => {
            let ct = header_str(&req, header::CONTENT_TYPE);
            let body = parse_body(ct.as_deref(), req.body())?;
            let tr = super::tokens::request(&ctx, &name, &body).await?;
            ctx.respond_object(StatusCode::CREATED, &tr)
        }
        (Verb::Update, Some("finalize")) => ctx.finalize_namespace(&name, req.body()).await,
        (Verb::Get, Some("log")) if def.group.is_empty() && def.plural == "pods" => {
            super::pod_streams::serve_pod(&ctx, "log", &name, req).await
        }
        (Verb::Get | Verb::Create, Some(sub @ ("exec" | "attach" | "portforward")))
            if def.group.is_empty() && def.plural == "pods" =>
        {
            super::pod_streams::serve_pod(&ctx, sub, &name, req).await
        }
        (_, Some("proxy")) if def.group.is_empty() && def.plural == "nodes" => {
            super::pod_streams::serve_node_proxy(&ctx, &name, req).await
        }
        (_, Some(sub)) => {
            Err(StatusError::new(404, "NotFound", format!("{}/{sub} is not served by this kelp version", def.plural)))
        }
    }
}

fn header_str(req: &Request<Bytes>, h: header::HeaderName) -> Option<String> {
    req.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but status (for kinds with a status subresource).
    Main,
    /// Only status.
    Status,
}

/// A request's context.
pub struct Ctx {
    pub api: Arc<ApiServer>,
    pub def: &'static ResourceDef,
    pub ns: Option<String>,
    pub query: Query,
    pub accept: Option<String>,
    /// `fieldValidation` of the request.
    pub field_validation: FieldValidation,
    /// Warnings for the `Warning` response header.
    warnings: std::sync::Mutex<Vec<String>>,
    /// The request's `User-Agent`: the default field manager.
    pub user_agent: Option<String>,
}

/// Parse a request body: JSON, or YAML when the content type says so.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, StatusError> {
    let media =
        content_type.unwrap_or("application/json").split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| StatusError::bad_request(format!("error decoding request body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| StatusError::bad_request(format!("error decoding YAML request body: {e}"))),
        crate::api::protobuf::MEDIA_TYPE => crate::api::protobuf::decode(body)
            .map_err(|e| StatusError::bad_request(format!("error decoding protobuf request body: {e}"))),
        _ => Err(StatusError::unsupported_media_type(&media)),
    }
}

fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"].as_object_mut().expect("metadata is an object")
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    meta(v).and_then(|m| m.get(field)).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The JSON bytes stored for an object: without resourceVersion (the revision is its version).
fn stored_bytes(v: &Value) -> Bytes {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn with_rv(mut v: Value, rev: Revision) -> Value {
    set_resource_version(&mut v, rev);
    v
}

/// Everything but metadata and status: what a generation counts.
fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn random_suffix() -> String {
    // Upstream's alphabet: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

impl Ctx {
    pub fn new(
        api: Arc<ApiServer>,
        def: &'static ResourceDef,
        ns: Option<String>,
        query: Query,
        accept: Option<String>,
    ) -> Result<Ctx, StatusError> {
        let field_validation =
            FieldValidation::parse(query.get("fieldValidation")).map_err(StatusError::bad_request)?;
        Ok(Ctx { api, def, ns, query, accept, field_validation, warnings: Default::default(), user_agent: None })
    }

    /// The field manager of a write: `fieldManager`, else the User-Agent up to its first `/`
    /// (as upstream), else `unknown`.
    fn manager_name(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        self.user_agent
            .as_deref()
            .and_then(|ua| ua.split('/').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(128).collect())
            .unwrap_or_else(|| "unknown".into())
    }

    /// The `Update` manager of this request on `subresource` ("" for the main resource).
    fn updater(&self, subresource: &str) -> Manager {
        Manager {
            name: self.manager_name(),
            operation: Operation::Update,
            api_version: self.def.api_version(),
            subresource: subresource.into(),
        }
    }

    /// Field sets of this kind for writes to `part`.
    fn typed(&self, part: Part) -> managed::Typed {
        let tracked = match part {
            Part::Status => Tracked::OnlyStatus,
            Part::Main if self.def.has_subresource("status") => Tracked::NoStatus,
            Part::Main => Tracked::All,
        };
        managed::Typed::new(self.def.group, self.def.version, self.def.kind, tracked)
    }

    fn warn(&self, w: String) {
        if let Ok(mut ws) = self.warnings.lock() {
            if !ws.contains(&w) {
                ws.push(w);
            }
        }
    }

    /// Unknown or duplicate fields: an error under Strict, warnings under Warn.
    fn field_problems(&self, problems: Vec<String>) -> Result<(), StatusError> {
        if problems.is_empty() {
            return Ok(());
        }
        match self.field_validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Warn => {
                problems.into_iter().for_each(|p| self.warn(p));
                Ok(())
            }
            FieldValidation::Strict => Err(StatusError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                self.def.kind,
                self.def.version,
                self.def.kind,
                problems.join(", ")
            ))),
        }
    }

    /// Add the collected warnings to a response.
    fn with_warnings(&self, mut resp: Response<Body>) -> Response<Body> {
        if let Ok(ws) = self.warnings.lock() {
            for w in ws.iter() {
                let text = format!("299 - {}", serde_json::Value::String(w.clone()));
                if let Ok(v) = http::HeaderValue::from_str(&text) {
                    resp.headers_mut().append(http::header::WARNING, v);
                }
            }
        }
        resp
    }
    fn key(&self, name: &str) -> String {
        self.def.key(self.ns.as_deref(), name)
    }

    fn not_found(&self, name: &str) -> StatusError {
        StatusError::not_found(self.def.group, self.def.plural, name)
    }

    fn representation(&self) -> Result<Representation, StatusError> {
        negotiate(self.accept.as_deref())
    }

    /// A cached object in this request's version.
    fn versioned(&self, o: &CachedObject) -> Result<Value, StatusError> {
        let v = o.value().map_err(|e| StatusError::internal(e.to_string()))?;
        Ok(registry::from_storage(self.def, v))
    }

    /// The current object in this request's version.
    pub(crate) async fn current_value(&self, name: &str) -> Result<Value, StatusError> {
        let o = self.current(name).await?;
        self.versioned(&o)
    }

    /// The current object in this request's version, `None` when absent.
    pub(crate) async fn get_value(&self, name: &str) -> Result<Option<Value>, StatusError> {
        match self.api.cache.get(&self.key(name)).await.map_err(|e| store_error(e, self.def, name))? {
            Some(o) => Ok(Some(self.versioned(&o)?)),
            None => Ok(None),
        }
    }

    /// Every object of this context's kind (and namespace) with its revision.
    pub(crate) async fn list_values(&self) -> Result<Vec<(Revision, Value)>, StatusError> {
        let prefix = self.def.prefix(self.ns.as_deref());
        let listing =
            self.api.cache.list(&prefix, None, 0, None, &|_| true).await.map_err(|e| store_error(e, self.def, ""))?;
        listing.objects.iter().map(|o| Ok((o.revision, self.versioned(o)?))).collect()
    }

    async fn current(&self, name: &str) -> Result<Arc<CachedObject>, StatusError> {
        self.api
            .cache
            .get(&self.key(name))
            .await
            .map_err(|e| store_error(e, self.def, name))?
            .ok_or_else(|| self.not_found(name))
    }

    /// Respond with one object in the representation asked for.
    pub fn respond_object(&self, code: StatusCode, obj: &Value) -> Result<Response<Body>, StatusError> {
        let resp = match self.representation()? {
            Representation::Object => json_response(code, obj),
            Representation::Table => json_response(code, &self.table(std::slice::from_ref(obj), true, None)),
            Representation::Metadata => json_response(code, &partial_metadata(obj)),
        };
        Ok(self.with_warnings(resp))
    }

    /// A meta.k8s.io/v1 Table of objects.
    pub fn table(&self, objs: &[Value], with_columns: bool, list_meta: Option<Value>) -> Value {
        let now = Utc::now();
        let include = self.query.get("includeObject").unwrap_or("Metadata");
        let rows: Vec<Value> = objs
            .iter()
            .map(|o| {
                let object = match include {
                    "None" => Value::Null,
                    "Object" => o.clone(),
                    _ => partial_metadata(o),
                };
                let cells = match self.def.custom {
                    Some(ci) => custom_cells(ci, o, now),
                    None => table::cells(self.def.group, self.def.plural, o, now),
                };
                let mut row = json!({ "cells": cells });
                if !object.is_null() {
                    row["object"] = object;
                }
                row
            })
            .collect();
        let mut t = json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta.unwrap_or_else(|| json!({})),
            "rows": rows,
        });
        if with_columns {
            t["columnDefinitions"] = match self.def.custom {
                Some(ci) => custom_columns(ci),
                None => table::column_definitions(&table::columns(self.def.group, self.def.plural)),
            };
        } else {
            t["columnDefinitions"] = Value::Null;
        }
        t
    }

    async fn get(&self, name: &str) -> Result<Response<Body>, StatusError> {
        let o = match self.query.get("resourceVersion") {
            Some(rv) if rv != "0" => {
                let rev = parse_rv(rv)?;
                let current = self.api.cache.sync().await.map_err(|e| store_error(e, self.def, name))?;
                if rev > current {
                    return Err(store_error(StoreError::FutureRevision { requested: rev, current }, self.def, name));
                }
                self.current(name).await?
            }
            _ => self.current(name).await?,
        };
        let v = self.versioned(&o)?;
        self.respond_object(StatusCode::OK, &v)
    }

    /// Label and field selectors of the request, checked and with field names converted as
    /// upstream does (e.g. a pod's legacy `spec.host`).
    pub fn selectors(&self) -> Result<(LabelSelector, FieldSelector), StatusError> {
        let labels = LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))
            .map_err(|e| StatusError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""))
            .map_err(|e| StatusError::bad_request(e.to_string()))?;
        let fields = selector::convert_field_selector(self.def.group, self.def.plural, &fields)
            .map_err(|e| StatusError::bad_request(e.to_string()))?;
        Ok((labels, fields))
    }

    /// A filter over cached objects for the request's selectors.
    pub fn filter(
        &self,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> impl Fn(&CachedObject) -> bool + Send + Sync + 'static {
        // The cache holds events.k8s.io events in their stored (core) form, with core field names.
        let fields = if self.def.group == "events.k8s.io" {
            FieldSelector::from_requirements(
                fields
                    .requirements()
                    .iter()
                    .map(|r| selector::FieldRequirement {
                        field: registry::events_field_to_core(&r.field),
                        op: r.op,
                        value: r.value.clone(),
                    })
                    .collect(),
            )
        } else {
            fields
        };
        move |o: &CachedObject| {
            (labels.is_empty() || labels.matches(&o.labels)) && (fields.is_empty() || fields.matches(&o.fields))
        }
    }

    async fn list(&self) -> Result<Response<Body>, StatusError> {
        let (labels, fields) = self.selectors()?;
        let limit = self.query.int("limit")?.unwrap_or(0).max(0) as usize;
        let prefix = self.def.prefix(self.ns.as_deref());
        let rv = self.query.get("resourceVersion");
        let rv_match = self.query.get("resourceVersionMatch");
        let cont = self.query.get("continue");
        if rv_match.is_some() && rv.is_none() {
            return Err(StatusError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if cont.is_some() && rv.is_some_and(|r| r != "0") {
            return Err(StatusError::bad_request("specifying resource version is not allowed when using continue"));
        }
        let (at, start_after) = match (cont, rv, rv_match) {
            (Some(token), _, _) => {
                let (rev, start) = decode_continue(token, &prefix)?;
                (Some(rev), Some(start))
            }
            (None, Some("0"), Some("Exact")) => {
                return Err(StatusError::bad_request(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ))
            }
            (None, Some(rv), Some("Exact")) => (Some(parse_rv(rv)?), None),
            (None, Some(rv), m) if rv != "0" => {
                let rev = parse_rv(rv)?;
                match m {
                    None | Some("NotOlderThan") => {
                        let current = self.api.cache.sync().await.map_err(|e| store_error(e, self.def, ""))?;
                        if rev > current {
                            return Err(store_error(
                                StoreError::FutureRevision { requested: rev, current },
                                self.def,
                                "",
                            ));
                        }
                        // Legacy: a limit with a resourceVersion and no match lists exactly at it.
                        if m.is_none() && limit > 0 {
                            (Some(rev), None)
                        } else {
                            (None, None)
                        }
                    }
                    Some(other) => {
                        return Err(StatusError::bad_request(format!(
                            "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                        )))
                    }
                }
            }
            _ => (None, None),
        };
        let filter = self.filter(labels, fields);
        let listing = self
            .api
            .cache
            .list(&prefix, start_after.as_deref(), limit, at, &filter)
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if cont.is_some() => StatusError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."),
                e => store_error(e, self.def, ""),
            })?;
        let mut list_meta = json!({ "resourceVersion": listing.revision.to_string() });
        if listing.more {
            if let Some(last) = listing.objects.last() {
                list_meta["continue"] = json!(encode_continue(listing.revision, &last.key[prefix.len()..]));
                list_meta["remainingItemCount"] = json!(listing.remaining);
            }
        }
        let repr = self.representation()?;
        if repr == Representation::Object && self.def.storage_version {
            // Fast path: splice the cached JSON.
            let mut out = Vec::with_capacity(64 + listing.objects.iter().map(|o| o.json.len() + 1).sum::<usize>());
            out.extend_from_slice(
                format!(
                    "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                    self.def.kind,
                    self.def.api_version(),
                    list_meta
                )
                .as_bytes(),
            );
            for (i, o) in listing.objects.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&o.json);
            }
            out.extend_from_slice(b"]}");
            return Ok(bytes_response(StatusCode::OK, "application/json", Bytes::from(out)));
        }
        let items: Vec<Value> = listing.objects.iter().map(|o| self.versioned(o)).collect::<Result<_, _>>()?;
        let body = match repr {
            Representation::Table => self.table(&items, true, Some(list_meta)),
            Representation::Metadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta,
                "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
            }),
            Representation::Object => json!({
                "kind": format!("{}List", self.def.kind),
                "apiVersion": self.def.api_version(),
                "metadata": list_meta,
                "items": items,
            }),
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Decode a request body into an object of this resource (typed round trip), checking
    /// apiVersion and kind.
    pub(crate) fn decode_object(&self, req: &Request<Bytes>) -> Result<Value, StatusError> {
        let ct = header_str(req, header::CONTENT_TYPE);
        let v = parse_body(ct.as_deref(), req.body())?;
        if self.field_validation != FieldValidation::Ignore && v.is_object() {
            let dups = strict::duplicate_fields(req.body());
            self.field_problems(dups.into_iter().map(|d| format!("duplicate field \"{d}\"")).collect())?;
        }
        self.decode_value(v)
    }

    fn decode_value(&self, mut v: Value) -> Result<Value, StatusError> {
        if !v.is_object() {
            return Err(StatusError::bad_request("the request body must be a JSON object"));
        }
        let want_av = self.def.api_version();
        match v.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != want_av => {
                return Err(StatusError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )))
            }
            _ => {}
        }
        match v.get("kind").and_then(Value::as_str) {
            Some(k) if k != self.def.kind => {
                return Err(StatusError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({}) of {}",
                    self.def.kind,
                    self.def.api_version()
                )))
            }
            _ => {}
        }
        v["apiVersion"] = json!(want_av);
        v["kind"] = json!(self.def.kind);
        let name = meta_str(&v, "name").unwrap_or_default().to_string();
        let input = (self.field_validation != FieldValidation::Ignore).then(|| v.clone());
        let mut decoded = (self.def.codec)(v).map_err(|e| e.to_status(self.def, &name))?;
        // Custom resources: what their schema does not define is pruned (and reported as unknown).
        if let Some(schema) = self.def.custom.and_then(|c| c.schema.as_ref()) {
            structural::prune(schema, &mut decoded);
        }
        if let Some(input) = input {
            let unknown = strict::unknown_fields(&input, &decoded);
            self.field_problems(unknown.into_iter().map(|f| format!("unknown field \"{f}\"")).collect())?;
        }
        Ok(decoded)
    }

    /// A custom resource's schema: defaults, then validation.
    fn custom_schema(&self, v: &mut Value) -> Vec<Cause> {
        match self.def.custom.and_then(|c| c.schema.as_ref()) {
            Some(schema) => {
                structural::apply_defaults(schema, v);
                structural::validate(schema, v)
            }
            None => Vec::new(),
        }
    }

    fn invalid(&self, name: &str, causes: Vec<Cause>) -> StatusError {
        StatusError::invalid(self.def.group, self.def.kind, name, causes)
    }

    /// The namespace must exist and not be terminating for a create in it.
    /// The objects of a core namespaced resource in this request's namespace, from the cache.
    async fn namespace_objects(&self, plural: &str) -> Result<Vec<Value>, StatusError> {
        let Some(ns) = self.ns.as_deref().filter(|_| self.def.namespaced) else { return Ok(Vec::new()) };
        let def = registry::find("", "v1", plural).expect("a core resource");
        let listing = self
            .api
            .cache
            .list(&def.prefix(Some(ns)), None, 0, None, &|_| true)
            .await
            .map_err(|e| store_error(e, def, ""))?;
        Ok(listing.objects.iter().filter_map(|o| o.value().ok()).collect())
    }

    /// ResourceQuota admission: the new object's usage must fit every quota of its namespace
    /// that tracks it; it is then charged to their `status.used` (not for a dry run). The quota
    /// controller corrects the figures from the objects afterwards.
    /// On an update (`old` given) only the increase is charged (a Service turning NodePort, a
    /// PVC growing).
    async fn admit_quota(
        &self,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<(), StatusError> {
        if !self.def.namespaced || self.def.storage.is_empty() {
            return Ok(());
        }
        let quotas = self.namespace_objects("resourcequotas").await?;
        let def = self.def;
        for quota in quotas {
            if !admission::in_scope(&quota, def.group, def.plural, obj) {
                continue;
            }
            let mut usage = admission::usage(def.group, def.plural, obj);
            if let Some(old) = old {
                let before = admission::usage(def.group, def.plural, old);
                usage.retain(|k, q| q.nanos > before.get(k).map_or(0, |b| b.nanos));
                for (k, q) in usage.iter_mut() {
                    q.nanos -= before.get(k).map_or(0, |b| b.nanos);
                }
            }
            let delta = admission::tracked(&quota, &usage);
            if delta.is_empty() {
                continue;
            }
            admission::charge(&quota, &delta).map_err(|m| admission::forbidden(def.group, def.plural, name, &m))?;
            if dry_run {
                continue;
            }
            let qdef = registry::find("", "v1", "resourcequotas").expect("resourcequotas are registered");
            let qname = meta_str(&quota, "name").unwrap_or_default().to_string();
            let ctx = Ctx::new(self.api.clone(), qdef, self.ns.clone(), Query::default(), None)?;
            // Boxed: a quota update goes through guaranteed_update, which admits quota itself.
            let change = |cur: &Value| {
                let used = admission::charge(cur, &delta)
                    .map_err(|m| admission::forbidden(def.group, def.plural, name, &m))?;
                let mut n = cur.clone();
                n["status"]["used"] = used;
                if n.pointer("/status/hard").is_none_or(Value::is_null) {
                    n["status"]["hard"] = n.pointer("/spec/hard").cloned().unwrap_or(json!({}));
                }
                Ok(n)
            };
            let result = Box::pin(ctx.guaranteed_update(&qname, Part::Status, None, &change)).await;
            match result {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn check_namespace(&self, name: &str) -> Result<(), StatusError> {
        let Some(ns) = self.ns.as_deref().filter(|_| self.def.namespaced) else {
            return Ok(());
        };
        let nsdef = registry::find("", "v1", "namespaces").expect("namespaces are registered");
        let key = nsdef.key(None, ns);
        let o = self.api.cache.get(&key).await.map_err(|e| store_error(e, nsdef, ns))?;
        let Some(o) = o else {
            return Err(StatusError::not_found("", "namespaces", ns));
        };
        let v = o.value().map_err(|e| StatusError::internal(e.to_string()))?;
        if v.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            let mut e = StatusError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                if self.def.group.is_empty() { self.def.plural.to_string() } else { format!("{}.{}", self.def.plural, self.def.group) }
            ));
            e.details = Some(
                json!({"name": name, "kind": self.def.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
            );
            return Err(e);
        }
        Ok(())
    }

    /// Prepare a new object for storage: identity, timestamps, status reset, defaults, validation.
    fn prepare_create(
        &self,
        mut v: Value,
        name: &str,
        limit_ranges: &[Value],
        sa_automount: bool,
    ) -> Result<Value, StatusError> {
        let def = self.def;
        {
            let m = meta_mut(&mut v);
            m.insert("name".into(), json!(name));
            match (&self.ns, def.namespaced) {
                (Some(ns), true) => {
                    m.insert("namespace".into(), json!(ns));
                }
                _ => {
                    m.remove("namespace");
                }
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            for f in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(f);
            }
            if def.generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        self.reset_status_on_create(&mut v);
        defaults::apply_defaults(def.group, def.kind, &mut v);
        if def.group.is_empty() && def.kind == "Pod" {
            admit_pod(&mut v, sa_automount);
            admission::default_pod(&mut v, limit_ranges);
        }
        let mut causes: Vec<Cause> = validation::validate_name(def.group, def.kind, name)
            .into_iter()
            .map(|msg| Cause::invalid("metadata.name", &json!(name), msg))
            .collect();
        if causes.is_empty() {
            causes.extend(validation::validate_create(def.group, def.kind, &v));
            causes.extend(self.custom_schema(&mut v));
            if def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition" {
                causes.extend(crd_causes(&v));
            }
        }
        if !causes.is_empty() {
            return Err(self.invalid(name, causes));
        }
        Ok(v)
    }

    /// A new object starts without status, but for kinds whose status their creator may set
    /// (nodes register with theirs); defaulting then fills in the initial status (a pod's phase
    /// and QoS class, a namespace's phase, ...).
    fn reset_status_on_create(&self, v: &mut Value) {
        if !self.def.has_subresource("status") || (self.def.group.is_empty() && self.def.kind == "Node") {
            return;
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
        }
    }

    /// Whether the pod's ServiceAccount lets its token be mounted (`automountServiceAccountToken`
    /// on the ServiceAccount; a missing ServiceAccount does not forbid it).
    async fn sa_automount(&self, pod: &Value) -> bool {
        let ns = self.ns.clone().or_else(|| meta_str(pod, "namespace").map(str::to_string)).unwrap_or_default();
        let sa = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).filter(|s| !s.is_empty());
        let def = registry::find("", "v1", "serviceaccounts").expect("serviceaccounts are registered");
        let key = def.key(Some(&ns), sa.unwrap_or("default"));
        match self.api.cache.get(&key).await {
            Ok(Some(o)) => {
                o.value().ok().and_then(|v| v.get("automountServiceAccountToken").and_then(Value::as_bool))
                    != Some(false)
            }
            _ => true,
        }
    }

    async fn create(&self, req: &Request<Bytes>) -> Result<Response<Body>, StatusError> {
        let v = self.decode_object(req)?;
        let obj = self.create_value(v).await?;
        self.respond_object(StatusCode::CREATED, &obj)
    }

    /// Create an object given in this request's version; returns it as stored.
    pub async fn create_value(&self, v: Value) -> Result<Value, StatusError> {
        self.create_value_as(v, &self.updater("")).await
    }

    /// Create as `who`: an `Update` manager owns every field of the new object; an `Apply`
    /// manager comes with its entry in the object's managedFields already.
    async fn create_value_as(&self, v: Value, who: &Manager) -> Result<Value, StatusError> {
        let def = self.def;
        let dry_run = self.query.dry_run()?;
        if let (Some(url_ns), Some(body_ns)) = (self.ns.as_deref(), meta_str(&v, "namespace")) {
            if def.namespaced && url_ns != body_ns {
                return Err(StatusError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let given_name = meta_str(&v, "name").map(str::to_string);
        let generate = meta_str(&v, "generateName").map(str::to_string);
        if given_name.is_none() && generate.is_none() {
            return Err(self.invalid(
                "",
                vec![Cause::required("metadata.name").with_message("Required value: name or generateName is required")],
            ));
        }
        let display = given_name.clone().or_else(|| generate.clone()).unwrap_or_default();
        self.check_namespace(&display).await?;
        let mut v = v;
        if def.group.is_empty() && def.kind == "Pod" {
            super::eviction::admit_priority(self, &mut v).await?;
        }
        let limit_ranges = if def.group.is_empty() && matches!(def.plural, "pods" | "persistentvolumeclaims") {
            self.namespace_objects("limitranges").await?
        } else {
            Vec::new()
        };
        let attempts = if given_name.is_none() { 5 } else { 1 };
        let sa_automount = if def.group.is_empty() && def.kind == "Pod" { self.sa_automount(&v).await } else { true };
        for attempt in 0..attempts {
            let name = match &given_name {
                Some(n) => n.clone(),
                None => format!("{}{}", generate.clone().unwrap_or_default(), random_suffix()),
            };
            let mut obj = self.prepare_create(v.clone(), &name, &limit_ranges, sa_automount)?;
            let errs = admission::validate_limits(def.plural, &obj, &limit_ranges);
            if !errs.is_empty() {
                return Err(admission::forbidden(def.group, def.plural, &name, &admission::aggregate(&errs)));
            }
            self.admit_quota(&name, &obj, None, dry_run).await?;
            let mut entries =
                if who.operation == Operation::Apply { managed::managed_fields(&obj) } else { Vec::new() };
            self.typed(Part::Main)
                .update(&json!({}), &obj, &mut entries, who, true, &now_rfc3339())
                .map_err(|c| c.to_status())?;
            managed::set_managed_fields(&mut obj, &entries);
            let _guard = if def.group.is_empty() && def.kind == "Service" {
                let g = self.api.alloc_lock.lock().await;
                alloc::allocate_service(&self.api, &mut obj, None)
                    .await
                    .map_err(|causes| self.invalid(&name, causes))?;
                Some(g)
            } else if def.group.is_empty() && def.kind == "Node" {
                let g = self.api.alloc_lock.lock().await;
                alloc::allocate_node_cidr(&self.api, &mut obj, None)
                    .await
                    .map_err(|causes| self.invalid(&name, causes))?;
                Some(g)
            } else {
                None
            };
            if dry_run {
                return Ok(obj);
            }
            let stored = registry::to_storage(def, obj.clone());
            match self.api.backend.create(self.key(&name), stored_bytes(&stored)).await {
                Ok(rev) => return Ok(with_rv(obj, rev)),
                Err(StoreError::AlreadyExists(_)) if given_name.is_none() && attempt + 1 < attempts => continue,
                Err(StoreError::AlreadyExists(_)) if given_name.is_none() => {
                    let mut e = StatusError::already_exists(def.group, def.plural, &name);
                    e.message.push_str(", the server was not able to generate a unique name for the object");
                    return Err(e);
                }
                Err(e) => return Err(store_error(e, def, &name)),
            }
        }
        Err(StatusError::internal("name generation failed"))
    }

    async fn update(&self, name: &str, req: &Request<Bytes>, part: Part) -> Result<Response<Body>, StatusError> {
        let body = self.decode_object(req)?;
        if let Some(n) = meta_str(&body, "name") {
            if n != name {
                return Err(StatusError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let (Some(url_ns), Some(body_ns)) = (self.ns.as_deref(), meta_str(&body, "namespace")) {
            if self.def.namespaced && url_ns != body_ns {
                return Err(StatusError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let precondition = meta_str(&body, "resourceVersion").map(parse_rv).transpose()?;
        let (code, obj) = self.guaranteed_update(name, part, precondition, &|_cur: &Value| Ok(body.clone())).await?;
        self.respond_object(code, &obj)
    }

    async fn patch(&self, name: &str, req: &Request<Bytes>, part: Part) -> Result<Response<Body>, StatusError> {
        let ct = header_str(req, header::CONTENT_TYPE).unwrap_or_default();
        let media = ct.split(';').next().unwrap_or_default().trim().to_string();
        let patch = Patch::parse(&media, req.body())?;
        if let Patch::Apply(config) = &patch {
            return self.apply_patch(name, part, config).await;
        }
        if self.query.get("force").is_some() {
            return Err(StatusError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::forbidden("force", "may not be specified for non-apply patch")],
            ));
        }
        let gvk = (self.def.group, self.def.version, self.def.kind);
        let (code, obj) = self
            .guaranteed_update(name, part, None, &|cur: &Value| {
                let mut target = cur.clone();
                patch.apply(gvk, &mut target)?;
                Ok(target)
            })
            .await?;
        self.respond_object(code, &obj)
    }

    /// Server-side apply (`application/apply-patch+yaml`): merge `config` into the object as its
    /// `fieldManager`, or create the object from it.
    async fn apply_patch(&self, name: &str, part: Part, config: &Value) -> Result<Response<Body>, StatusError> {
        let Some(manager) = self.query.get("fieldManager") else {
            return Err(StatusError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::required("fieldManager").with_message("Required value: is required for apply patch")],
            ));
        };
        let force = self.query.flag("force");
        let mut config = config.clone();
        if !config.is_object() {
            return Err(StatusError::bad_request("the applied configuration must be a JSON object"));
        }
        if let Some(n) = meta_str(&config, "name") {
            if n != name {
                return Err(StatusError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        let who = Manager {
            name: manager.to_string(),
            operation: Operation::Apply,
            api_version: self.def.api_version(),
            subresource: if part == Part::Status { "status".into() } else { String::new() },
        };
        let typed = self.typed(part);
        let merge = |cur: &Value| -> Result<Value, StatusError> {
            let mut entries = managed::managed_fields(cur);
            let mut merged = typed.apply(cur, &config, &mut entries, &who, &now_rfc3339());
            managed::set_managed_fields(&mut merged, &entries);
            Ok(merged)
        };
        for _ in 0..3 {
            match self.guaranteed_update_as(name, part, None, &who, force, &merge).await {
                Ok((code, obj)) => return self.respond_object(code, &obj),
                Err(e) if e.code == 404 && part == Part::Main => {
                    let mut v = merge(&json!({}))?;
                    meta_mut(&mut v).insert("name".into(), json!(name));
                    let v = self.decode_value(v)?;
                    match self.create_value_as(v, &who).await {
                        Ok(obj) => return self.respond_object(StatusCode::CREATED, &obj),
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StatusError::conflict(self.def.group, self.def.plural, name, "too many concurrent updates, please retry"))
    }

    /// Read, change and write back an object, retrying on conflicts unless the change carries a
    /// resourceVersion precondition. `change` gets the current object (this request's version)
    /// and returns the desired one. The request's field manager is recorded as an `Update`.
    pub async fn guaranteed_update(
        &self,
        name: &str,
        part: Part,
        precondition: Option<Revision>,
        change: &(dyn Fn(&Value) -> Result<Value, StatusError> + Sync),
    ) -> Result<(StatusCode, Value), StatusError> {
        let who = self.updater(if part == Part::Status { "status" } else { "" });
        self.guaranteed_update_as(name, part, precondition, &who, false, change).await
    }

    /// [`Ctx::guaranteed_update`] as `who`: an `Apply` manager's `change` sets its entry in the
    /// managedFields; conflicts with other managers fail it unless `force`.
    async fn guaranteed_update_as(
        &self,
        name: &str,
        part: Part,
        precondition: Option<Revision>,
        who: &Manager,
        force: bool,
        change: &(dyn Fn(&Value) -> Result<Value, StatusError> + Sync),
    ) -> Result<(StatusCode, Value), StatusError> {
        let dry_run = self.query.dry_run()?;
        for _ in 0..16 {
            let cur = self.current(name).await?;
            let old = self.versioned(&cur)?;
            let desired = change(&old)?;
            let desired = self.decode_value(desired)?;
            // A resourceVersion in the new object (PUT body or patch result) is a precondition.
            let pre = precondition.or(match meta_str(&desired, "resourceVersion") {
                Some(rv) => Some(parse_rv(rv)?),
                None => None,
            });
            if pre.is_some_and(|p| p != cur.revision) {
                return Err(StatusError::stale(self.def.group, self.def.plural, name));
            }
            let mut new = self.prepare_update(name, &old, desired, part)?;
            let _guard = if self.def.group.is_empty() && self.def.kind == "Service" && part == Part::Main {
                let g = self.api.alloc_lock.lock().await;
                alloc::allocate_service(&self.api, &mut new, Some(&old)).await.map_err(|c| self.invalid(name, c))?;
                Some(g)
            } else if self.def.group.is_empty() && self.def.kind == "Node" && part == Part::Main {
                let g = self.api.alloc_lock.lock().await;
                alloc::allocate_node_cidr(&self.api, &mut new, Some(&old)).await.map_err(|c| self.invalid(name, c))?;
                Some(g)
            } else {
                None
            };
            if part == Part::Main
                && self.def.group.is_empty()
                && matches!(self.def.plural, "services" | "persistentvolumeclaims")
            {
                self.admit_quota(name, &new, Some(&old), dry_run).await?;
            }
            let mut old_cmp = old.clone();
            if let Some(m) = old_cmp.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            self.record_managers(&old, &old_cmp, &mut new, part, who, force)?;
            if stored_bytes(&new) == stored_bytes(&old_cmp) {
                return Ok((StatusCode::OK, old));
            }
            if dry_run {
                return Ok((StatusCode::OK, with_rv(new, cur.revision)));
            }
            // The last finalizer gone from an object being deleted: delete it now.
            let deleting = new.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
            let no_finalizers =
                new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty());
            let grace = new.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
            // A namespace also waits for its spec.finalizers (namespaces/finalize).
            let ns_finalizers =
                new.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
                    && self.def.group.is_empty()
                    && self.def.kind == "Namespace";
            if deleting && no_finalizers && !ns_finalizers && grace == 0 {
                match self.api.backend.delete(self.key(name), Some(cur.revision)).await {
                    Ok(rev) => return Ok((StatusCode::OK, with_rv(new, rev))),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_error(e, self.def, name)),
                }
            }
            let stored = registry::to_storage(self.def, new.clone());
            match self.api.backend.update(self.key(name), stored_bytes(&stored), cur.revision).await {
                Ok(rev) => return Ok((StatusCode::OK, with_rv(new, rev))),
                // Someone wrote in between: read again. A resourceVersion the request itself carries
                // is checked against the fresh object then (a patch result carries the version it
                // was applied to, which is no precondition).
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e, self.def, name)),
            }
        }
        Err(StatusError::conflict(self.def.group, self.def.plural, name, "too many concurrent updates, please retry"))
    }

    /// Phase two of the field manager: conflicts and every manager's set for the write from
    /// `old` to `new`, written into `new`'s managedFields (unchanged if only timestamps would).
    fn record_managers(
        &self,
        old: &Value,
        old_cmp: &Value,
        new: &mut Value,
        part: Part,
        who: &Manager,
        force: bool,
    ) -> Result<(), StatusError> {
        let old_raw = old.pointer("/metadata/managedFields").cloned();
        let given = new.pointer("/metadata/managedFields").cloned();
        let user_reset = given.as_ref().and_then(Value::as_array).is_some_and(|a| !a.is_empty()) && given != old_raw;
        let mut entries = if who.operation == Operation::Apply || user_reset {
            managed::managed_fields(new)
        } else {
            managed::managed_fields(old)
        };
        self.typed(part).update(old, new, &mut entries, who, force, &now_rfc3339()).map_err(|c| c.to_status())?;
        let without = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
            stored_bytes(&v)
        };
        if without(new) == without(old_cmp) && managed::same_ignoring_time(&entries, &managed::managed_fields(old)) {
            match old_raw {
                Some(raw) => meta_mut(new).insert("managedFields".into(), raw),
                None => meta_mut(new).remove("managedFields"),
            };
        } else {
            managed::set_managed_fields(new, &entries);
        }
        Ok(())
    }

    /// Merge an update into the old object: what the client may not change is kept from `old`.
    fn prepare_update(&self, name: &str, old: &Value, mut new: Value, part: Part) -> Result<Value, StatusError> {
        let def = self.def;
        let old_meta = meta(old).cloned().unwrap_or_default();
        if part == Part::Status {
            // Only status changes; metadata as upstream's ResetObjectMetaForStatus.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new = merged;
        } else if def.has_subresource("status") {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        {
            let m = meta_mut(&mut new);
            for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                match old_meta.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            m.insert("name".into(), json!(name));
            match old_meta.get("namespace") {
                Some(ns) => m.insert("namespace".into(), ns.clone()),
                None => m.remove("namespace"),
            };
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        // Defaulting also does create-time work (status reset, generation 1); on update the
        // status and generation settled above stay.
        let status = new.get("status").cloned();
        let generation = new.pointer("/metadata/generation").cloned();
        defaults::apply_defaults(def.group, def.kind, &mut new);
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        match generation {
            Some(g) => meta_mut(&mut new).insert("generation".into(), g),
            None => meta_mut(&mut new).remove("generation"),
        };
        if def.generation && spec_part(&new) != spec_part(old) {
            let g = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        let mut causes = validation::validate_update(def.group, def.kind, &new, old);
        causes.extend(self.custom_schema(&mut new));
        if def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition" {
            causes.extend(crd_causes(&new));
        }
        if !causes.is_empty() {
            return Err(self.invalid(name, causes));
        }
        Ok(new)
    }

    async fn delete(&self, name: &str, body: &Bytes) -> Result<Response<Body>, StatusError> {
        let opts = DeleteOptions::parse(body, &self.query)?;
        let obj = self.delete_one(name, &opts).await?;
        self.respond_object(StatusCode::OK, &obj)
    }

    /// Delete (or start deleting) one object; returns its last state.
    pub async fn delete_one(&self, name: &str, opts: &DeleteOptions) -> Result<Value, StatusError> {
        let def = self.def;
        for _ in 0..16 {
            let cur = self.current(name).await?;
            let obj = self.versioned(&cur)?;
            if let Some(uid) = &opts.uid {
                let actual = meta_str(&obj, "uid").unwrap_or_default();
                if uid != actual {
                    return Err(StatusError::conflict(
                        def.group,
                        def.plural,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                    ));
                }
            }
            if let Some(rv) = &opts.resource_version {
                if *rv != cur.revision.to_string() {
                    return Err(StatusError::conflict(def.group, def.plural, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.revision)));
                }
            }
            let original: Vec<Value> =
                obj.pointer("/metadata/finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
            // The garbage collector's finalizers, per propagationPolicy as upstream: it orphans or
            // deletes the dependents, then removes its finalizer. No policy keeps what is there.
            let mut finalizers = original.clone();
            let set = |f: &mut Vec<Value>, name: &str, on: bool| {
                let has = f.iter().any(|x| x == name);
                if on && !has {
                    f.push(json!(name));
                } else if !on && has {
                    f.retain(|x| x != name);
                }
            };
            match opts.propagation_policy.as_deref() {
                Some("Foreground") => {
                    set(&mut finalizers, "orphan", false);
                    set(&mut finalizers, "foregroundDeletion", true);
                }
                Some("Orphan") => {
                    set(&mut finalizers, "foregroundDeletion", false);
                    set(&mut finalizers, "orphan", true);
                }
                Some("Background") => {
                    set(&mut finalizers, "foregroundDeletion", false);
                    set(&mut finalizers, "orphan", false);
                }
                _ => {}
            }
            let already = obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
            if already && finalizers != original && !finalizers.is_empty() {
                // A second delete with another policy switches the garbage collector's finalizer.
                let mut new = obj.clone();
                let m = meta_mut(&mut new);
                m.insert("finalizers".into(), Value::Array(finalizers.clone()));
                m.remove("resourceVersion");
                if opts.dry_run {
                    return Ok(new);
                }
                let stored = registry::to_storage(def, new.clone());
                match self.api.backend.update(self.key(name), stored_bytes(&stored), cur.revision).await {
                    Ok(rev) => return Ok(with_rv(new, rev)),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_error(e, def, name)),
                }
            }
            let is_ns = def.group.is_empty() && def.kind == "Namespace";
            let ns_finalizers =
                is_ns && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
            let grace = self.pod_grace(&obj, opts);
            if !finalizers.is_empty() || ns_finalizers || grace > 0 {
                if already {
                    let cur_grace =
                        obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
                    if grace == 0 || grace >= cur_grace {
                        if grace == 0 && finalizers.is_empty() && !ns_finalizers && cur_grace > 0 {
                            // Force deletion of a terminating pod.
                        } else {
                            return Ok(obj);
                        }
                    }
                }
                if !(already && grace == 0 && finalizers.is_empty() && !ns_finalizers) {
                    let mut new = obj.clone();
                    let when = Utc::now() + chrono::Duration::seconds(grace);
                    {
                        let m = meta_mut(&mut new);
                        m.insert("deletionTimestamp".into(), json!(when.to_rfc3339_opts(SecondsFormat::Secs, true)));
                        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                        if !finalizers.is_empty() {
                            m.insert("finalizers".into(), Value::Array(finalizers.clone()));
                        }
                        m.remove("resourceVersion");
                    }
                    if is_ns {
                        new["status"]["phase"] = json!("Terminating");
                    }
                    if opts.dry_run {
                        return Ok(new);
                    }
                    let stored = registry::to_storage(def, new.clone());
                    match self.api.backend.update(self.key(name), stored_bytes(&stored), cur.revision).await {
                        Ok(rev) => return Ok(with_rv(new, rev)),
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(store_error(e, def, name)),
                    }
                }
            }
            if opts.dry_run {
                return Ok(obj);
            }
            match self.api.backend.delete(self.key(name), Some(cur.revision)).await {
                Ok(_) => return Ok(obj),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e, def, name)),
            }
        }
        Err(StatusError::conflict(def.group, def.plural, name, "too many concurrent updates, please retry"))
    }

    /// The grace period a pod deletion waits for its node (0 = delete now).
    fn pod_grace(&self, obj: &Value, opts: &DeleteOptions) -> i64 {
        if !(self.def.group.is_empty() && self.def.kind == "Pod") {
            return 0;
        }
        let scheduled = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        if !scheduled || phase == "Succeeded" || phase == "Failed" {
            return 0;
        }
        let g = opts
            .grace_period_seconds
            .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30);
        // Upstream: a negative grace period means 1 second.
        if g < 0 {
            1
        } else {
            g
        }
    }

    async fn delete_collection(&self, body: &Bytes) -> Result<Response<Body>, StatusError> {
        let opts = DeleteOptions::parse(body, &self.query)?;
        let (labels, fields) = self.selectors()?;
        let filter = self.filter(labels, fields);
        let prefix = self.def.prefix(self.ns.as_deref());
        let listing =
            self.api.cache.list(&prefix, None, 0, None, &filter).await.map_err(|e| store_error(e, self.def, ""))?;
        let mut items = Vec::new();
        for o in &listing.objects {
            let Some((_, _, name)) = registry::parse_key(&o.key) else {
                continue;
            };
            let ns = registry::parse_key(&o.key).and_then(|(_, ns, _)| ns.map(str::to_string));
            let ctx = Ctx::new(self.api.clone(), self.def, ns, self.query.clone(), None)?;
            match ctx.delete_one(name, &opts).await {
                Ok(v) => items.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let rev = self.api.backend.current_revision();
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", self.def.kind), "apiVersion": self.def.api_version(), "metadata": {"resourceVersion": rev.to_string()}, "items": items}),
        ))
    }

    /// `scale`: autoscaling/v1 Scale over spec.replicas.
    async fn scale(&self, name: &str, verb: Verb, req: &Request<Bytes>) -> Result<Response<Body>, StatusError> {
        let plain_map_selector = self.def.kind == "ReplicationController";
        // Custom resources say where their replicas and selector are (`.spec.replicas` form).
        let (spec_ptr, status_ptr, selector_ptr) = match self.def.custom.and_then(|c| c.scale_paths.as_ref()) {
            Some((spec, status, selector)) => (
                spec.replace('.', "/"),
                status.replace('.', "/"),
                selector.as_ref().map(|p| p.replace('.', "/")).unwrap_or_else(|| "/-".into()),
            ),
            None => ("/spec/replicas".into(), "/status/replicas".into(), "/spec/selector".into()),
        };
        let custom_selector = self.def.custom.is_some();
        let scale_of = |obj: &Value| -> Value {
            let selector = obj
                .pointer(&selector_ptr)
                .map(|s| {
                    if custom_selector {
                        // A custom resource's labelSelectorPath names a string selector.
                        s.as_str().unwrap_or_default().to_string()
                    } else if !plain_map_selector {
                        LabelSelector::from_label_selector(s).map(|l| l.to_string()).unwrap_or_default()
                    } else {
                        // ReplicationControllers have a plain map.
                        s.as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default()
                    }
                })
                .unwrap_or_default();
            let m = meta(obj).cloned().unwrap_or_default();
            json!({
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
                    "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
                },
                "spec": { "replicas": obj.pointer(&spec_ptr).cloned().unwrap_or(json!(1)) },
                "status": {
                    "replicas": obj.pointer(&status_ptr).cloned().unwrap_or(json!(0)),
                    "selector": selector,
                },
            })
        };
        let replicas_from = |scale: &Value| -> Result<i64, StatusError> {
            let r = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
            if r < 0 {
                return Err(StatusError::invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    vec![Cause::invalid("spec.replicas", &json!(r), "must be greater than or equal to 0")],
                ));
            }
            Ok(r)
        };
        let obj = match verb {
            Verb::Get => {
                let cur = self.current(name).await?;
                self.versioned(&cur)?
            }
            Verb::Update => {
                let ct = header_str(req, header::CONTENT_TYPE);
                let body = parse_body(ct.as_deref(), req.body())?;
                let pre = meta_str(&body, "resourceVersion").map(parse_rv).transpose()?;
                let replicas = replicas_from(&body)?;
                self.guaranteed_update_as(name, Part::Main, pre, &self.updater("scale"), false, &|cur: &Value| {
                    let mut n = cur.clone();
                    set_pointer(&mut n, &spec_ptr, json!(replicas));
                    Ok(n)
                })
                .await?
                .1
            }
            _ => {
                let ct = header_str(req, header::CONTENT_TYPE).unwrap_or_default();
                let media = ct.split(';').next().unwrap_or_default().trim().to_string();
                let patch = Patch::parse(&media, req.body())?;
                self.guaranteed_update_as(name, Part::Main, None, &self.updater("scale"), false, &|cur: &Value| {
                    let mut scale = scale_of(cur);
                    patch.apply(("autoscaling", "v1", "Scale"), &mut scale)?;
                    let replicas = replicas_from(&scale)?;
                    let mut n = cur.clone();
                    set_pointer(&mut n, &spec_ptr, json!(replicas));
                    if let Some(rv) = scale.pointer("/metadata/resourceVersion").filter(|v| !v.is_null()) {
                        n["metadata"]["resourceVersion"] = rv.clone();
                    }
                    Ok(n)
                })
                .await?
                .1
            }
        };
        Ok(json_response(StatusCode::OK, &scale_of(&obj)))
    }

    /// `pods/binding`: assign a pod to a node.
    async fn bind(&self, name: &str, body: &Bytes) -> Result<Response<Body>, StatusError> {
        let binding = parse_body(Some("application/json"), body)?;
        let node =
            binding.pointer("/target/name").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let Some(node) = node else {
            return Err(StatusError::invalid("", "Binding", name, vec![Cause::required("target.name")]));
        };
        let node2 = node.clone();
        self.guaranteed_update(name, Part::Main, None, &move |cur: &Value| {
            if let Some(existing) = cur.pointer("/spec/nodeName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                return Err(StatusError::conflict(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            if cur.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
                return Err(StatusError::conflict(
                    "",
                    "pods",
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            let mut n = cur.clone();
            n["spec"]["nodeName"] = json!(node2);
            Ok(n)
        })
        .await?;
        // The PodScheduled condition goes to status.
        let now = now_rfc3339();
        self.guaranteed_update(name, Part::Status, None, &|cur: &Value| {
            let mut n = cur.clone();
            let mut conds: Vec<Value> =
                n.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            conds.retain(|c| c["type"] != "PodScheduled");
            conds.push(
                json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}),
            );
            n["status"]["conditions"] = Value::Array(conds);
            Ok(n)
        })
        .await?;
        Ok(json_response(StatusCode::CREATED, &super::super::api::status::success("", "pods", name, "")))
    }

    /// `namespaces/finalize`: replace spec.finalizers; a terminating namespace with none left goes.
    async fn finalize_namespace(&self, name: &str, body: &Bytes) -> Result<Response<Body>, StatusError> {
        let v = parse_body(Some("application/json"), body)?;
        let finalizers = v.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
        let cur = self.current(name).await?;
        let mut new = self.versioned(&cur)?;
        new["spec"]["finalizers"] = finalizers;
        let done = new.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
            && new.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty())
            && new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty());
        if self.query.dry_run()? {
            return Ok(json_response(StatusCode::OK, &new));
        }
        if done {
            self.api
                .backend
                .delete(self.key(name), Some(cur.revision))
                .await
                .map_err(|e| store_error(e, self.def, name))?;
            return Ok(json_response(StatusCode::OK, &new));
        }
        meta_mut(&mut new).remove("resourceVersion");
        let rev = self
            .api
            .backend
            .update(self.key(name), stored_bytes(&new), cur.revision)
            .await
            .map_err(|e| store_error(e, self.def, name))?;
        Ok(json_response(StatusCode::OK, &with_rv(new, rev)))
    }
}

/// Where the ServiceAccount admission mounts the API access volume.
const SA_TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What pod admission adds: the default service account, the not-ready/unreachable tolerations
/// and, unless `automountServiceAccountToken` is false on the pod (or, when the pod does not say,
/// on its ServiceAccount: `sa_automount`), upstream's `kube-api-access-<random>` projected volume
/// (a bound token, the cluster CA, the namespace) mounted in every container. Mirror pods get no
/// token.
fn admit_pod(v: &mut Value, sa_automount: bool) {
    let mirror = v.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some();
    let automount = v.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool).unwrap_or(sa_automount);
    if automount && !mirror {
        add_api_access_volume(&mut v["spec"]);
    }
    let spec = &mut v["spec"];
    if spec.get("serviceAccountName").and_then(Value::as_str).is_none_or(str::is_empty) {
        spec["serviceAccountName"] = json!("default");
    }
    if spec.get("serviceAccount").and_then(Value::as_str).is_none_or(str::is_empty) {
        let sa = spec["serviceAccountName"].clone();
        spec["serviceAccount"] = sa;
    }
    let mut tolerations: Vec<Value> = spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let present = tolerations.iter().any(|t| {
            (t["key"] == key || (t["operator"] == "Exists" && t.get("key").is_none_or(|k| k.is_null() || k == "")))
                && (t.get("effect").is_none_or(|e| e.is_null() || e == "" || e == "NoExecute"))
        });
        if !present {
            tolerations
                .push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(tolerations);
    if spec.get("priority").is_none() {
        spec["priority"] = json!(0);
    }
}

/// Upstream's ServiceAccount admission volume: skipped when one is there already (a pod that is
/// re-admitted, or one that mounts something at the token path in every container).
fn add_api_access_volume(spec: &mut Value) {
    let volumes = spec.get("volumes").and_then(Value::as_array).cloned().unwrap_or_default();
    if volumes.iter().any(|v| v["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-"))) {
        return;
    }
    let mounted = |c: &Value| {
        c.get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|ms| ms.iter().any(|m| m["mountPath"].as_str() == Some(SA_TOKEN_MOUNT_PATH)))
    };
    let lists = ["initContainers", "containers"];
    let needs =
        lists.iter().any(|l| spec.get(*l).and_then(Value::as_array).is_some_and(|cs| cs.iter().any(|c| !mounted(c))));
    if !needs {
        return;
    }
    let name = format!("kube-api-access-{}", random_suffix());
    let mut volumes = volumes;
    volumes.push(json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }));
    spec["volumes"] = Value::Array(volumes);
    for l in lists {
        let Some(cs) = spec.get_mut(l).and_then(Value::as_array_mut) else { continue };
        for c in cs {
            if mounted(c) {
                continue;
            }
            let mut ms = c.get("volumeMounts").and_then(Value::as_array).cloned().unwrap_or_default();
            ms.push(json!({"name": name, "readOnly": true, "mountPath": SA_TOKEN_MOUNT_PATH}));
            c["volumeMounts"] = Value::Array(ms);
        }
    }
}

/// What upstream's CRD validation adds to the generic checks: the name is `<plural>.<group>`, and
/// every version's schema is structural.
fn crd_causes(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default();
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
    if name != format!("{plural}.{group}") {
        causes.push(Cause::invalid("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.iter().filter(|v| v["storage"] == json!(true)).count() != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &json!(versions.len()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            causes.extend(structural::validate_schema(schema, &format!("spec.versions[{i}].schema.openAPIV3Schema")));
        }
    }
    causes
}

/// Set the value at a JSON pointer, creating objects on the way.
fn set_pointer(v: &mut Value, ptr: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i + 1 == parts.len() {
            cur[*p] = value;
            return;
        }
        cur = &mut cur[*p];
    }
}

/// A simple JSONPath (`.spec.a.b`, `.status.items[0].name`) as CRD printer columns use them.
fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.trim_start_matches('.').split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Table columns of a custom resource: NAME, then its printer columns (or AGE).
fn custom_columns(ci: &registry::CustomInfo) -> Value {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}),
    ];
    if ci.printer_columns.is_empty() {
        cols.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    }
    for pc in &ci.printer_columns {
        cols.push(json!({
            "name": pc["name"], "type": pc["type"], "format": pc.get("format").cloned().unwrap_or(json!("")),
            "description": pc.get("description").cloned().unwrap_or(json!("")), "priority": pc.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    Value::Array(cols)
}

fn custom_cells(ci: &registry::CustomInfo, obj: &Value, now: chrono::DateTime<Utc>) -> Vec<Value> {
    let age = |v: Option<&Value>| -> Value {
        match v.and_then(Value::as_str).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            Some(t) => json!(table::human_duration(now - t.with_timezone(&Utc))),
            None => json!("<unknown>"),
        }
    };
    let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
    if ci.printer_columns.is_empty() {
        cells.push(age(obj.pointer("/metadata/creationTimestamp")));
    }
    for pc in &ci.printer_columns {
        let v = json_path(obj, pc["jsonPath"].as_str().unwrap_or_default());
        cells.push(match pc["type"].as_str() {
            Some("date") => age(v),
            Some("string") => {
                v.map(|x| if let Value::String(s) = x { json!(s) } else { json!(x.to_string()) }).unwrap_or(Value::Null)
            }
            _ => v.cloned().unwrap_or(Value::Null),
        });
    }
    cells
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

pub fn parse_rv(rv: &str) -> Result<Revision, StatusError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| StatusError::bad_request(format!("invalid resource version {rv:?}")))
}

fn encode_continue(rev: Revision, start_after: &str) -> String {
    let token = json!({ "v": "meta.k8s.io/v1", "rv": rev, "start": start_after });
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> Result<(Revision, String), StatusError> {
    let bad = || {
        StatusError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let rev = v["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    if start.contains("..") {
        return Err(bad());
    }
    Ok((rev, format!("{prefix}{start}")))
}

/// Delete options from the body (`DeleteOptions`) and query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn parse(body: &Bytes, query: &Query) -> Result<DeleteOptions, StatusError> {
        let mut o = DeleteOptions::default();
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| StatusError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
            o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.propagation_policy = v.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
            if o.propagation_policy.is_none() {
                if let Some(orphan) = v.get("orphanDependents").and_then(Value::as_bool) {
                    o.propagation_policy = Some(if orphan { "Orphan" } else { "Background" }.into());
                }
            }
            o.uid = v.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
            o.resource_version =
                v.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
            if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
                for x in d {
                    match x.as_str() {
                        Some("All") => o.dry_run = true,
                        other => {
                            return Err(StatusError::bad_request(format!(
                                "Unsupported value: {other:?}: supported values: \"All\""
                            )))
                        }
                    }
                }
            }
        }
        if let Some(g) = query.int("gracePeriodSeconds")? {
            o.grace_period_seconds = Some(g);
        }
        if let Some(p) = query.get("propagationPolicy") {
            o.propagation_policy = Some(p.to_string());
        }
        if query.dry_run()? {
            o.dry_run = true;
        }
        if let Some(p) = &o.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(StatusError::invalid(
                    "",
                    "DeleteOptions",
                    "",
                    vec![Cause::not_supported("propagationPolicy", &json!(p), &["Foreground", "Background", "Orphan"])],
                ));
            }
        }
        Ok(o)
    }
}

/// A parsed PATCH body.
pub enum Patch {
    Merge(Value),
    Json(json_patch::Patch),
    Strategic(Value),
    /// Server-side apply: the applied configuration (YAML or JSON).
    Apply(Value),
}

/// The patch types a PATCH body may have (upstream's order).
const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

impl Patch {
    pub fn parse(media: &str, body: &[u8]) -> Result<Patch, StatusError> {
        match media {
            "application/merge-patch+json" => serde_json::from_slice(body)
                .map(Patch::Merge)
                .map_err(|e| StatusError::bad_request(format!("error decoding patch: {e}"))),
            "application/json-patch+json" => {
                // Not JSON: 400. JSON but not a valid list of operations: 422, as upstream.
                let v: Value =
                    serde_json::from_slice(body).map_err(|e| StatusError::bad_request(format!("error decoding patch: {e}")))?;
                serde_json::from_value(v).map(Patch::Json).map_err(|e| {
                    StatusError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"))
                })
            }
            "application/strategic-merge-patch+json" => serde_json::from_slice(body)
                .map(Patch::Strategic)
                .map_err(|e| StatusError::bad_request(format!("error decoding patch: {e}"))),
            "application/apply-patch+yaml" => serde_json::from_slice(body)
                .or_else(|_| serde_yaml_ng::from_slice(body))
                .map(Patch::Apply)
                .map_err(|e| StatusError::bad_request(format!("error decoding YAML: {e}"))),
            _ => Err(StatusError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: {PATCH_TYPES}; got {media:?}"),
            )),
        }
    }

    /// Apply to `target`, an object of `gvk` (group, version, kind): strategic merge patches need
    /// the kind's schema.
    pub fn apply(&self, gvk: (&str, &str, &str), target: &mut Value) -> Result<(), StatusError> {
        match self {
            Patch::Merge(p) => {
                if !p.is_object() {
                    return Err(StatusError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(target, p);
                Ok(())
            }
            Patch::Json(p) => json_patch::patch(target, p).map_err(|e| {
                StatusError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            }),
            Patch::Apply(_) => Err(StatusError::new(
                415,
                "UnsupportedMediaType",
                "apply patches are not supported on this subresource",
            )),
            Patch::Strategic(p) => {
                let (group, version, kind) = gvk;
                if registry::find_kind(group, version, kind).is_some_and(|d| d.custom.is_some()) {
                    return Err(StatusError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                *target = smp::apply(group, version, kind, target, p).map_err(|e| match e.code() {
                    // Custom resources: upstream does not offer SMP for them.
                    415 => StatusError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json; got \"application/strategic-merge-patch+json\"",
                    ),
                    400 => StatusError::bad_request(e.to_string()),
                    // Upstream's generic 422 (its message drops the error; ours keeps it, as for
                    // JSON patches).
                    422 => StatusError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: {e}"),
                    ),
                    // Other SMP errors reach upstream's handler as plain errors: 500, no reason.
                    code => StatusError::new(code, "", e.to_string()),
                })?;
                Ok(())
            }
        }
    }
}

trait CauseExt {
    fn with_message(self, m: &str) -> Self;
}

impl CauseExt for Cause {
    fn with_message(mut self, m: &str) -> Self {
        self.message = m.to_string();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "default/x");
        assert_eq!(decode_continue(&t, "/registry/pods/").unwrap(), (42, "/registry/pods/default/x".to_string()));
        assert_eq!(decode_continue("!!", "/p/").unwrap_err().code, 400);
    }

    #[test]
    fn admission_adds_tolerations_once() {
        let mut p = json!({"spec": {"containers": []}});
        admit_pod(&mut p, true);
        admit_pod(&mut p, true);
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(p["spec"]["serviceAccountName"], "default");
    }

    #[test]
    fn admission_mounts_the_api_access_volume_unless_told_not_to() {
        let mut p = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}],
                                    "initContainers": [{"name": "i"}]}});
        admit_pod(&mut p, true);
        admit_pod(&mut p, true);
        let vols = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let name = vols[0]["name"].as_str().unwrap();
        assert!(name.starts_with("kube-api-access-"), "{name}");
        assert_eq!(vols[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
        for c in ["/spec/containers/0", "/spec/containers/1", "/spec/initContainers/0"] {
            let ms = p.pointer(c).unwrap()["volumeMounts"].as_array().unwrap();
            assert_eq!(ms.iter().filter(|m| m["mountPath"] == SA_TOKEN_MOUNT_PATH).count(), 1, "{c}");
            assert!(ms.iter().any(|m| m["name"] == name && m["readOnly"] == true));
        }
        let mut off = json!({"spec": {"automountServiceAccountToken": false, "containers": [{"name": "a"}]}});
        admit_pod(&mut off, true);
        assert!(off["spec"].get("volumes").is_none());
        let mut by_sa = json!({"spec": {"containers": [{"name": "a"}]}});
        admit_pod(&mut by_sa, false);
        assert!(by_sa["spec"].get("volumes").is_none());
        let mut pod_wins = json!({"spec": {"automountServiceAccountToken": true, "containers": [{"name": "a"}]}});
        admit_pod(&mut pod_wins, false);
        assert_eq!(pod_wins["spec"]["volumes"].as_array().unwrap().len(), 1);
        let mut mirror = json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {"containers": [{"name": "a"}]}});
        admit_pod(&mut mirror, true);
        assert!(mirror["spec"].get("volumes").is_none());
    }
}
