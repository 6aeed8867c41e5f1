//! Admission: LimitRange (container defaults, min/max/maxLimitRequestRatio) and ResourceQuota
//! (usage of a new object checked against every quota of its namespace, then charged to the
//! quotas' `status.used`), as upstream's plugins, with upstream's messages. The usage functions
//! are shared with the quota controller, which recomputes `status.used` from the objects.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::api::status::StatusError;
use crate::api::validation::{canonical_quantity, parse_quantity, Quantity, QuantityFormat};

/// A resource list: resource name → quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

fn q(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => parse_quantity(&n.to_string()),
        _ => None,
    }
}

/// A JSON resource list (`{"cpu": "100m"}`) parsed; unparsable entries are left out.
pub fn resource_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| q(v).map(|q| (k.clone(), q))).collect())
        .unwrap_or_default()
}

/// `a + b`, keeping `a`'s format (upstream's Quantity.Add).
pub fn add(a: Quantity, b: Quantity) -> Quantity {
    Quantity { nanos: a.nanos + b.nanos, format: if a.nanos == 0 { b.format } else { a.format } }
}

fn zero() -> Quantity {
    Quantity { nanos: 0, format: QuantityFormat::DecimalSi }
}

fn one() -> Quantity {
    Quantity { nanos: 1_000_000_000, format: QuantityFormat::DecimalSi }
}

/// Upstream's prettyPrint of a resource list: sorted `name=quantity` joined by commas.
pub fn pretty(list: &ResourceList) -> String {
    list.iter().map(|(k, v)| format!("{k}={}", canonical_quantity(v))).collect::<Vec<_>>().join(",")
}

// ---------------------------------------------------------------------------------------------
// Pod resources

/// The containers' requests or limits summed, at least the largest init container's (upstream's
/// PodRequests / PodLimits without overhead).
pub fn pod_resources(pod: &Value, field: &str) -> ResourceList {
    let mut sum = ResourceList::new();
    for c in pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
        for (k, v) in resource_list(c.pointer(&format!("/resources/{field}"))) {
            let cur = sum.remove(&k).unwrap_or_else(zero);
            sum.insert(k, add(cur, v));
        }
    }
    for c in pod.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten() {
        for (k, v) in resource_list(c.pointer(&format!("/resources/{field}"))) {
            if sum.get(&k).is_none_or(|s| s.nanos < v.nanos) {
                sum.insert(k, v);
            }
        }
    }
    sum
}

fn pod_terminal(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded") | Some("Failed"))
}

// ---------------------------------------------------------------------------------------------
// ResourceQuota usage

/// What one object counts against quota: `count/<resource>[.<group>]` for every kind, plus the
/// legacy names and compute resources for pods, services, PVCs and the other core kinds.
pub fn usage(group: &str, plural: &str, obj: &Value) -> ResourceList {
    let mut u = ResourceList::new();
    if group.is_empty() && plural == "pods" && pod_terminal(obj) {
        return u;
    }
    let count = if group.is_empty() { format!("count/{plural}") } else { format!("count/{plural}.{group}") };
    u.insert(count, one());
    if !group.is_empty() {
        return u;
    }
    match plural {
        "pods" => {
            u.insert("pods".into(), one());
            let requests = pod_resources(obj, "requests");
            let limits = pod_resources(obj, "limits");
            for (k, v) in &requests {
                u.insert(format!("requests.{k}"), *v);
                if matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                    u.insert(k.clone(), *v);
                }
            }
            for (k, v) in &limits {
                u.insert(format!("limits.{k}"), *v);
            }
        }
        "services" => {
            u.insert("services".into(), one());
            let t = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
            let node_ports = obj.pointer("/spec/ports").and_then(Value::as_array).map_or(0, |p| {
                p.iter().filter(|p| p.get("nodePort").is_some_and(|n| n.as_i64().unwrap_or(0) > 0)).count()
            });
            if t == "NodePort" || t == "LoadBalancer" {
                let n = if node_ports > 0 {
                    node_ports
                } else {
                    obj.pointer("/spec/ports").and_then(Value::as_array).map_or(0, |p| p.len())
                };
                u.insert(
                    "services.nodeports".into(),
                    Quantity { nanos: n as i128 * 1_000_000_000, format: QuantityFormat::DecimalSi },
                );
            }
            if t == "LoadBalancer" {
                u.insert("services.loadbalancers".into(), one());
            }
        }
        "persistentvolumeclaims" => {
            u.insert("persistentvolumeclaims".into(), one());
            if let Some(s) = obj.pointer("/spec/resources/requests/storage").and_then(q) {
                u.insert("requests.storage".into(), s);
                if let Some(class) = obj.pointer("/spec/storageClassName").and_then(Value::as_str) {
                    u.insert(format!("{class}.storageclass.storage.k8s.io/requests.storage"), s);
                    u.insert(format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"), one());
                }
            }
        }
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
            u.insert(plural.into(), one());
        }
        _ => {}
    }
    u
}

