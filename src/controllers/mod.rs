//! The controllers: level-triggered kube-rs reconcilers over the in-process client, one module per
//! controller. None touches the store.

pub mod garbage_collector;
pub mod resources;

use tokio::task::JoinHandle;

/// What the controllers need to know about the cluster besides the API.
#[derive(Debug, Clone, Default)]
pub struct ClusterInfo {
    /// The cluster CA certificate (PEM), published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: String,
}

/// Starts every controller; each runs until its task is aborted.
pub fn spawn_all(client: kube::Client, cluster: ClusterInfo) -> Vec<JoinHandle<()>> {
    let _ = &cluster;
    vec![tokio::spawn(garbage_collector::run(client.clone()))]
}
