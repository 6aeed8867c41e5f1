//! The controllers: level-triggered kube-rs reconcilers over the in-process client, one module per
//! controller. None touches the store.

pub mod common;
pub mod deployment;
pub mod replicaset;

use tokio::task::JoinHandle;

/// Starts every controller; each runs until its task is aborted.
pub fn spawn_all(client: kube::Client) -> Vec<JoinHandle<()>> {
    vec![replicaset::spawn(client.clone()), deployment::spawn(client.clone())]
}
