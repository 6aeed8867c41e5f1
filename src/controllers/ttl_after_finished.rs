//! The TTL-after-finished controller: deletes a finished Job (Complete or Failed)
//! `ttlSecondsAfterFinished` seconds after it finished. The deletion is in the background (the
//! garbage collector removes the pods; upstream asks for foreground deletion).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx};
use super::job::finished;

/// Starts the TTL-after-finished controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    common::spawn("ttl-after-finished", client, controller, reconcile)
}

async fn reconcile(obj: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let Some(ttl) = obj.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some((_, Some(done))) = finished(&obj) else { return Ok(Action::await_change()) };
    let expire_ms = done.as_millisecond() + i64::from(ttl) * 1000;
    let left = expire_ms - common::now().as_millisecond();
    if left > 0 {
        return Ok(Action::requeue(Duration::from_millis(left as u64 + 10)));
    }
    // Re-read: the TTL may have changed since the cached copy.
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    if fresh.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) != Some(ttl) {
        return Ok(Action::requeue(Duration::from_millis(10)));
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: fresh.uid(), resource_version: fresh.resource_version() }),
        ..DeleteParams::background()
    };
    tracing::info!(message = "deleting finished job after its ttl", job = %fresh.name_any(), ttl_seconds = ttl);
    common::delete_ignore_missing(&api, &fresh.name_any(), &dp).await?;
    Ok(Action::await_change())
}
