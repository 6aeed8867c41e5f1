//! The controllers: level-triggered kube-rs reconcilers over the in-process client, one module per
//! controller. None touches the store.

use tokio::task::JoinHandle;

/// Starts every controller; each runs until its task is aborted.
pub fn spawn_all(_client: kube::Client) -> Vec<JoinHandle<()>> {
    Vec::new()
}
