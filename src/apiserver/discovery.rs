//! Discovery: `/api`, `/apis`, per group-version resource lists, and aggregated discovery
//! (`apidiscovery.k8s.io` v2 and v2beta1) when the client asks for it.

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{bytes_response, json_response, ApiConfig, Body};
use crate::api::registry::{self, ResourceDef};
use crate::api::status::StatusError;

/// The aggregated-discovery version the client accepts, if any (first acceptable wins).
fn aggregated_version(req: &Request<Bytes>) -> Option<&'static str> {
    let accept = req.headers().get(header::ACCEPT)?.to_str().ok()?;
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.iter().any(|x| x.replace(' ', "") == p);
        if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
        // A plain JSON entry before any aggregated one: the client prefers the old form.
        if params.first().is_some_and(|m| *m == "application/json" || *m == "*/*") && params.len() == 1 {
            return None;
        }
    }
    None
}

fn response_kind(def: &ResourceDef) -> Value {
    json!({ "group": def.group, "version": def.version, "kind": def.kind })
}

fn aggregated_resource(def: &ResourceDef) -> Value {
    let subresources: Vec<Value> = def
        .subresources
        .iter()
        .map(|s| {
            let (g, v, k) = if s.response.2.is_empty() { (def.group, def.version, def.kind) } else { s.response };
            json!({
                "subresource": s.name,
                "responseKind": { "group": g, "version": v, "kind": k },
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut r = json!({
        "resource": def.plural,
        "responseKind": response_kind(def),
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs,
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    if !subresources.is_empty() {
        r["subresources"] = Value::Array(subresources);
    }
    r
}

fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut defs: Vec<&ResourceDef> =
                registry::all().into_iter().filter(|d| d.group == group && d.version == *v).collect();
            defs.sort_by_key(|d| d.plural);
            json!({
                "version": v,
                "resources": defs.into_iter().map(aggregated_resource).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    json!({ "metadata": { "name": group, "creationTimestamp": null }, "versions": versions })
}

fn aggregated_list(version: &str, legacy: bool) -> Response<Body> {
    let items: Vec<Value> = registry::group_versions()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == legacy)
        .map(|(g, vs)| aggregated_group(g, &sorted_versions(vs)))
        .collect();
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    bytes_response(
        StatusCode::OK,
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

/// Versions of a group with the preferred (newest stable) first.
fn sorted_versions(mut vs: Vec<&'static str>) -> Vec<&'static str> {
    vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    vs
}

/// Kubernetes version priority: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let (major, tail) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()));
    let major: u32 = major.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v })).collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> =
        registry::all().into_iter().filter(|d| d.group == group && d.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs,
            "storageVersionHash": "",
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for s in d.subresources {
            let (g, v, k) = if s.response.2.is_empty() { (d.group, d.version, d.kind) } else { s.response };
            let mut sr = json!({
                "name": format!("{}/{}", d.plural, s.name),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": k,
                "verbs": s.verbs,
            });
            if g != d.group || v != d.version {
                sr["group"] = json!(g);
                sr["version"] = json!(v);
            }
            resources.push(sr);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }))
}

pub fn serve(
    req: &Request<Bytes>,
    group: Option<String>,
    version: Option<String>,
    legacy: bool,
    config: &ApiConfig,
) -> Result<Response<Body>, StatusError> {
    let not_found = || StatusError::new(404, "NotFound", "the server could not find the requested resource");
    match (group.as_deref(), version.as_deref()) {
        (None, None) => {
            if let Some(v) = aggregated_version(req) {
                return Ok(aggregated_list(v, legacy));
            }
            if legacy {
                return Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{
                            "clientCIDR": "0.0.0.0/0",
                            "serverAddress": format!("{}:{}", config.advertise_address, config.port),
                        }],
                    }),
                ));
            }
            let groups: Vec<Value> = registry::group_versions()
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| group_json(g, &sorted_versions(vs)))
                .collect();
            Ok(json_response(StatusCode::OK, &json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })))
        }
        (Some(g), None) => {
            let (_, vs) = registry::group_versions().into_iter().find(|(x, _)| *x == g).ok_or_else(not_found)?;
            let mut body = group_json(g, &sorted_versions(vs));
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            Ok(json_response(StatusCode::OK, &body))
        }
        (Some(g), Some(v)) => Ok(json_response(StatusCode::OK, &resource_list(g, v).ok_or_else(not_found)?)),
        (None, Some(_)) => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        assert_eq!(sorted_versions(vec!["v1", "v2", "v2beta1"]), vec!["v2", "v1", "v2beta1"]);
    }

    #[test]
    fn aggregated_accept() {
        let mk = |a: &str| Request::builder().header("accept", a).body(Bytes::new()).unwrap();
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(&mk(v2)), Some("v2"));
        assert_eq!(
            aggregated_version(&mk(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            )),
            Some("v2beta1")
        );
        assert_eq!(aggregated_version(&mk("application/json")), None);
    }

    #[test]
    fn resource_list_has_subresources() {
        let l = resource_list("apps", "v1").unwrap();
        let names: Vec<&str> = l["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert!(names.contains(&"deployments/scale"));
    }
}
