//! `metrics.k8s.io/v1beta1` (NodeMetrics, PodMetrics) — what metrics-server serves upstream, made on
//! request from each node agent's `/stats/summary` (reached through [`super::node_proxy`]), so
//! `kubectl top nodes|pods` work without an add-on.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::objects::Ctx;
use super::request::{Query, ResourceRequest, Verb};
use super::{json_response, ApiServer, Body};
use crate::api::registry::{self, ResourceDef};
use crate::api::status::StatusError;

/// The window CPU rates are averaged over (the agents' sampling period).
const WINDOW: &str = "5s";
/// Longest wait for one agent's summary; a node that does not answer is left out, as upstream.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves a metrics.k8s.io request.
pub async fn serve(
    api: &Arc<ApiServer>,
    def: &'static ResourceDef,
    r: &ResourceRequest,
    query: Query,
) -> Result<Response<Body>, StatusError> {
    let nodes_def =
        registry::find("", "v1", "nodes").ok_or_else(|| StatusError::internal("nodes are not registered"))?;
    let pods_def = registry::find("", "v1", "pods").ok_or_else(|| StatusError::internal("pods are not registered"))?;
    let label_selector = query.get("labelSelector").map(str::to_string);
    let mut sel_query = String::new();
    if let Some(l) = &label_selector {
        sel_query = format!("labelSelector={}", urlencode(l));
    }
    match (r.verb, r.subresource.as_deref()) {
        (Verb::Get | Verb::List, None) => {}
        (v, _) => {
            return Err(StatusError::method_not_allowed(format!(
                "{} is not supported on {}.{}",
                v.as_str(),
                def.plural,
                def.group
            )))
        }
    }
    let node_ctx = Ctx::new(api.clone(), nodes_def, None, Query::parse(Some(&sel_query)), None)?;
    if def.kind == "NodeMetrics" {
        let nodes: Vec<Node> = match &r.name {
            Some(n) => vec![decode(node_ctx.current_value(n).await.map_err(|_| not_found(def, n))?)?],
            None => selected(&node_ctx).await?,
        };
        let summaries = scrape(api, &nodes).await;
        let mut items = Vec::new();
        for n in &nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let Some(s) = summaries.get(&name) else { continue };
            let node = &s["node"];
            let (Some(cpu), Some(mem)) =
                (node["cpu"]["usageNanoCores"].as_u64(), node["memory"]["workingSetBytes"].as_u64())
            else {
                continue;
            };
            items.push(json!({
                "metadata": {"name": name, "labels": n.metadata.labels, "creationTimestamp": now()},
                "timestamp": node["cpu"]["time"].as_str().map_or_else(now, str::to_string),
                "window": WINDOW,
                "usage": {"cpu": format!("{cpu}n"), "memory": format!("{}Ki", mem / 1024)},
            }));
        }
        return respond(def, r, items);
    }
    // PodMetrics.
    let pod_ctx = Ctx::new(api.clone(), pods_def, r.namespace.clone(), Query::parse(Some(&sel_query)), None)?;
    let pods: Vec<Pod> = match &r.name {
        Some(n) => vec![decode(pod_ctx.current_value(n).await.map_err(|_| not_found(def, n))?)?],
        None => selected(&pod_ctx).await?,
    };
    let node_names: std::collections::BTreeSet<String> =
        pods.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).filter(|n| !n.is_empty()).collect();
    let mut nodes = Vec::new();
    for n in node_names {
        if let Ok(v) = node_ctx.current_value(&n).await {
            nodes.push(decode::<Node>(v)?);
        }
    }
    let summaries = scrape(api, &nodes).await;
    let by_uid: HashMap<String, &Value> = summaries
        .values()
        .flat_map(|s| s["pods"].as_array().into_iter().flatten())
        .filter_map(|p| Some((p["podRef"]["uid"].as_str()?.to_string(), p)))
        .collect();
    let mut items = Vec::new();
    for p in &pods {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let Some(stats) = by_uid.get(&uid) else { continue };
        let mut containers = Vec::new();
        for c in stats["containers"].as_array().into_iter().flatten() {
            let (Some(cpu), Some(mem)) = (c["cpu"]["usageNanoCores"].as_u64(), c["memory"]["workingSetBytes"].as_u64())
            else {
                continue;
            };
            containers.push(json!({
                "name": c["name"],
                "usage": {"cpu": format!("{cpu}n"), "memory": format!("{}Ki", mem / 1024)},
            }));
        }
        if containers.is_empty() {
            continue;
        }
        items.push(json!({
            "metadata": {
                "name": p.metadata.name,
                "namespace": p.metadata.namespace,
                "labels": p.metadata.labels,
                "creationTimestamp": now(),
            },
            "timestamp": stats["cpu"]["time"].as_str().map_or_else(now, str::to_string),
            "window": WINDOW,
            "containers": containers,
        }));
    }
    respond(def, r, items)
}

/// The objects of a context that match its label selector.
async fn selected<T: serde::de::DeserializeOwned + kube::Resource>(ctx: &Ctx) -> Result<Vec<T>, StatusError> {
    let (labels, _) = ctx.selectors()?;
    let mut out = Vec::new();
    for (_, v) in ctx.list_values().await? {
        let t: T = decode(v)?;
        if labels.matches(t.meta().labels.as_ref().unwrap_or(&Default::default())) {
            out.push(t);
        }
    }
    Ok(out)
}

fn respond(def: &ResourceDef, r: &ResourceRequest, items: Vec<Value>) -> Result<Response<Body>, StatusError> {
    let api_version = format!("{}/{}", def.group, def.version);
    if let Some(name) = &r.name {
        let mut one = items.into_iter().next().ok_or_else(|| not_found(def, name))?;
        one["kind"] = json!(def.kind);
        one["apiVersion"] = json!(api_version);
        return Ok(json_response(StatusCode::OK, &one));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", def.kind), "apiVersion": api_version, "metadata": {}, "items": items}),
    ))
}

fn not_found(def: &ResourceDef, name: &str) -> StatusError {
    StatusError::not_found(def.group, def.plural, name)
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, StatusError> {
    serde_json::from_value(v).map_err(|e| StatusError::internal(e.to_string()))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/stats/summary` of each node, concurrently; nodes that fail are logged and left out.
async fn scrape(api: &Arc<ApiServer>, nodes: &[Node]) -> HashMap<String, Value> {
    let Ok(access) = api.node_access() else { return HashMap::new() };
    let jobs = nodes.iter().map(|n| async move {
        let name = n.metadata.name.clone().unwrap_or_default();
        let req = Request::get("/stats/summary").body(Full::new(Bytes::new())).ok()?;
        let fetch = async {
            let resp = access.send(n, req).await.map_err(|e| e.message)?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
        };
        match tokio::time::timeout(SCRAPE_TIMEOUT, fetch).await {
            Ok(Ok(v)) => Some((name, v)),
            Ok(Err(e)) => {
                tracing::warn!(message = "could not read a node's usage", node = %name, error = %e);
                None
            }
            Err(_) => {
                tracing::warn!(message = "a node's usage did not arrive in time", node = %name);
                None
            }
        }
    });
    futures::future::join_all(jobs).await.into_iter().flatten().collect()
}
