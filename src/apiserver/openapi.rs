//! OpenAPI documents, as upstream serves them: `/openapi/v3` (an index of group-versions),
//! `/openapi/v3/api/v1` and `/openapi/v3/apis/<group>/<version>` (OpenAPI 3.0 per group-version) and
//! `/openapi/v2` (the whole Swagger 2.0 document, as JSON or as gnostic protobuf).
//!
//! kubectl needs them for `apply`, `create -f`, `edit` and `explain`: 1.27/1.28 read the v2
//! protobuf, later versions the v3 documents. Every document is derived from the shipped upstream
//! schema ([`crate::api::schema`]) and the registry of served resources. Documents are built on first
//! request, then kept gzip-compressed (an idle server holds none of them).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::{bytes_response, full_body, Body, KUBERNETES_VERSION};
use crate::api::registry::{self, ResourceDef, Subresource};
use crate::api::schema::{self, Schema};
use crate::api::status::StatusError;

/// What kubectl 1.27/1.28 put in `Accept` for the v2 protobuf document.
pub const V2_PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The `Content-Type` of the v2 protobuf document (the dot form: Go's MIME parser rejects the `@`).
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const STATUS_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const WATCH_EVENT_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const INT_OR_STRING_DEF: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY_DEF: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// The media types a PATCH accepts.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
/// What a custom resource's PATCH accepts: no strategic merge patch (upstream, and kubectl keys
/// its choice of patch type on this list).
pub const CUSTOM_PATCH_CONTENT_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];
const OBJECT_TYPES: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
const LIST_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const WATCH_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const TEXT_TYPES: &[&str] =
    &["text/plain", "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
const ANY_TYPES: &[&str] = &["*/*"];

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &["dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const LOG_PARAMS: &[&str] =
    &["container", "follow", "limitBytes", "previous", "sinceSeconds", "tailLines", "timestamps"];

// ---------------------------------------------------------------------------------------------
// The document model: operations described once, rendered as Swagger 2.0 or OpenAPI 3.0.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V2,
    V3,
}

impl Flavor {
    fn reference(self, name: &str) -> String {
        match self {
            Flavor::V2 => format!("#/definitions/{name}"),
            Flavor::V3 => format!("#/components/schemas/{name}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: String,
    required: bool,
}

/// The schema of a request or response body.
#[derive(Debug, Clone)]
enum Payload {
    Def(String),
    Text,
}

#[derive(Debug, Clone)]
struct Op {
    method: &'static str,
    id: String,
    description: String,
    action: &'static str,
    tag: String,
    gvk: (String, String, String),
    params: Vec<Param>,
    body: Option<(Payload, &'static [&'static str], bool)>,
    responses: &'static [(&'static str, &'static str)],
    response: Payload,
    produces: &'static [&'static str],
}

#[derive(Debug, Clone)]
struct PathItem {
    path: String,
    params: Vec<Param>,
    ops: Vec<Op>,
}

fn query_param(name: &'static str) -> Param {
    let (ty, description) = match name {
        "allowWatchBookmarks" => ("boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored."),
        "continue" => ("string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize."),
        "dryRun" => ("string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        "fieldManager" => ("string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."),
        "fieldSelector" => ("string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "fieldValidation" => ("string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
        "force" => ("boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."),
        "gracePeriodSeconds" => ("integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately."),
        "labelSelector" => ("string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => ("integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results."),
        "orphanDependents" => ("boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both."),
        "propagationPolicy" => ("string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
        "resourceVersion" => ("string", "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset"),
        "resourceVersionMatch" => ("string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set. Defaults to unset"),
        "sendInitialEvents" => ("boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection."),
        "timeoutSeconds" => ("integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
        "watch" => ("boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
        "pretty" => ("string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
        "container" => ("string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
        "follow" => ("boolean", "Follow the log stream of the pod. Defaults to false."),
        "limitBytes" => ("integer", "If set, the number of bytes to read from the server before terminating the log output."),
        "previous" => ("boolean", "Return previous terminated container logs. Defaults to false."),
        "sinceSeconds" => ("integer", "A relative time in seconds before the current time from which to show logs."),
        "tailLines" => ("integer", "If set, the number of lines from the end of the logs to show."),
        "timestamps" => ("boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false."),
        _ => ("string", ""),
    };
    Param { name, location: "query", ty, description: description.to_string(), required: false }
}

fn query_params(names: &[&'static str]) -> Vec<Param> {
    names.iter().map(|n| query_param(n)).collect()
}

fn namespace_param() -> Param {
    Param {
        name: "namespace",
        location: "path",
        ty: "string",
        description: "object name and auth scope, such as for teams and projects".into(),
        required: true,
    }
}

fn name_param(kind: &str) -> Param {
    Param { name: "name", location: "path", ty: "string", description: format!("name of the {kind}"), required: true }
}

/// The group as operation ids spell it: `apps` → `Apps`, `` → `Core`,
/// `rbac.authorization.k8s.io` → `RbacAuthorization`.
fn group_id(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group.trim_end_matches(".k8s.io").split('.').map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The key of a group-version in the v3 index: `api/v1`, `apis/apps/v1`.
pub fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

const R_LIST: &[(&str, &str)] = &[("200", "OK"), ("401", "Unauthorized")];
const R_CREATE: &[(&str, &str)] = &[("200", "OK"), ("201", "Created"), ("202", "Accepted"), ("401", "Unauthorized")];
const R_UPDATE: &[(&str, &str)] = &[("200", "OK"), ("201", "Created"), ("401", "Unauthorized")];
const R_DELETE: &[(&str, &str)] = &[("200", "OK"), ("202", "Accepted"), ("401", "Unauthorized")];

/// Every path of one resource (and its subresources) under `prefix` (`/apis/apps/v1`).
fn resource_paths(s: &Schema, d: &ResourceDef, prefix: &str, out: &mut Vec<PathItem>) {
    let Some(def) = s.name_for(d.group, d.version, d.kind) else {
        tracing::debug!(message = "no schema for a served kind", kind = d.kind);
        return;
    };
    let list_def = s.name_for(d.group, d.version, &format!("{}List", d.kind));
    let g = group_id(d.group);
    let v = capitalize(d.version);
    let tag = format!("{}_{}", lower_first(&g), d.version);
    let kind = d.kind;
    let scope = if d.namespaced { "Namespaced" } else { "" };
    let gvk = (d.group.to_string(), d.version.to_string(), kind.to_string());
    let has = |verb: &str| d.verbs.contains(&verb);
    let patch_types = if d.custom.is_some() { CUSTOM_PATCH_CONTENT_TYPES } else { PATCH_CONTENT_TYPES };
    let op = |method, id: String, description: String, action, params, body, responses, response, produces| Op {
        method,
        id,
        description,
        action,
        tag: tag.clone(),
        gvk: gvk.clone(),
        params,
        body,
        responses,
        response,
        produces,
    };
    let obj = || Payload::Def(def.to_string());
    let status = || Payload::Def(STATUS_DEF.to_string());
    let delete_body = || Some((Payload::Def(DELETE_OPTIONS_DEF.to_string()), ANY_TYPES, false));
    let (coll, item, watch_coll, watch_item) = if d.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", d.plural),
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", d.plural),
            format!("{prefix}/watch/namespaces/{{namespace}}/{}", d.plural),
            format!("{prefix}/watch/namespaces/{{namespace}}/{}/{{name}}", d.plural),
        )
    } else {
        (
            format!("{prefix}/{}", d.plural),
            format!("{prefix}/{}/{{name}}", d.plural),
            format!("{prefix}/watch/{}", d.plural),
            format!("{prefix}/watch/{}/{{name}}", d.plural),
        )
    };
    let scope_params = |named: bool| {
        let mut p = Vec::new();
        if named {
            p.push(name_param(kind));
        }
        if d.namespaced {
            p.push(namespace_param());
        }
        p.push(query_param("pretty"));
        p
    };

    // The collection.
    let mut ops = Vec::new();
    if let (true, Some(list_def)) = (has("list"), list_def) {
        ops.push(op(
            "get",
            format!("list{g}{v}{scope}{kind}"),
            format!("list or watch objects of kind {kind}"),
            "list",
            query_params(LIST_PARAMS),
            None,
            R_LIST,
            Payload::Def(list_def.to_string()),
            LIST_TYPES,
        ));
    }
    if has("create") {
        ops.push(op(
            "post",
            format!("create{g}{v}{scope}{kind}"),
            format!("create a {kind}"),
            "post",
            query_params(WRITE_PARAMS),
            Some((obj(), ANY_TYPES, true)),
            R_CREATE,
            obj(),
            OBJECT_TYPES,
        ));
    }
    if has("deletecollection") {
        ops.push(op(
            "delete",
            format!("delete{g}{v}Collection{scope}{kind}"),
            format!("delete collection of {kind}"),
            "deletecollection",
            query_params(DELETE_COLLECTION_PARAMS),
            delete_body(),
            R_LIST,
            status(),
            OBJECT_TYPES,
        ));
    }
    if !ops.is_empty() {
        out.push(PathItem { path: coll, params: scope_params(false), ops });
    }

    // One object.
    let mut ops = Vec::new();
    if has("get") {
        ops.push(op(
            "get",
            format!("read{g}{v}{scope}{kind}"),
            format!("read the specified {kind}"),
            "get",
            Vec::new(),
            None,
            R_LIST,
            obj(),
            OBJECT_TYPES,
        ));
    }
    if has("update") {
        ops.push(op(
            "put",
            format!("replace{g}{v}{scope}{kind}"),
            format!("replace the specified {kind}"),
            "put",
            query_params(WRITE_PARAMS),
            Some((obj(), ANY_TYPES, true)),
            R_UPDATE,
            obj(),
            OBJECT_TYPES,
        ));
    }
    if has("patch") {
        ops.push(op(
            "patch",
            format!("patch{g}{v}{scope}{kind}"),
            format!("partially update the specified {kind}"),
            "patch",
            query_params(PATCH_PARAMS),
            Some((Payload::Def(PATCH_DEF.to_string()), patch_types, true)),
            R_UPDATE,
            obj(),
            OBJECT_TYPES,
        ));
    }
    if has("delete") {
        ops.push(op(
            "delete",
            format!("delete{g}{v}{scope}{kind}"),
            format!("delete a {kind}"),
            "delete",
            query_params(DELETE_PARAMS),
            delete_body(),
            R_DELETE,
            status(),
            OBJECT_TYPES,
        ));
    }
    if !ops.is_empty() {
        out.push(PathItem { path: item, params: scope_params(true), ops });
    }

    // Across namespaces.
    if d.namespaced {
        if let (true, Some(list_def)) = (has("list"), list_def) {
            out.push(PathItem {
                path: format!("{prefix}/{}", d.plural),
                params: vec![query_param("pretty")],
                ops: vec![op(
                    "get",
                    format!("list{g}{v}{kind}ForAllNamespaces"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                    query_params(LIST_PARAMS),
                    None,
                    R_LIST,
                    Payload::Def(list_def.to_string()),
                    LIST_TYPES,
                )],
            });
        }
    }

    // Watches (deprecated upstream, still served and documented).
    if has("watch") {
        let watch = |path: String, id: String, description: String, action, named: bool| PathItem {
            path,
            params: [query_params(LIST_PARAMS), scope_params(named)].concat(),
            ops: vec![op(
                "get",
                id,
                description,
                action,
                Vec::new(),
                None,
                R_LIST,
                Payload::Def(WATCH_EVENT_DEF.to_string()),
                WATCH_TYPES,
            )],
        };
        out.push(watch(
            watch_coll,
            format!("watch{g}{v}{scope}{kind}List"),
            format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
            "watchlist",
            false,
        ));
        out.push(watch(
            watch_item,
            format!("watch{g}{v}{scope}{kind}"),
            format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
            "watch",
            true,
        ));
        if d.namespaced {
            out.push(PathItem {
                path: format!("{prefix}/watch/{}", d.plural),
                params: [query_params(LIST_PARAMS), vec![query_param("pretty")]].concat(),
                ops: vec![op(
                    "get",
                    format!("watch{g}{v}{kind}ListForAllNamespaces"),
                    format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                    "watchlist",
                    Vec::new(),
                    None,
                    R_LIST,
                    Payload::Def(WATCH_EVENT_DEF.to_string()),
                    WATCH_TYPES,
                )],
            });
        }
    }

    for sub in d.subresources {
        if let Some(item) = subresource_path(s, d, sub, def, prefix, &g, &v, &tag, scope_params(true)) {
            out.push(item);
        }
    }
}

/// The path of one subresource (`…/{name}/status`).
#[allow(clippy::too_many_arguments)]
fn subresource_path(
    s: &Schema,
    d: &ResourceDef,
    sub: &Subresource,
    parent_def: &str,
    prefix: &str,
    g: &str,
    v: &str,
    tag: &str,
    params: Vec<Param>,
) -> Option<PathItem> {
    let (rg, rv, rk) = sub.response;
    let (resp_gvk, resp_def) = if rk.is_empty() {
        ((d.group, d.version, d.kind), parent_def.to_string())
    } else {
        ((rg, rv, rk), s.name_for(rg, rv, rk)?.to_string())
    };
    let connect = rk.ends_with("Options");
    let path = if d.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}/{}", d.plural, sub.name)
    } else {
        format!("{prefix}/{}/{{name}}/{}", d.plural, sub.name)
    };
    let scope = if d.namespaced { "Namespaced" } else { "" };
    let kind = d.kind;
    let sub_id = capitalize(sub.name);
    let sub_name = sub.name;
    let gvk = (resp_gvk.0.to_string(), resp_gvk.1.to_string(), resp_gvk.2.to_string());
    let mut ops = Vec::new();
    for verb in sub.verbs {
        let method = match *verb {
            "get" => "get",
            "create" => "post",
            "update" => "put",
            "patch" => "patch",
            "delete" => "delete",
            _ => continue,
        };
        let mut op = Op {
            method,
            id: String::new(),
            description: String::new(),
            action: "",
            tag: tag.to_string(),
            gvk: gvk.clone(),
            params: Vec::new(),
            body: None,
            responses: R_LIST,
            response: Payload::Def(resp_def.clone()),
            produces: OBJECT_TYPES,
        };
        if connect {
            op.id = format!("connect{g}{v}{}{scope}{kind}{sub_id}", capitalize(method));
            op.description = format!("connect {} requests to {sub_name} of {kind}", method.to_uppercase());
            op.action = "connect";
            op.response = Payload::Text;
            op.produces = ANY_TYPES;
        } else if sub_name == "log" {
            op.id = format!("read{g}{v}{scope}{kind}Log");
            op.description = format!("read log of the specified {kind}");
            op.action = "get";
            op.params = query_params(LOG_PARAMS);
            op.response = Payload::Text;
            op.produces = TEXT_TYPES;
        } else {
            let (id_verb, desc, action) = match method {
                "get" => ("read", "read", "get"),
                "post" => ("create", "create", "post"),
                "put" => ("replace", "replace", "put"),
                "patch" => ("patch", "partially update", "patch"),
                _ => ("delete", "delete", "delete"),
            };
            op.id = format!("{id_verb}{g}{v}{scope}{kind}{sub_id}");
            op.description = format!("{desc} {sub_name} of the specified {kind}");
            op.action = action;
            match method {
                "post" | "put" => {
                    op.params = query_params(WRITE_PARAMS);
                    op.body = Some((Payload::Def(resp_def.clone()), ANY_TYPES, true));
                    op.responses = if method == "post" { R_CREATE } else { R_UPDATE };
                }
                "patch" => {
                    op.params = query_params(PATCH_PARAMS);
                    op.body = Some((
                        Payload::Def(PATCH_DEF.to_string()),
                        if d.custom.is_some() { CUSTOM_PATCH_CONTENT_TYPES } else { PATCH_CONTENT_TYPES },
                        true,
                    ));
                    op.responses = R_UPDATE;
                }
                _ => {}
            }
        }
        ops.push(op);
    }
    (!ops.is_empty()).then_some(PathItem { path, params, ops })
}

/// Every path of one group-version.
fn gv_paths(s: &Schema, group: &str, version: &str) -> Vec<PathItem> {
    let prefix = format!("/{}", gv_key(group, version));
    let mut out = Vec::new();
    // The metrics API has no schema of ours (upstream's comes from metrics-server through aggregation).
    for d in registry::all().into_iter().filter(|d| {
        d.group == group && d.version == version && (d.group != registry::METRICS_GROUP || d.custom.is_some())
    }) {
        resource_paths(s, d, &prefix, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rendering.

fn payload_schema(p: &Payload, f: Flavor) -> Value {
    match p {
        Payload::Def(name) => json!({ "$ref": f.reference(name) }),
        Payload::Text => json!({ "type": "string" }),
    }
}

fn param_json(p: &Param, f: Flavor) -> Value {
    let mut m = Map::new();
    if !p.description.is_empty() {
        m.insert("description".into(), json!(p.description));
    }
    m.insert("in".into(), json!(p.location));
    m.insert("name".into(), json!(p.name));
    if p.required {
        m.insert("required".into(), json!(true));
    }
    match f {
        Flavor::V2 => {
            m.insert("type".into(), json!(p.ty));
            m.insert("uniqueItems".into(), json!(true));
        }
        Flavor::V3 => {
            m.insert("schema".into(), json!({ "type": p.ty, "uniqueItems": true }));
        }
    }
    Value::Object(m)
}

/// Path-level parameters of the v2 document shared through its global `parameters`.
fn v2_param_ref(p: &Param) -> Option<&'static str> {
    match (p.location, p.name) {
        ("path", "namespace") => Some("namespace-vgWSWtn3"),
        ("query", "pretty") => Some("pretty-tJGM1-ng"),
        _ => None,
    }
}

fn v2_global_parameters() -> Value {
    let mut m = Map::new();
    for p in [namespace_param(), query_param("pretty")] {
        if let Some(name) = v2_param_ref(&p) {
            m.insert(name.into(), param_json(&p, Flavor::V2));
        }
    }
    m.insert(
        "body-78PwaGsr".into(),
        json!({ "in": "body", "name": "body", "required": true, "schema": { "$ref": Flavor::V2.reference(PATCH_DEF) } }),
    );
    Value::Object(m)
}

fn path_params_json(params: &[Param], f: Flavor) -> Value {
    Value::Array(
        params
            .iter()
            .map(|p| match (f, v2_param_ref(p)) {
                (Flavor::V2, Some(name)) => json!({ "$ref": format!("#/parameters/{name}") }),
                _ => param_json(p, f),
            })
            .collect(),
    )
}

fn op_json(op: &Op, f: Flavor) -> Value {
    let mut m = Map::new();
    m.insert("description".into(), json!(op.description));
    m.insert("operationId".into(), json!(op.id));
    let mut params: Vec<Value> = Vec::new();
    if let (Flavor::V2, Some((payload, types, required))) = (f, &op.body) {
        m.insert("consumes".into(), json!(types));
        match payload {
            Payload::Def(name) if name == PATCH_DEF => params.push(json!({ "$ref": "#/parameters/body-78PwaGsr" })),
            _ => params.push(json!({
                "in": "body", "name": "body", "required": required, "schema": payload_schema(payload, f)
            })),
        }
    }
    params.extend(op.params.iter().map(|p| param_json(p, f)));
    if !params.is_empty() {
        m.insert("parameters".into(), Value::Array(params));
    }
    let schema = payload_schema(&op.response, f);
    let mut responses = Map::new();
    for (code, description) in op.responses {
        let mut r = Map::new();
        r.insert("description".into(), json!(description));
        if !code.starts_with('4') {
            match f {
                Flavor::V2 => {
                    r.insert("schema".into(), schema.clone());
                }
                Flavor::V3 => {
                    let content: Map<String, Value> =
                        op.produces.iter().map(|t| (t.to_string(), json!({ "schema": schema.clone() }))).collect();
                    r.insert("content".into(), Value::Object(content));
                }
            }
        }
        responses.insert(code.to_string(), Value::Object(r));
    }
    m.insert("responses".into(), Value::Object(responses));
    match f {
        Flavor::V2 => {
            m.insert("produces".into(), json!(op.produces));
            m.insert("schemes".into(), json!(["https"]));
        }
        Flavor::V3 => {
            if let Some((payload, types, required)) = &op.body {
                let content: Map<String, Value> =
                    types.iter().map(|t| (t.to_string(), json!({ "schema": payload_schema(payload, f) }))).collect();
                let mut body = Map::new();
                body.insert("content".into(), Value::Object(content));
                if *required {
                    body.insert("required".into(), json!(true));
                }
                m.insert("requestBody".into(), Value::Object(body));
            }
        }
    }
    m.insert("tags".into(), json!([op.tag]));
    m.insert("x-kubernetes-action".into(), json!(op.action));
    m.insert(
        "x-kubernetes-group-version-kind".into(),
        json!({ "group": op.gvk.0, "kind": op.gvk.2, "version": op.gvk.1 }),
    );
    Value::Object(m)
}

fn paths_json(items: &[PathItem], f: Flavor) -> Map<String, Value> {
    let mut paths = Map::new();
    for item in items {
        let mut m = Map::new();
        for op in &item.ops {
            m.insert(op.method.into(), op_json(op, f));
        }
        m.insert("parameters".into(), path_params_json(&item.params, f));
        paths.insert(item.path.clone(), Value::Object(m));
    }
    paths
}

/// The definitions named by `$ref`s in `v` (JSON-Schema or OpenAPI form).
fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let name = r
                    .strip_prefix("#/$defs/")
                    .or_else(|| r.strip_prefix("#/definitions/"))
                    .or_else(|| r.strip_prefix("#/components/schemas/"));
                if let Some(name) = name {
                    out.insert(name.to_string());
                }
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// `roots` and every definition reachable from them.
fn reachable(s: &Schema, roots: BTreeSet<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        let Some(def) = s.definition(&name) else { continue };
        if !seen.insert(name) {
            continue;
        }
        let mut refs = BTreeSet::new();
        collect_refs(def, &mut refs);
        todo.extend(refs.into_iter().filter(|r| !seen.contains(r)));
    }
    seen
}

/// A shipped JSON-Schema (2020-12) definition back in OpenAPI form: single types, refs into the
/// document's own definitions, the added `enum`s on apiVersion/kind dropped.
fn convert_definition(name: &str, def: &Value, f: Flavor) -> Value {
    let description = def.get("description").cloned();
    let special = match name {
        INT_OR_STRING_DEF => Some(json!({ "type": "string", "format": "int-or-string" })),
        QUANTITY_DEF => Some(json!({ "type": "string" })),
        _ => None,
    };
    match special {
        Some(mut v) => {
            if let Some(d) = description {
                v["description"] = d;
            }
            v
        }
        None => convert_schema(def, f),
    }
}

fn convert_schema(v: &Value, f: Flavor) -> Value {
    let Value::Object(m) = v else { return v.clone() };
    let mut out = Map::new();
    let mut reference = None;
    for (k, x) in m {
        match k.as_str() {
            "$ref" => reference = schema::ref_name(v).map(|n| f.reference(n)),
            "enum" => {}
            "type" => {
                let t = match x {
                    Value::Array(ts) => ts.iter().find(|t| t.as_str() != Some("null")).cloned(),
                    other => Some(other.clone()),
                };
                if let Some(t) = t {
                    out.insert(k.clone(), t);
                }
            }
            "properties" => {
                let props = x
                    .as_object()
                    .map(|p| p.iter().map(|(n, s)| (n.clone(), convert_schema(s, f))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.clone(), if x.is_object() { convert_schema(x, f) } else { x.clone() });
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = x.as_array().map(|a| a.iter().map(|s| convert_schema(s, f)).collect()).unwrap_or_default();
                out.insert(k.clone(), Value::Array(list));
            }
            _ => {
                out.insert(k.clone(), x.clone());
            }
        }
    }
    if let Some(r) = reference {
        if out.is_empty() || f == Flavor::V2 {
            out.insert("$ref".into(), json!(r));
        } else {
            // OpenAPI 3.0 ignores siblings of `$ref`: upstream wraps the reference in `allOf`.
            out.insert("allOf".into(), json!([{ "$ref": r }]));
        }
    }
    Value::Object(out)
}

fn definitions_json(s: &Schema, names: &BTreeSet<String>, f: Flavor) -> Map<String, Value> {
    names.iter().filter_map(|n| s.definition(n).map(|d| (n.clone(), convert_definition(n, d, f)))).collect()
}

fn info() -> Value {
    json!({ "title": "Kubernetes", "version": KUBERNETES_VERSION })
}

fn roots(items: &[PathItem]) -> BTreeSet<String> {
    let mut roots = BTreeSet::new();
    for item in items {
        for op in &item.ops {
            for p in op.body.iter().map(|b| &b.0).chain([&op.response]) {
                if let Payload::Def(n) = p {
                    roots.insert(n.clone());
                }
            }
        }
    }
    roots
}

/// The OpenAPI 3.0 document of one group-version (`None` if it is not served).
pub fn v3_document(group: &str, version: &str) -> Option<Value> {
    if !registry::all().into_iter().any(|d| d.group == group && d.version == version) {
        return None;
    }
    let s = schema::get();
    let items = gv_paths(s, group, version);
    let names = reachable(s, roots(&items));
    Some(json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths_json(&items, Flavor::V3),
        "components": {
            "schemas": definitions_json(s, &names, Flavor::V3),
            "securitySchemes": {
                "BearerToken": { "description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey" }
            }
        },
        "security": [{ "BearerToken": [] }],
    }))
}

/// The whole Swagger 2.0 document.
pub fn v2_document() -> Value {
    let s = schema::get();
    let mut items = Vec::new();
    for (group, versions) in registry::group_versions() {
        for version in versions {
            items.extend(gv_paths(s, group, version));
        }
    }
    let names = reachable(s, roots(&items));
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths_json(&items, Flavor::V2),
        "definitions": definitions_json(s, &names, Flavor::V2),
        "parameters": v2_global_parameters(),
        "securityDefinitions": {
            "BearerToken": { "description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey" }
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// Every served group-version as (index key, group, version).
fn served_group_versions() -> Vec<(String, &'static str, &'static str)> {
    registry::group_versions()
        .into_iter()
        .flat_map(|(g, vs)| vs.into_iter().map(move |v| (gv_key(g, v), g, v)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The v2 document as gnostic protobuf (`openapi.v2.Document` of github.com/google/gnostic).

/// The few gnostic `openapi.v2` messages (and fields) the document uses, with upstream's field numbers.
#[allow(clippy::large_enum_variant)] // shaped as generated protobuf code is
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "2")]
        pub info: Option<Info>,
        #[prost(string, repeated, tag = "6")]
        pub consumes: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub produces: Vec<String>,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Definitions>,
        #[prost(message, optional, tag = "10")]
        pub parameters: Option<ParameterDefinitions>,
        #[prost(message, repeated, tag = "12")]
        pub security: Vec<SecurityRequirement>,
        #[prost(message, optional, tag = "13")]
        pub security_definitions: Option<SecurityDefinitions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Info {
        #[prost(string, tag = "1")]
        pub title: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Paths {
        #[prost(message, repeated, tag = "1")]
        pub vendor_extension: Vec<NamedAny>,
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedPathItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<PathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathItem {
        #[prost(string, tag = "1")]
        pub r#ref: String,
        #[prost(message, optional, tag = "2")]
        pub get: Option<Operation>,
        #[prost(message, optional, tag = "3")]
        pub put: Option<Operation>,
        #[prost(message, optional, tag = "4")]
        pub post: Option<Operation>,
        #[prost(message, optional, tag = "5")]
        pub delete: Option<Operation>,
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
        #[prost(message, repeated, tag = "9")]
        pub parameters: Vec<ParametersItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, repeated, tag = "1")]
        pub tags: Vec<String>,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "5")]
        pub operation_id: String,
        #[prost(string, repeated, tag = "6")]
        pub produces: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub consumes: Vec<String>,
        #[prost(message, repeated, tag = "8")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, optional, tag = "9")]
        pub responses: Option<Responses>,
        #[prost(string, repeated, tag = "10")]
        pub schemes: Vec<String>,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParametersItem {
        #[prost(oneof = "parameters_item::Oneof", tags = "1, 2")]
        pub oneof: Option<parameters_item::Oneof>,
    }

    pub mod parameters_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Parameter(super::Parameter),
            #[prost(message, tag = "2")]
            JsonReference(super::JsonReference),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct JsonReference {
        #[prost(string, tag = "1")]
        pub r#ref: String,
        #[prost(string, tag = "2")]
        pub description: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Parameter {
        #[prost(oneof = "parameter::Oneof", tags = "1, 2")]
        pub oneof: Option<parameter::Oneof>,
    }

    pub mod parameter {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            BodyParameter(super::BodyParameter),
            #[prost(message, tag = "2")]
            NonBodyParameter(super::NonBodyParameter),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BodyParameter {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(bool, tag = "4")]
        pub required: bool,
        #[prost(message, optional, tag = "5")]
        pub schema: Option<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NonBodyParameter {
        #[prost(oneof = "non_body_parameter::Oneof", tags = "3, 4")]
        pub oneof: Option<non_body_parameter::Oneof>,
    }

    pub mod non_body_parameter {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "3")]
            QueryParameterSubSchema(super::QueryParameterSubSchema),
            #[prost(message, tag = "4")]
            PathParameterSubSchema(super::PathParameterSubSchema),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "6")]
        pub r#type: String,
        #[prost(bool, tag = "20")]
        pub unique_items: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "5")]
        pub r#type: String,
        #[prost(bool, tag = "19")]
        pub unique_items: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Responses {
        #[prost(message, repeated, tag = "1")]
        pub response_code: Vec<NamedResponseValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedResponseValue {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<ResponseValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseValue {
        #[prost(oneof = "response_value::Oneof", tags = "1")]
        pub oneof: Option<response_value::Oneof>,
    }

    pub mod response_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Response(super::Response),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(message, optional, tag = "2")]
        pub schema: Option<SchemaItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SchemaItem {
        #[prost(oneof = "schema_item::Oneof", tags = "1")]
        pub oneof: Option<schema_item::Oneof>,
    }

    pub mod schema_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Schema(super::Schema),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Schema {
        #[prost(string, tag = "1")]
        pub r#ref: String,
        #[prost(string, tag = "2")]
        pub format: String,
        #[prost(string, tag = "3")]
        pub title: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(message, optional, tag = "5")]
        pub default: Option<Any>,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, repeated, tag = "20")]
        pub r#enum: Vec<Any>,
        #[prost(message, optional, boxed, tag = "21")]
        pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, repeated, tag = "24")]
        pub all_of: Vec<Schema>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Properties>,
        #[prost(bool, tag = "27")]
        pub read_only: bool,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AdditionalPropertiesItem {
        #[prost(oneof = "additional_properties_item::Oneof", tags = "1, 2")]
        pub oneof: Option<additional_properties_item::Oneof>,
    }

    pub mod additional_properties_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "1")]
            Schema(super::Schema),
            #[prost(bool, tag = "2")]
            Boolean(bool),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Properties {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSchema {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Definitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParameterDefinitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedParameter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedParameter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Parameter>,
    }

    /// A value kept as YAML text (gnostic's `Any`; the `google.protobuf.Any` form is not used).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedAny {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SecurityRequirement {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedStringArray>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedStringArray {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<StringArray>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringArray {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SecurityDefinitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSecurityDefinitionsItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSecurityDefinitionsItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<SecurityDefinitionsItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SecurityDefinitionsItem {
        #[prost(oneof = "security_definitions_item::Oneof", tags = "2")]
        pub oneof: Option<security_definitions_item::Oneof>,
    }

    pub mod security_definitions_item {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Oneof {
            #[prost(message, tag = "2")]
            ApiKeySecurity(super::ApiKeySecurity),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ApiKeySecurity {
        #[prost(string, tag = "1")]
        pub r#type: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(string, tag = "4")]
        pub description: String,
    }
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn texts(v: &Value, k: &str) -> Vec<String> {
    v.get(k).and_then(Value::as_array).into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
}

fn yaml_any(v: &Value) -> pb::Any {
    pb::Any { yaml: serde_yaml_ng::to_string(v).unwrap_or_default() }
}

fn extensions_pb(v: &Value) -> Vec<pb::NamedAny> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, x)| pb::NamedAny { name: k.clone(), value: Some(yaml_any(x)) })
        .collect()
}

fn named_schemas_pb(v: Option<&Value>) -> Vec<pb::NamedSchema> {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(n, s)| pb::NamedSchema { name: n.clone(), value: Some(schema_pb(s)) })
        .collect()
}

fn schema_pb(v: &Value) -> pb::Schema {
    use pb::additional_properties_item::Oneof as Ap;
    let types = match v.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let items = match v.get("items") {
        Some(Value::Array(a)) => Some(pb::ItemsItem { schema: a.iter().map(schema_pb).collect() }),
        Some(s @ Value::Object(_)) => Some(pb::ItemsItem { schema: vec![schema_pb(s)] }),
        _ => None,
    };
    let additional_properties = match v.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(Box::new(pb::AdditionalPropertiesItem { oneof: Some(Ap::Boolean(*b)) })),
        Some(s @ Value::Object(_)) => {
            Some(Box::new(pb::AdditionalPropertiesItem { oneof: Some(Ap::Schema(schema_pb(s))) }))
        }
        _ => None,
    };
    pb::Schema {
        r#ref: text(v, "$ref"),
        format: text(v, "format"),
        title: text(v, "title"),
        description: text(v, "description"),
        default: v.get("default").map(yaml_any),
        required: texts(v, "required"),
        r#enum: v.get("enum").and_then(Value::as_array).into_iter().flatten().map(yaml_any).collect(),
        additional_properties,
        r#type: (!types.is_empty()).then_some(pb::TypeItem { value: types }),
        items,
        all_of: v.get("allOf").and_then(Value::as_array).into_iter().flatten().map(schema_pb).collect(),
        properties: v.get("properties").map(|p| pb::Properties { additional_properties: named_schemas_pb(Some(p)) }),
        read_only: v.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
        vendor_extension: extensions_pb(v),
    }
}

