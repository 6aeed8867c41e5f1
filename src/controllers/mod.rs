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
    let mut tasks = Vec::new();
    tasks.push(replicaset::spawn(client.clone()));
    tasks.push(deployment::spawn(client.clone()));
    tasks.push(statefulset::spawn(client.clone()));
    tasks.push(daemonset::spawn(client.clone()));
    tasks.push(job::spawn(client.clone()));
    tasks.push(ttl_after_finished::spawn(client.clone()));
    tasks.push(cronjob::spawn(client.clone()));
    tasks
}
