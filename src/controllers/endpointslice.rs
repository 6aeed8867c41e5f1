//! The EndpointSlice controller: for each Service with a selector, discovery.k8s.io/v1
//! EndpointSlices listing the selected pods (at most 100 endpoints per slice), with their
//! ready/serving/terminating conditions, node, zone and target reference, and the Service's ports
//! resolved per pod (named target ports from the containers' ports). Services without a selector
//! (like `kubernetes`) are left alone. Also the helpers the Endpoints controller shares.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (upstream's).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Most endpoints in one slice (upstream's default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What went wrong reconciling a Service's endpoints.
#[derive(Debug, thiserror::Error)]
#[error("{action} for service {namespace}/{name}: {source}")]
pub struct EndpointsError {
    pub action: &'static str,
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

struct Ctx {
    client: kube::Client,
}

/// A controller over Services, triggered by changes to the pods they select (or selected).
/// Bursts of pod changes are coalesced for 100 ms.
pub(crate) fn service_controller(client: &kube::Client) -> Controller<Service> {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_millis(100)));
    let store = controller.store();
    let pods: Api<Pod> = Api::all(client.clone());
    // pod UID → the Services that selected it last time: a pod whose labels changed may have left
    // a Service's selection, and that Service must hear of it too.
    let mut last = HashMap::<String, Vec<ObjectRef<Service>>>::new();
    let mut seen = HashSet::<String>::new();
    let triggers = watcher::watcher(pods, watcher::Config::default()).default_backoff().map(move |ev| {
        let mut out = Vec::new();
        match ev {
            Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                let now = services_of(&store, &pod);
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                seen.insert(uid.clone());
                out =
                    if now.is_empty() { last.remove(&uid) } else { last.insert(uid, now.clone()) }.unwrap_or_default();
                out.extend(now.into_iter().filter(|r| !out.contains(r)).collect::<Vec<_>>());
            }
            Ok(watcher::Event::Delete(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                out = last.remove(&uid).unwrap_or_default();
                out.extend(services_of(&store, &pod).into_iter().filter(|r| !out.contains(r)).collect::<Vec<_>>());
            }
            Ok(watcher::Event::Init) => seen.clear(),
            Ok(watcher::Event::InitDone) => {
                // Pods gone while the watch was down.
                let gone: Vec<String> = last.keys().filter(|u| !seen.contains(*u)).cloned().collect();
                for u in gone {
                    out.extend(last.remove(&u).unwrap_or_default());
                }
                seen.clear();
            }
            Err(_) => {}
        }
        futures::stream::iter(out)
    });
    controller.reconcile_on(triggers.flatten())
}

/// The Services whose selector matches the pod's labels.
fn services_of(store: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.metadata.namespace.as_deref();
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    store
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| selector(s).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v))))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Run the controller until aborted.
pub async fn run(client: kube::Client) {
    let slices: Api<EndpointSlice> = Api::all(client.clone());
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    service_controller(&client)
        .owns(slices, managed)
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "endpointslice reconcile failed", error = %e);
            }
        })
        .await;
}

fn error_policy(_svc: Arc<Service>, e: &EndpointsError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "endpointslices will be retried", error = %e);
    Action::requeue(Duration::from_secs(1))
}

/// The Service's selector, if it selects pods.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|s| !s.is_empty())
}