fn parameter_pb(v: &Value) -> pb::Parameter {
    use pb::non_body_parameter::Oneof as Nb;
    use pb::parameter::Oneof as P;
    let required = v.get("required").and_then(Value::as_bool).unwrap_or(false);
    let unique_items = v.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
    let oneof = match v.get("in").and_then(Value::as_str) {
        Some("body") => P::BodyParameter(pb::BodyParameter {
            description: text(v, "description"),
            name: text(v, "name"),
            r#in: "body".into(),
            required,
            schema: v.get("schema").map(schema_pb),
        }),
        Some("path") => P::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(Nb::PathParameterSubSchema(pb::PathParameterSubSchema {
                required,
                r#in: "path".into(),
                description: text(v, "description"),
                name: text(v, "name"),
                r#type: text(v, "type"),
                unique_items,
            })),
        }),
        _ => P::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(Nb::QueryParameterSubSchema(pb::QueryParameterSubSchema {
                required,
                r#in: "query".into(),
                description: text(v, "description"),
                name: text(v, "name"),
                r#type: text(v, "type"),
                unique_items,
            })),
        }),
    };
    pb::Parameter { oneof: Some(oneof) }
}

fn parameters_pb(v: Option<&Value>) -> Vec<pb::ParametersItem> {
    use pb::parameters_item::Oneof;
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| pb::ParametersItem {
            oneof: Some(match p.get("$ref").and_then(Value::as_str) {
                Some(r) => Oneof::JsonReference(pb::JsonReference { r#ref: r.to_string(), description: String::new() }),
                None => Oneof::Parameter(parameter_pb(p)),
            }),
        })
        .collect()
}

fn operation_pb(v: &Value) -> pb::Operation {
    let responses = v.get("responses").and_then(Value::as_object).map(|rs| pb::Responses {
        response_code: rs
            .iter()
            .map(|(code, r)| pb::NamedResponseValue {
                name: code.clone(),
                value: Some(pb::ResponseValue {
                    oneof: Some(pb::response_value::Oneof::Response(pb::Response {
                        description: text(r, "description"),
                        schema: r
                            .get("schema")
                            .map(|s| pb::SchemaItem { oneof: Some(pb::schema_item::Oneof::Schema(schema_pb(s))) }),
                    })),
                }),
            })
            .collect(),
    });
    pb::Operation {
        tags: texts(v, "tags"),
        description: text(v, "description"),
        operation_id: text(v, "operationId"),
        produces: texts(v, "produces"),
        consumes: texts(v, "consumes"),
        parameters: parameters_pb(v.get("parameters")),
        responses,
        schemes: texts(v, "schemes"),
        vendor_extension: extensions_pb(v),
    }
}

/// The Swagger 2.0 document (as [`v2_document`] makes it) in gnostic's protobuf form.
pub fn v2_protobuf(doc: &Value) -> pb::Document {
    let op = |item: &Value, m: &str| item.get(m).map(operation_pb);
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(path, item)| pb::NamedPathItem {
            name: path.clone(),
            value: Some(pb::PathItem {
                r#ref: String::new(),
                get: op(item, "get"),
                put: op(item, "put"),
                post: op(item, "post"),
                delete: op(item, "delete"),
                patch: op(item, "patch"),
                parameters: parameters_pb(item.get("parameters")),
            }),
        })
        .collect();
    let parameters = doc.get("parameters").and_then(Value::as_object).map(|ps| pb::ParameterDefinitions {
        additional_properties: ps
            .iter()
            .map(|(n, p)| pb::NamedParameter { name: n.clone(), value: Some(parameter_pb(p)) })
            .collect(),
    });
    let security_definitions =
        doc.get("securityDefinitions").and_then(Value::as_object).map(|sd| pb::SecurityDefinitions {
            additional_properties: sd
                .iter()
                .map(|(n, s)| pb::NamedSecurityDefinitionsItem {
                    name: n.clone(),
                    value: Some(pb::SecurityDefinitionsItem {
                        oneof: Some(pb::security_definitions_item::Oneof::ApiKeySecurity(pb::ApiKeySecurity {
                            r#type: text(s, "type"),
                            name: text(s, "name"),
                            r#in: text(s, "in"),
                            description: text(s, "description"),
                        })),
                    }),
                })
                .collect(),
        });
    let security = doc
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|req| pb::SecurityRequirement {
            additional_properties: req
                .as_object()
                .into_iter()
                .flatten()
                .map(|(n, scopes)| pb::NamedStringArray {
                    name: n.clone(),
                    value: Some(pb::StringArray {
                        value: scopes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect(),
                    }),
                })
                .collect(),
        })
        .collect();
    pb::Document {
        swagger: text(doc, "swagger"),
        info: doc.get("info").map(|i| pb::Info { title: text(i, "title"), version: text(i, "version") }),
        consumes: texts(doc, "consumes"),
        produces: texts(doc, "produces"),
        paths: Some(pb::Paths { vendor_extension: Vec::new(), path: paths }),
        definitions: Some(pb::Definitions { additional_properties: named_schemas_pb(doc.get("definitions")) }),
        parameters,
        security,
        security_definitions,
    }
}

