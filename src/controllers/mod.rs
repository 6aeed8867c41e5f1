//! The controllers: level-triggered kube-rs reconcilers over the in-process client, one module per
//! controller. None touches the store.

pub mod common;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbage_collector;
pub mod horizontal_pod_autoscaler;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod pod_gc;
pub mod replicaset;
pub mod resource_quota;
pub mod resources;
pub mod root_ca_publisher;
pub mod service_account;
pub mod statefulset;
pub mod ttl_after_finished;

use tokio::task::JoinHandle;

/// What the controllers need to know about the cluster besides the API.
#[derive(Debug, Clone, Default)]
pub struct ClusterInfo {
    /// The cluster CA certificate (PEM), published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: String,
}

/// Starts every controller; each runs until its task is aborted.
pub fn spawn_all(client: kube::Client, cluster: ClusterInfo) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(garbage_collector::run(client.clone())),
        tokio::spawn(namespace::run(client.clone())),
        tokio::spawn(endpointslice::run(client.clone())),
        tokio::spawn(endpoints::run(client.clone())),
        tokio::spawn(resource_quota::run(client.clone())),
        tokio::spawn(horizontal_pod_autoscaler::run(client.clone())),
        tokio::spawn(service_account::run(client.clone())),
        tokio::spawn(root_ca_publisher::run(client.clone(), cluster.root_ca_pem.clone())),
        replicaset::spawn(client.clone()),
        replicaset::spawn_replication_controllers(client.clone()),
        deployment::spawn(client.clone()),
        statefulset::spawn(client.clone()),
        daemonset::spawn(client.clone()),
        job::spawn(client.clone()),
        ttl_after_finished::spawn(client.clone()),
        cronjob::spawn(client.clone()),
        tokio::spawn(node_lifecycle::run(client.clone(), node_lifecycle::NodeLifecycleConfig::default())),
        tokio::spawn(pod_gc::run(client.clone(), pod_gc::PodGcConfig::default())),
        tokio::spawn(disruption::run(client.clone())),
    ]
}