/// The pods a Service selects.
pub async fn selected_pods(client: &kube::Client, svc: &Service) -> Result<Vec<Pod>, EndpointsError> {
    let Some(sel) = selector(svc) else { return Ok(Vec::new()) };
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let labels: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut items =
        pods.list(&ListParams::default().labels(&labels.join(","))).await.map_err(|source| EndpointsError {
            action: "listing pods",
            namespace: ns.clone(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
    items.items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(items.items)
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's IPs (podIPs, else podIP).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else { return Vec::new() };
    let mut ips: Vec<String> =
        status.pod_ips.iter().flatten().map(|p| p.ip.clone()).filter(|i| !i.is_empty()).collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone().filter(|i| !i.is_empty()));
    }
    ips
}

/// Upstream's ShouldPodBeInEndpoints: not terminal, has an IP, and (unless terminating pods are
/// included) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The port a Service port reaches on this pod: a numeric targetPort, else the container port
/// of that name and protocol; the Service port itself when no targetPort is set.
pub fn resolve_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The owner reference a Service's slices carry.
pub fn service_owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn family(ip: &str) -> &'static str {
    if ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The slices a Service should have: endpoints grouped by address family and resolved port set,
/// in chunks of at most [`MAX_ENDPOINTS_PER_SLICE`]. `zones` maps node names to their zones.
pub fn desired_slices(
    svc: &Service,
    pods: &[Pod],
    zones: &HashMap<String, String>,
) -> Vec<(String, Vec<EndpointPort>, Vec<Endpoint>)> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let families: Vec<String> =
        spec.ip_families.clone().filter(|f| !f.is_empty()).unwrap_or_else(|| vec!["IPv4".into()]);
    let svc_ports = spec.ports.clone().unwrap_or_default();
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    // (family, ports) → endpoints, in first-seen order.
    let mut groups: Vec<(String, Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|sp| {
                resolve_port(sp, pod).map(|p| EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(p),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let serving = pod_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let pspec = pod.spec.clone().unwrap_or_default();
        for ip in pod_ips(pod) {
            let fam = family(&ip).to_string();
            if !families.contains(&fam) {
                continue;
            }
            let hostname = pspec.hostname.clone().filter(|_| pspec.subdomain.as_deref() == Some(svc_name.as_str()));
            let endpoint = Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(publish_not_ready || (serving && !terminating)),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                hostname,
                node_name: pspec.node_name.clone(),
                zone: pspec.node_name.as_ref().and_then(|n| zones.get(n).cloned()),
                target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                    kind: Some("Pod".into()),
                    namespace: pod.metadata.namespace.clone(),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match groups.iter_mut().find(|(f, p, _)| *f == fam && *p == ports) {
                Some((_, _, eps)) => eps.push(endpoint),
                None => groups.push((fam, ports.clone(), vec![endpoint])),
            }
        }
    }
    let mut out = Vec::new();
    for (fam, ports, eps) in groups {
        for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push((fam.clone(), ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        // Upstream keeps one empty placeholder slice per Service.
        out.push((families[0].clone(), Vec::new(), Vec::new()));
    }
    out
}

/// The zones of the nodes the pods run on.
async fn zones(client: &kube::Client, pods: &[Pod]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut names: Vec<&String> = pods.iter().filter_map(|p| p.spec.as_ref()?.node_name.as_ref()).collect();
    names.sort();
    names.dedup();
    for n in names {
        if let Ok(Some(node)) = nodes.get_opt(n).await {
            if let Some(z) = node.metadata.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)) {
                out.insert(n.clone(), z.clone());
            }
        }
    }
    out
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, EndpointsError> {
    if selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let err = |action: &'static str| {
        let (namespace, name) = (ns.clone(), name.clone());
        move |source| EndpointsError { action, namespace, name, source }
    };
    let pods = selected_pods(&ctx.client, &svc).await?;
    let zones = zones(&ctx.client, &pods).await;
    let desired = desired_slices(&svc, &pods, &zones);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let mut existing = api.list(&lp).await.map_err(err("listing endpointslices"))?.items;
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut labels: BTreeMap<String, String> = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let owner = service_owner(&svc);
    let mut unused: Vec<EndpointSlice> = Vec::new();
    let mut todo = desired;
    // Keep slices that already say what is wanted; reuse the others.
    for slice in existing {
        let owned = slice.metadata.owner_references.iter().flatten().any(|o| o.uid == owner.uid);
        let pos = todo.iter().position(|(f, p, e)| {
            slice.address_type == *f && slice.ports.clone().unwrap_or_default() == *p && slice.endpoints == *e
        });
        match pos {
            Some(i) if owned && slice.metadata.labels.as_ref() == Some(&labels) => {
                todo.remove(i);
            }
            _ => unused.push(slice),
        }
    }
    for (fam, ports, eps) in todo {
        let reuse = unused.iter().position(|s| s.address_type == fam);
        match reuse {
            Some(i) => {
                let mut s = unused.remove(i);
                s.endpoints = eps;
                s.ports = Some(ports);
                s.metadata.labels = Some(labels.clone());
                s.metadata.owner_references = Some(vec![owner.clone()]);
                s.metadata.managed_fields = None;
                let sname = s.metadata.name.clone().unwrap_or_default();
                api.replace(&sname, &PostParams::default(), &s).await.map_err(err("updating an endpointslice"))?;
            }
            None => {
                let mut s =
                    EndpointSlice { address_type: fam, endpoints: eps, ports: Some(ports), ..Default::default() };
                s.metadata.generate_name = Some(format!("{name}-"));
                s.metadata.labels = Some(labels.clone());
                s.metadata.owner_references = Some(vec![owner.clone()]);
                api.create(&PostParams::default(), &s).await.map_err(err("creating an endpointslice"))?;
            }
        }
    }
    for s in unused {
        let sname = s.metadata.name.clone().unwrap_or_default();
        match api.delete(&sname, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err("deleting an endpointslice")(e)),
        }
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The reference slices carry to their Service, for mapping events back.
pub fn service_ref(ns: &str, name: &str) -> ObjectRef<Service> {
    ObjectRef::<Service>::new(name).within(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": ports}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    fn svc(extra: serde_json::Value) -> Service {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "d", "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
        });
        if let Some(m) = extra.as_object() {
            for (k, val) in m {
                v["spec"][k] = val.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn named_ports_conditions_and_grouping() {
        let a = pod("a", "10.0.0.1", true, json!([{"name": "http", "containerPort": 8080}]));
        let b = pod("b", "10.0.0.2", false, json!([{"name": "http", "containerPort": 9090}]));
        let mut c = pod("c", "10.0.0.3", true, json!([{"name": "http", "containerPort": 8080}]));
        c.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        let zones = HashMap::from([("n1".to_string(), "z1".to_string())]);
        let out = desired_slices(&svc(json!({})), &[a, b, c], &zones);
        assert_eq!(out.len(), 2, "two port sets");
        let (fam, ports, eps) = &out[0];
        assert_eq!(fam, "IPv4");
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(eps.len(), 2);
        let cond = |e: &Endpoint| {
            let c = e.conditions.clone().unwrap();
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
        };
        assert_eq!(cond(&eps[0]), (true, true, false));
        assert_eq!(cond(&eps[1]), (false, true, true), "terminating: serving but not ready");
        assert_eq!(eps[0].zone.as_deref(), Some("z1"));
        assert_eq!(eps[0].target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
        assert_eq!(out[1].1[0].port, Some(9090));
        assert_eq!(cond(&out[1].2[0]), (false, false, false));
        // publishNotReadyAddresses: everything ready.
        let b = pod("b", "10.0.0.2", false, json!([{"name": "http", "containerPort": 9090}]));
        let out = desired_slices(&svc(json!({"publishNotReadyAddresses": true})), &[b], &zones);
        assert_eq!(cond(&out[0].2[0]), (true, false, false));
    }

    #[test]
    fn at_most_100_per_slice_and_a_placeholder_when_empty() {
        let pods: Vec<Pod> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    json!([{"name": "http", "containerPort": 80}]),
                )
            })
            .collect();
        let out = desired_slices(&svc(json!({})), &pods, &HashMap::new());
        assert_eq!(out.iter().map(|s| s.2.len()).collect::<Vec<_>>(), vec![100, 100, 50]);
        let empty = desired_slices(&svc(json!({})), &[], &HashMap::new());
        assert_eq!(empty.len(), 1);
        assert!(empty[0].2.is_empty());
        // No IP, or terminal: left out.
        let mut p = pod("x", "", true, json!([]));
        assert!(!should_be_in_endpoints(&p, true));
        p.status.as_mut().unwrap().pod_ip = Some("10.1.1.1".into());
        p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_be_in_endpoints(&p, true));
    }
}