// ---------------------------------------------------------------------------------------------
// Serving: built once, kept gzip-compressed.

/// One served document.
struct Cached {
    gz: Bytes,
    /// Upstream's form: the SHA-512 of the document, upper-case hex.
    hash: String,
}

impl Cached {
    fn new(raw: &[u8]) -> Cached {
        let digest = ring::digest::digest(&ring::digest::SHA512, raw);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let gz = enc.write_all(raw).and_then(|_| enc.finish()).unwrap_or_default();
        Cached { gz: Bytes::from(gz), hash }
    }

    fn raw(&self) -> Bytes {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&self.gz[..]).read_to_end(&mut out) {
            Ok(_) => Bytes::from(out),
            Err(_) => Bytes::new(),
        }
    }
}

struct V3Docs {
    index: Cached,
    docs: BTreeMap<String, Cached>,
}

struct V2Docs {
    json: Cached,
    protobuf: Cached,
}

/// Built documents, with the custom-resource generation they were built for: a CRD change makes
/// the next request build them again.
type Slot<T> = std::sync::Mutex<Option<(u64, Arc<T>)>>;
static V3: Slot<V3Docs> = std::sync::Mutex::new(None);
static V2: Slot<V2Docs> = std::sync::Mutex::new(None);

fn build_v3() -> V3Docs {
    let mut docs = BTreeMap::new();
    let mut paths = Map::new();
    for (key, g, v) in served_group_versions() {
        let Some(doc) = v3_document(g, v) else { continue };
        let cached = Cached::new(&serde_json::to_vec(&doc).unwrap_or_default());
        paths.insert(key.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={}", cached.hash) }));
        docs.insert(key, cached);
    }
    let index = Cached::new(&serde_json::to_vec(&json!({ "paths": paths })).unwrap_or_default());
    V3Docs { index, docs }
}

fn build_v2() -> V2Docs {
    use prost::Message;
    let doc = v2_document();
    let json = Cached::new(&serde_json::to_vec(&doc).unwrap_or_default());
    let protobuf = Cached::new(&v2_protobuf(&doc).encode_to_vec());
    V2Docs { json, protobuf }
}

async fn built<T: Send + Sync + 'static>(slot: &'static Slot<T>, build: fn() -> T) -> Result<Arc<T>, StatusError> {
    let generation = registry::custom_generation();
    if let Some((g, docs)) = slot.lock().ok().and_then(|s| s.clone()) {
        if g == generation {
            return Ok(docs);
        }
    }
    // Building takes a moment: off the async workers.
    tokio::task::spawn_blocking(move || {
        let docs = Arc::new(build());
        release_freed_memory();
        if let Ok(mut s) = slot.lock() {
            *s = Some((generation, docs.clone()));
        }
        docs
    })
    .await
    .map_err(|e| StatusError::internal(format!("building the OpenAPI document: {e}")))
}