/// Whether a pod is in a quota's scopes (Terminating, NotTerminating, BestEffort, NotBestEffort,
/// PriorityClass through scopeSelector). Scoped quotas track pods only.
pub fn in_scope(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let mut scopes: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota.pointer("/spec/scopeSelector/matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string);
        scopes.push((
            e.get("scopeName").and_then(Value::as_str).unwrap_or_default().to_string(),
            e.get("operator").and_then(Value::as_str).unwrap_or_default().to_string(),
            values.collect(),
        ));
    }
    if scopes.is_empty() {
        return true;
    }
    if !(group.is_empty() && plural == "pods") {
        return false;
    }
    let terminating = obj.pointer("/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null());
    let best_effort = pod_resources(obj, "requests").is_empty() && pod_resources(obj, "limits").is_empty();
    let priority = obj.pointer("/spec/priorityClassName").and_then(Value::as_str).unwrap_or("");
    scopes.iter().all(|(scope, op, values)| {
        let has = match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => match op.as_str() {
                "In" => return values.iter().any(|v| v == priority),
                "NotIn" => return !values.iter().any(|v| v == priority),
                "DoesNotExist" => return priority.is_empty(),
                _ => !priority.is_empty(),
            },
            _ => false,
        };
        if op == "DoesNotExist" {
            !has
        } else {
            has
        }
    })
}

/// The part of `usage` a quota limits.
pub fn tracked(quota: &Value, usage: &ResourceList) -> ResourceList {
    let hard = resource_list(quota.pointer("/spec/hard"));
    usage.iter().filter(|(k, _)| hard.contains_key(*k)).map(|(k, v)| (k.clone(), *v)).collect()
}

/// Check `delta` against one quota; on success returns the quota's new `status.used`.
pub fn charge(quota: &Value, delta: &ResourceList) -> Result<Value, String> {
    let name = quota.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let hard = resource_list(quota.pointer("/spec/hard"));
    let used_json = quota.pointer("/status/used").and_then(Value::as_object);
    let used = resource_list(quota.pointer("/status/used"));
    let (mut requested, mut used_x, mut limited) = (ResourceList::new(), ResourceList::new(), ResourceList::new());
    for (k, d) in delta {
        let Some(h) = hard.get(k) else { continue };
        let Some(u) = used.get(k).copied().or_else(|| used_json.is_some_and(|m| m.contains_key(k)).then(zero)) else {
            return Err(format!("status unknown for quota: {name}, resource: {k}"));
        };
        if u.nanos + d.nanos > h.nanos {
            requested.insert(k.clone(), *d);
            used_x.insert(k.clone(), u);
            limited.insert(k.clone(), *h);
        }
    }
    if !requested.is_empty() {
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            pretty(&requested),
            pretty(&used_x),
            pretty(&limited)
        ));
    }
    let mut new_used: Map<String, Value> = used_json.cloned().unwrap_or_default();
    for (k, d) in delta {
        if hard.contains_key(k) {
            let u = used.get(k).copied().unwrap_or_else(zero);
            new_used.insert(k.clone(), json!(canonical_quantity(&add(u, *d))));
        }
    }
    Ok(Value::Object(new_used))
}

