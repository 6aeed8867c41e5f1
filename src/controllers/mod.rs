//! The controllers: level-triggered kube-rs reconcilers over the in-process client, one module per
//! controller. None touches the store.

use tokio::task::JoinHandle;

pub mod disruption;
pub mod node_lifecycle;
pub mod pod_gc;

/// Starts every controller; each runs until its task is aborted.
pub fn spawn_all(client: kube::Client) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(node_lifecycle::run(client.clone(), node_lifecycle::NodeLifecycleConfig::default())),
        tokio::spawn(pod_gc::run(client.clone(), pod_gc::PodGcConfig::default())),
        tokio::spawn(disruption::run(client.clone())),
    ]
}