/// Building frees far more than it keeps: hand that back to the system (glibc keeps it otherwise).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether a path is one this module serves.
pub fn handles(path: &str) -> bool {
    path == "/openapi/v2" || path == "/openapi/v3" || path.starts_with("/openapi/v3/") || path == "/openapi/v2/"
}

fn header_str(req: &Request<Bytes>, name: header::HeaderName) -> impl Iterator<Item = &str> {
    req.headers().get_all(name).into_iter().filter_map(|v| v.to_str().ok())
}

fn accepts_gzip(req: &Request<Bytes>) -> bool {
    header_str(req, header::ACCEPT_ENCODING).flat_map(|v| v.split(',')).any(|e| {
        let mut parts = e.split(';').map(str::trim);
        let zero = |p: &str| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q == 0.0);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip")) && !parts.any(zero)
    })
}

fn wants_v2_protobuf(req: &Request<Bytes>) -> bool {
    header_str(req, header::ACCEPT).flat_map(|v| v.split(',')).any(|t| {
        let t = t.split(';').next().unwrap_or_default().trim();
        t.eq_ignore_ascii_case(V2_PROTOBUF_ACCEPT) || t.eq_ignore_ascii_case(V2_PROTOBUF_CONTENT_TYPE)
    })
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The reply for one document: 304 when `If-None-Match` names it, else the body (gzip when accepted).
fn document_response(req: &Request<Bytes>, doc: &Cached, content_type: &str, vary: &str) -> Response<Body> {
    let etag = format!("\"{}\"", doc.hash);
    let matches = header_str(req, header::IF_NONE_MATCH).flat_map(|v| v.split(',')).any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    });
    let mut resp = if matches {
        let mut r = Response::new(full_body(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if accepts_gzip(req) {
        let mut r = bytes_response(StatusCode::OK, content_type, doc.gz.clone());
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        bytes_response(StatusCode::OK, content_type, doc.raw())
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, hv(&etag));
    h.insert(header::VARY, hv(vary));
    resp
}

fn not_found() -> StatusError {
    StatusError::new(404, "NotFound", "the server could not find the requested resource")
}

/// Serve `GET /openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version>`.
pub async fn serve(req: &Request<Bytes>, path: &str) -> Result<Response<Body>, StatusError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {}",
            req.method()
        )));
    }
    let path = path.trim_end_matches('/');
    if path == "/openapi/v2" {
        let docs = built(&V2, build_v2).await?;
        return Ok(if wants_v2_protobuf(req) {
            document_response(req, &docs.protobuf, V2_PROTOBUF_CONTENT_TYPE, "Accept, Accept-Encoding")
        } else {
            document_response(req, &docs.json, "application/json", "Accept, Accept-Encoding")
        });
    }
    let Some(rest) = path.strip_prefix("/openapi/v3") else { return Err(not_found()) };
    let docs = built(&V3, build_v3).await?;
    if rest.is_empty() {
        return Ok(document_response(req, &docs.index, "application/json", "Accept-Encoding"));
    }
    let key = rest.trim_start_matches('/');
    let doc = docs.docs.get(key).ok_or_else(not_found)?;
    let hash = req.uri().query().into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix("hash="));
    match hash {
        Some(h) if h != doc.hash => {
            // A stale link: send the client to the current document (as upstream does).
            let mut r = Response::new(full_body(Bytes::new()));
            *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
            r.headers_mut().insert(header::LOCATION, hv(&format!("/openapi/v3/{key}?hash={}", doc.hash)));
            Ok(r)
        }
        Some(_) => {
            let mut r = document_response(req, doc, "application/json", "Accept, Accept-Encoding");
            let expires = (chrono::Utc::now() + chrono::Duration::days(365)).format("%a, %d %b %Y %H:%M:%S GMT");
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
            r.headers_mut().insert(header::EXPIRES, hv(&expires.to_string()));
            Ok(r)
        }
        None => Ok(document_response(req, doc, "application/json", "Accept, Accept-Encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn refs_resolve(doc: &Value, prefix: &str, defs: &Map<String, Value>, params: Option<&Map<String, Value>>) {
        let mut refs = BTreeSet::new();
        fn walk(v: &Value, out: &mut BTreeSet<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        out.insert(r.to_string());
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            if let Some(name) = r.strip_prefix(prefix) {
                assert!(defs.contains_key(name), "unresolved {r}");
            } else if let Some(name) = r.strip_prefix("#/parameters/") {
                assert!(params.is_some_and(|p| p.contains_key(name)), "unresolved {r}");
            } else {
                panic!("foreign reference {r}");
            }
        }
    }

    #[test]
    fn index_lists_every_group_version() {
        let docs = build_v3();
        let index: Value = serde_json::from_slice(&docs.index.raw()).unwrap();
        for key in ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/autoscaling/v1", "apis/autoscaling/v2"] {
            let url = index["paths"][key]["serverRelativeURL"].as_str().unwrap_or_else(|| panic!("{key}: {index}"));
            assert!(url.starts_with(&format!("/openapi/v3/{key}?hash=")), "{url}");
            assert!(url.ends_with(&docs.docs[key].hash));
        }
        assert_eq!(docs.docs.len(), served_group_versions().len());
        assert!(v3_document("apps", "v2").is_none());
    }

    #[test]
    fn apps_v1_document() {
        let doc = v3_document("apps", "v1").unwrap();
        assert_eq!(doc["openapi"], "3.0.0");
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        let params: Vec<&str> =
            patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert!(params.contains(&"fieldValidation") && params.contains(&"dryRun") && params.contains(&"fieldManager"));
        let fv = patch["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "fieldValidation").unwrap();
        assert_eq!(fv["in"], "query");
        for t in PATCH_CONTENT_TYPES {
            assert_eq!(
                patch["requestBody"]["content"][t]["schema"]["$ref"],
                "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                "{t}"
            );
        }
        for m in ["get", "put", "delete"] {
            assert!(item[m].is_object(), "{m}");
        }
        let coll = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
        assert_eq!(coll["get"]["x-kubernetes-action"], "list");
        assert_eq!(coll["post"]["x-kubernetes-action"], "post");
        assert_eq!(coll["delete"]["x-kubernetes-action"], "deletecollection");
        assert!(doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"].is_object());
        assert!(doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["put"].is_object());
        assert!(doc["paths"]["/apis/apps/v1/deployments"]["get"].is_object());

        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let dep = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            dep["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(dep["type"], "object");
        assert_eq!(
            dep["properties"]["kind"],
            json!({"description": dep["properties"]["kind"]["description"], "type": "string"})
        );
        assert_eq!(
            dep["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert_eq!(schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"], "int-or-string");
        assert_eq!(schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"], "string");
        assert!(schemas.contains_key("io.k8s.api.core.v1.Container"));
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        refs_resolve(&doc, "#/components/schemas/", schemas, None);
    }

    #[test]
    fn every_v3_document_is_self_contained() {
        for (_, g, v) in served_group_versions() {
            let doc = v3_document(g, v).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            // A version whose kinds the shipped schema no longer defines (authentication.k8s.io/
            // v1beta1, kept for kubectl 1.27's whoami) has no paths and nothing to resolve.
            if doc["paths"].as_object().is_some_and(|p| p.is_empty()) {
                continue;
            }
            refs_resolve(&doc, "#/components/schemas/", schemas, None);
            let text = doc.to_string();
            // Single types only, no JSON-Schema references, and no `oneOf` but JSONSchemaProps' own property.
            assert!(!text.contains("\"type\":[") && !text.contains("$defs"), "{g}/{v}");
            assert_eq!(text.matches("\"oneOf\":").count(), if g == "apiextensions.k8s.io" { 1 } else { 0 }, "{g}/{v}");
        }
    }

    #[test]
    fn v2_document_and_protobuf() {
        let doc = v2_document();
        let defs = doc["definitions"].as_object().unwrap();
        refs_resolve(&doc, "#/definitions/", defs, doc["parameters"].as_object());
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["consumes"], json!(PATCH_CONTENT_TYPES));
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert_eq!(
            defs["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );

        let bytes = v2_protobuf(&doc).encode_to_vec();
        let back = pb::Document::decode(&bytes[..]).unwrap();
        assert_eq!(back.swagger, "2.0");
        assert_eq!(back.definitions.as_ref().unwrap().additional_properties.len(), defs.len());
        assert_eq!(back.paths.as_ref().unwrap().path.len(), doc["paths"].as_object().unwrap().len());
        assert_eq!(back.parameters.as_ref().unwrap().additional_properties.len(), 3);
        let dep = back
            .definitions
            .unwrap()
            .additional_properties
            .into_iter()
            .find(|d| d.name == "io.k8s.api.apps.v1.Deployment")
            .and_then(|d| d.value)
            .unwrap();
        assert_eq!(dep.r#type.unwrap().value, ["object"]);
        let gvk = dep.vendor_extension.iter().find(|e| e.name == "x-kubernetes-group-version-kind").unwrap();
        let parsed: Value = serde_yaml_ng::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(parsed, json!([{"group": "apps", "kind": "Deployment", "version": "v1"}]));
        // kubectl finds fieldValidation on the kind's PATCH operation as an inline query parameter.
        let item = back
            .paths
            .unwrap()
            .path
            .into_iter()
            .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
            .and_then(|p| p.value)
            .unwrap();
        let patch = item.patch.unwrap();
        assert!(patch.parameters.iter().any(|p| matches!(
            &p.oneof,
            Some(pb::parameters_item::Oneof::Parameter(pb::Parameter {
                oneof: Some(pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
                    oneof: Some(pb::non_body_parameter::Oneof::QueryParameterSubSchema(q))
                }))
            })) if q.name == "fieldValidation"
        )));
    }

    #[tokio::test]
    async fn serves_with_etag_and_gzip() {
        let req = |path: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder().uri(path);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(Bytes::new()).unwrap()
        };
        let r = serve(&req("/openapi/v2", &[("Accept", V2_PROTOBUF_ACCEPT)]), "/openapi/v2").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], V2_PROTOBUF_CONTENT_TYPE);
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let r = serve(&req("/openapi/v2", &[("Accept", V2_PROTOBUF_ACCEPT), ("If-None-Match", &etag)]), "/openapi/v2")
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        let r = serve(&req("/openapi/v3", &[("Accept-Encoding", "gzip")]), "/openapi/v3").await.unwrap();
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let r = serve(&req("/openapi/v3/apis/apps/v1?hash=stale", &[]), "/openapi/v3/apis/apps/v1").await.unwrap();
        assert_eq!(r.status(), 301);
        let e = serve(&req("/openapi/v3/apis/nope/v1", &[]), "/openapi/v3/apis/nope/v1").await.unwrap_err();
        assert_eq!(e.code, 404);
        assert!(handles("/openapi/v3/api/v1") && handles("/openapi/v2") && !handles("/openapi"));
    }
}