// ---------------------------------------------------------------------------------------------
// LimitRange

const RESOURCES_FIELDS: [&str; 2] = ["containers", "initContainers"];

/// Apply the Container defaults of `ranges` to a pod: missing limits from `default`, missing
/// requests from `defaultRequest`; records what was set in the `kubernetes.io/limit-ranger`
/// annotation as upstream.
pub fn default_pod(pod: &mut Value, ranges: &[Value]) {
    let mut notes: Vec<String> = Vec::new();
    for lr in ranges {
        for item in lr.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten() {
            if item.get("type").and_then(Value::as_str) != Some("Container") {
                continue;
            }
            let defaults = item.get("default").and_then(Value::as_object).cloned().unwrap_or_default();
            let default_requests = item.get("defaultRequest").and_then(Value::as_object).cloned().unwrap_or_default();
            for field in RESOURCES_FIELDS {
                let Some(cs) = pod.pointer_mut(&format!("/spec/{field}")).and_then(Value::as_array_mut) else {
                    continue;
                };
                for c in cs.iter_mut() {
                    let cname = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    let res = c.as_object_mut().and_then(|c| {
                        let r = c.entry("resources").or_insert_with(|| json!({}));
                        if r.is_null() {
                            *r = json!({});
                        }
                        r.as_object_mut()
                    });
                    let Some(res) = res else { continue };
                    let (mut set_req, mut set_lim) = (Vec::new(), Vec::new());
                    for (which, defaults, set) in
                        [("limits", &defaults, &mut set_lim), ("requests", &default_requests, &mut set_req)]
                    {
                        for (k, v) in defaults {
                            let list = res.entry(which).or_insert_with(|| json!({}));
                            if list.is_null() {
                                *list = json!({});
                            }
                            let Some(list) = list.as_object_mut() else { continue };
                            if !list.contains_key(k) {
                                list.insert(k.clone(), v.clone());
                                set.push(k.clone());
                            }
                        }
                    }
                    if !set_req.is_empty() {
                        notes.push(format!("{} request for {} {cname}", set_req.join(", "), container_word(field)));
                    }
                    if !set_lim.is_empty() {
                        notes.push(format!("{} limit for {} {cname}", set_lim.join(", "), container_word(field)));
                    }
                }
            }
        }
    }
    if !notes.is_empty() {
        let m = pod.as_object_mut().and_then(|p| p.entry("metadata").or_insert_with(|| json!({})).as_object_mut());
        if let Some(m) = m {
            let a = m.entry("annotations").or_insert_with(|| json!({}));
            if a.is_null() {
                *a = json!({});
            }
            if let Some(a) = a.as_object_mut() {
                a.insert(
                    "kubernetes.io/limit-ranger".into(),
                    json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
                );
            }
        }
    }
}

fn container_word(field: &str) -> &'static str {
    if field == "initContainers" {
        "init container"
    } else {
        "container"
    }
}

