//! The controllers: level-triggered kube-rs reconcilers over the in-process client, one module per
//! controller. None touches the store.

pub mod common;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod job;
pub mod replicaset;
pub mod statefulset;
pub mod ttl_after_finished;

use tokio::task::JoinHandle;

/// Starts every controller; each runs until its task is aborted.
pub fn spawn_all(client: kube::Client) -> Vec<JoinHandle<()>> {
    vec![
        replicaset::spawn(client.clone()),
        replicaset::spawn_replication_controllers(client.clone()),
        deployment::spawn(client.clone()),
        statefulset::spawn(client.clone()),
        daemonset::spawn(client.clone()),
        job::spawn(client.clone()),
        ttl_after_finished::spawn(client.clone()),
        cronjob::spawn(client.clone()),
    ]
}
