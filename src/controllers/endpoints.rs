//! The Endpoints controller: core/v1 Endpoints for each Service with a selector, named like the
//! Service: subsets grouping addresses by their resolved port set, ready pods in `addresses`,
//! others in `notReadyAddresses` (all ready with `publishNotReadyAddresses`). The `kubernetes`
//! Service has no selector: its Endpoints stay the API server's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, WatchStreamExt};

use super::endpointslice::{
    pod_ips, pod_ready, resolve_port, selected_pods, selector, service_controller, service_ref, should_be_in_endpoints,
    EndpointsError,
};

struct Ctx {
    client: kube::Client,
}

/// The annotation marking Endpoints this controller wrote (upstream's).
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Run the controller until aborted.
pub async fn run(client: kube::Client) {
    tokio::join!(reconcile_all(client.clone()), prune(client));
}

/// Delete the Endpoints this controller wrote for Services that are gone.
async fn prune(client: kube::Client) {
    let services: Api<Service> = Api::all(client.clone());
    let mut stream = watcher::watcher(services.clone(), watcher::Config::default()).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        let gone: Vec<(String, String)> = match ev {
            Ok(watcher::Event::Delete(svc)) => {
                vec![(svc.metadata.namespace.unwrap_or_default(), svc.metadata.name.unwrap_or_default())]
            }
            Ok(watcher::Event::InitDone) => {
                // Left over from Services deleted while nobody watched.
                let all: Api<Endpoints> = Api::all(client.clone());
                let Ok(eps) = all.list(&ListParams::default()).await else { continue };
                let mut out = Vec::new();
                for ep in eps.items {
                    let (Some(ns), Some(name)) = (ep.metadata.namespace.clone(), ep.metadata.name.clone()) else {
                        continue;
                    };
                    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
                    if ep.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(TRIGGER_TIME))
                        && matches!(api.get_opt(&name).await, Ok(None))
                    {
                        out.push((ns, name));
                    }
                }
                out
            }
            _ => continue,
        };
        for (ns, name) in gone {
            let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
            let ours = matches!(api.get_opt(&name).await, Ok(Some(ep))
                if ep.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(TRIGGER_TIME)));
            if ours {
                if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                    tracing::debug!(message = "deleting endpoints of a deleted service failed", error = %e);
                }
            }
        }
    }
}

async fn reconcile_all(client: kube::Client) {
    let endpoints: Api<Endpoints> = Api::all(client.clone());
    service_controller(&client)
        .watches(endpoints, watcher::Config::default(), |ep: Endpoints| {
            Some(service_ref(ep.metadata.namespace.as_deref()?, ep.metadata.name.as_deref()?))
        })
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "endpoints reconcile failed", error = %e);
            }
        })
        .await;
}

fn error_policy(_svc: Arc<Service>, e: &EndpointsError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "endpoints will be retried", error = %e);
    Action::requeue(Duration::from_secs(1))
}

/// The subsets a Service's Endpoints should have.
pub fn desired_subsets(svc: &Service, pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let svc_ports = spec.ports.clone().unwrap_or_default();
    // port set → (ready, not ready)
    let mut groups: Vec<(Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>)> = Vec::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let mut ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|sp| {
                resolve_port(sp, pod).map(|p| EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: p,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        if ports.is_empty() && !svc_ports.is_empty() {
            continue;
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.port.cmp(&b.port)));
        let pspec = pod.spec.clone().unwrap_or_default();
        let Some(ip) = pod_ips(pod).into_iter().next() else { continue };
        let address = EndpointAddress {
            ip,
            hostname: pspec.hostname.clone().filter(|_| pspec.subdomain.as_deref() == Some(svc_name.as_str())),
            node_name: pspec.node_name.clone(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let ready = publish_not_ready || pod_ready(pod);
        let i = match groups.iter().position(|(p, _, _)| *p == ports) {
            Some(i) => i,
            None => {
                groups.push((ports, Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        if ready {
            groups[i].1.push(address);
        } else {
            groups[i].2.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: Some(ready).filter(|a| !a.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|a| !a.is_empty()),
                ports: Some(ports).filter(|p| !p.is_empty()),
            }
        })
        .collect()
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
    let subsets = desired_subsets(&svc, &pods);
    let mut labels: BTreeMap<String, String> = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let current = api.get_opt(&name).await.map_err(err("reading endpoints"))?;
    let subsets = Some(subsets).filter(|s| !s.is_empty());
    let result = match current {
        Some(mut ep) => {
            let same_labels = ep.metadata.labels.clone().unwrap_or_default() == labels;
            if ep.subsets == subsets && same_labels {
                return Ok(Action::requeue(Duration::from_secs(300)));
            }
            ep.subsets = subsets;
            ep.metadata.labels = Some(labels);
            ep.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(TRIGGER_TIME.into(), now());
            ep.metadata.managed_fields = None;
            api.replace(&name, &PostParams::default(), &ep).await
        }
        None => {
            let mut ep = Endpoints { subsets, ..Default::default() };
            ep.metadata.name = Some(name.clone());
            ep.metadata.labels = Some(labels);
            ep.metadata.annotations = Some(BTreeMap::from([(TRIGGER_TIME.to_string(), now())]));
            api.create(&PostParams::default(), &ep).await
        }
    };
    match result {
        Ok(_) => Ok(Action::requeue(Duration::from_secs(300))),
        Err(e) => Err(err("writing endpoints")(e)),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let pod = |name: &str, ip: &str, ready: bool| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "web", "containerPort": 8080}]}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
            }))
            .unwrap()
        };
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "d"},
            "spec": {"selector": {"a": "b"}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
        }))
        .unwrap();
        let subsets = desired_subsets(&svc, &[pod("x", "10.0.0.2", true), pod("y", "10.0.0.1", false)]);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        assert_eq!(s.addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(s.not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
        let p = &s.ports.as_ref().unwrap()[0];
        assert_eq!((p.name.as_deref(), p.port, p.protocol.as_deref()), (Some("http"), 8080, Some("TCP")));
    }
}