/// Check a pod or PVC against `ranges`; the errors are upstream's messages.
pub fn validate_limits(plural: &str, obj: &Value, ranges: &[Value]) -> Vec<String> {
    let mut errs = Vec::new();
    for lr in ranges {
        for item in lr.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten() {
            let t = item.get("type").and_then(Value::as_str).unwrap_or_default();
            let min = resource_list(item.get("min"));
            let max = resource_list(item.get("max"));
            let ratio = resource_list(item.get("maxLimitRequestRatio"));
            let mut check = |kind: &str, req: &ResourceList, lim: &ResourceList| {
                for (k, e) in &min {
                    if let Err(m) = min_constraint(kind, k, e, req, lim) {
                        errs.push(m);
                    }
                }
                for (k, e) in &max {
                    if let Err(m) = max_constraint(kind, k, e, req, lim) {
                        errs.push(m);
                    }
                }
                for (k, e) in &ratio {
                    if let Err(m) = ratio_constraint(kind, k, e, req, lim) {
                        errs.push(m);
                    }
                }
            };
            match (plural, t) {
                ("pods", "Container") => {
                    for field in RESOURCES_FIELDS {
                        for c in obj.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten()
                        {
                            let req = resource_list(c.pointer("/resources/requests"));
                            let lim = resource_list(c.pointer("/resources/limits"));
                            check("Container", &req, &lim);
                        }
                    }
                }
                ("pods", "Pod") => {
                    check("Pod", &pod_resources(obj, "requests"), &pod_resources(obj, "limits"));
                }
                ("persistentvolumeclaims", "PersistentVolumeClaim") => {
                    let req = resource_list(obj.pointer("/spec/resources/requests"));
                    let lim = resource_list(obj.pointer("/spec/resources/limits"));
                    check("PersistentVolumeClaim", &req, &lim);
                }
                _ => {}
            }
        }
    }
    errs
}

fn min_constraint(kind: &str, r: &str, e: &Quantity, req: &ResourceList, lim: &ResourceList) -> Result<(), String> {
    let es = canonical_quantity(e);
    let Some(rq) = req.get(r) else {
        return Err(format!("minimum {r} usage per {kind} is {es}.  No request is specified"));
    };
    if rq.nanos < e.nanos {
        return Err(format!("minimum {r} usage per {kind} is {es}, but request is {}", canonical_quantity(rq)));
    }
    if let Some(l) = lim.get(r).filter(|l| l.nanos < e.nanos) {
        return Err(format!("minimum {r} usage per {kind} is {es}, but limit is {}", canonical_quantity(l)));
    }
    Ok(())
}

fn max_constraint(kind: &str, r: &str, e: &Quantity, req: &ResourceList, lim: &ResourceList) -> Result<(), String> {
    let es = canonical_quantity(e);
    let Some(l) = lim.get(r) else {
        return Err(format!("maximum {r} usage per {kind} is {es}.  No limit is specified"));
    };
    if l.nanos > e.nanos {
        return Err(format!("maximum {r} usage per {kind} is {es}, but limit is {}", canonical_quantity(l)));
    }
    if let Some(rq) = req.get(r).filter(|rq| rq.nanos > e.nanos) {
        return Err(format!("maximum {r} usage per {kind} is {es}, but request is {}", canonical_quantity(rq)));
    }
    Ok(())
}

fn ratio_constraint(kind: &str, r: &str, e: &Quantity, req: &ResourceList, lim: &ResourceList) -> Result<(), String> {
    let es = canonical_quantity(e);
    let Some(rq) = req.get(r).filter(|q| q.nanos != 0) else {
        return Err(format!(
            "{r} max limit to request ratio per {kind} is {es}, but no request is specified or request is 0"
        ));
    };
    let Some(l) = lim.get(r).filter(|q| q.nanos != 0) else {
        return Err(format!(
            "{r} max limit to request ratio per {kind} is {es}, but no limit is specified or limit is 0"
        ));
    };
    let observed = l.nanos as f64 / rq.nanos as f64;
    let max = e.nanos as f64 / 1e9;
    if observed > max {
        return Err(format!("{r} max limit to request ratio per {kind} is {es}, but provided ratio is {observed:.6}"));
    }
    Ok(())
}

