//! What exists in every cluster after start: the system namespaces, and the `kubernetes` Service
//! with its Endpoints and EndpointSlice pointing at this API server. Created through the API
//! (the in-process client), so admission and validation apply as to any client.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::ServerError;

pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn ensure<K>(api: &Api<K>, obj: serde_json::Value) -> Result<(), ServerError>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let k: K = serde_json::from_value(obj).map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    match api.create(&PostParams::default(), &k).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(ServerError::Bootstrap(e.to_string())),
    }
}

/// Creates a default ClusterRole, or — as upstream's RBAC reconciliation does for roles annotated
/// `rbac.authorization.kubernetes.io/autoupdate: "true"` — adds the rules a newer kelp gives it
/// (kept: rules an administrator added).
async fn reconcile_role(api: &Api<ClusterRole>, want: serde_json::Value) -> Result<(), ServerError> {
    let name = want["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let existing = api.get_opt(&name).await.map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    let Some(mut have) = existing else { return ensure(api, want).await };
    let autoupdate = have
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("rbac.authorization.kubernetes.io/autoupdate"))
        .is_none_or(|v| v != "false");
    if !autoupdate {
        return Ok(());
    }
    let want: ClusterRole = serde_json::from_value(want).map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    let rules = have.rules.get_or_insert_with(Vec::new);
    let before = rules.len();
    for r in want.rules.unwrap_or_default() {
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    if rules.len() == before {
        return Ok(());
    }
    tracing::info!(message = "adding new default permissions to a cluster role", role = %name);
    match api.replace(&name, &PostParams::default(), &have).await {
        Ok(_) => Ok(()),
        // Changed meanwhile (another server of the cluster reconciling): its copy wins.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(ServerError::Bootstrap(e.to_string())),
    }
}

/// Make the objects every cluster has; idempotent. `endpoint` is where the API server listens.
pub async fn run(client: Client, service_ip: IpAddr, endpoint: IpAddr, port: u16) -> Result<(), ServerError> {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    for r in super::policy::cluster_roles() {
        reconcile_role(&roles, r).await?;
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for b in super::policy::cluster_role_bindings() {
        ensure(&bindings, b).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in SYSTEM_NAMESPACES {
        ensure(&namespaces, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).await?;
    }
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    for (name, value, description) in [
        ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
        ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
    ] {
        let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority"});
        ensure(&classes, pc).await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    ensure(
        &services,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP", "clusterIP": service_ip.to_string(), "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            },
        }),
    )
    .await?;
    // Endpoints follow the address this server runs at now. Loopback is no endpoint (upstream
    // validation refuses it): a host with no other address has none for the service.
    if endpoint.is_loopback() || endpoint.is_unspecified() {
        tracing::warn!(message = "no routable address: the kubernetes service gets no endpoints", address = %endpoint);
        return Ok(());
    }
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": endpoint.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    replace_or_create(&endpoints, "kubernetes", ep).await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let family = if endpoint.is_ipv4() { "IPv4" } else { "IPv6" };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "kelp"}},
        "addressType": family,
        "endpoints": [{"addresses": [endpoint.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    replace_or_create(&slices, "kubernetes", slice).await
}

async fn replace_or_create<K>(api: &Api<K>, name: &str, obj: serde_json::Value) -> Result<(), ServerError>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let mut k: K = serde_json::from_value(obj).map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    match api.get_opt(name).await.map_err(|e| ServerError::Bootstrap(e.to_string()))? {
        None => ensure(api, serde_json::to_value(&k).map_err(|e| ServerError::Bootstrap(e.to_string()))?).await,
        Some(existing) => {
            k.meta_mut().resource_version = existing.meta().resource_version.clone();
            api.replace(name, &PostParams::default(), &k)
                .await
                .map(|_| ())
                .map_err(|e| ServerError::Bootstrap(e.to_string()))
        }
    }
}