/// Upstream's aggregate of errors: one message as is, several in brackets.
pub fn aggregate(errs: &[String]) -> String {
    if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

/// A 403 `<resource> "<name>" is forbidden: <message>` as admission plugins answer.
pub fn forbidden(group: &str, plural: &str, name: &str, message: &str) -> StatusError {
    let resource = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
    let mut e = StatusError::forbidden(format!("{resource} \"{name}\" is forbidden: {message}"));
    e.details = Some(json!({"name": name, "kind": plural}));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn pod_usage_sums_containers_and_counts() {
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
        ]));
        let u = usage("", "pods", &p);
        let s = |k: &str| canonical_quantity(&u[k]);
        assert_eq!(s("pods"), "1");
        assert_eq!(s("count/pods"), "1");
        assert_eq!(s("requests.cpu"), "500m");
        assert_eq!(s("cpu"), "500m");
        assert_eq!(s("requests.memory"), "128Mi");
        assert_eq!(s("limits.cpu"), "500m");
        let mut done = p.clone();
        done["status"] = json!({"phase": "Succeeded"});
        assert!(usage("", "pods", &done).is_empty());
        assert_eq!(canonical_quantity(&usage("apps", "deployments", &json!({}))["count/deployments.apps"]), "1");
    }

    #[test]
    fn quota_message_is_upstreams() {
        let quota = json!({"metadata": {"name": "q1"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"}},
            "status": {"hard": {"pods": "2", "requests.cpu": "1"}, "used": {"pods": "2", "requests.cpu": "600m"}}});
        let p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]));
        let delta = tracked(&quota, &usage("", "pods", &p));
        assert_eq!(
            charge(&quota, &delta).unwrap_err(),
            "exceeded quota: q1, requested: pods=1,requests.cpu=500m, used: pods=2,requests.cpu=600m, limited: pods=2,requests.cpu=1"
        );
        let ok =
            json!({"metadata": {"name": "q1"}, "spec": {"hard": {"pods": "3"}}, "status": {"used": {"pods": "1"}}});
        assert_eq!(charge(&ok, &tracked(&ok, &usage("", "pods", &p))).unwrap(), json!({"pods": "2"}));
        let unknown = json!({"metadata": {"name": "q2"}, "spec": {"hard": {"pods": "3"}}});
        assert_eq!(
            charge(&unknown, &tracked(&unknown, &usage("", "pods", &p))).unwrap_err(),
            "status unknown for quota: q2, resource: pods"
        );
    }

    #[test]
    fn scopes() {
        let be = pod(json!([{"name": "a"}]));
        let nbe = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        let q = json!({"spec": {"scopes": ["BestEffort"]}});
        assert!(in_scope(&q, "", "pods", &be));
        assert!(!in_scope(&q, "", "pods", &nbe));
        assert!(!in_scope(&q, "", "services", &be));
        let pc = json!({"spec": {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let mut high = be.clone();
        high["spec"]["priorityClassName"] = json!("high");
        assert!(in_scope(&pc, "", "pods", &high));
        assert!(!in_scope(&pc, "", "pods", &be));
    }

    #[test]
    fn limit_range_defaults_and_messages() {
        let lr = json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "min": {"cpu": "50m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "5"}}]}});
        let mut p = pod(json!([{"name": "app", "resources": {"limits": {"memory": "512Mi"}}}]));
        default_pod(&mut p, std::slice::from_ref(&lr));
        let r = &p["spec"]["containers"][0]["resources"];
        assert_eq!(r["limits"], json!({"cpu": "500m", "memory": "512Mi"}));
        assert_eq!(r["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
        assert_eq!(
            p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
            "LimitRanger plugin set: cpu, memory request for container app; cpu limit for container app"
        );
        assert!(validate_limits("pods", &p, std::slice::from_ref(&lr)).is_empty());

        let big = pod(json!([{"name": "c", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}}]));
        assert_eq!(
            validate_limits("pods", &big, std::slice::from_ref(&lr)),
            vec!["maximum cpu usage per Container is 1, but limit is 2"]
        );
        let small = pod(json!([{"name": "c", "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "1"}}}]));
        let errs = validate_limits("pods", &small, std::slice::from_ref(&lr));
        assert_eq!(
            aggregate(&errs),
            "[minimum cpu usage per Container is 50m, but request is 10m, cpu max limit to request ratio per Container is 5, but provided ratio is 100.000000]"
        );
    }
}
