//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount,
//! recreated if deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What went wrong ensuring a namespace's ServiceAccount.
#[derive(Debug, thiserror::Error)]
#[error("creating the default ServiceAccount in {namespace}: {source}")]
pub struct ServiceAccountError {
    namespace: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
}

/// Run the controller until aborted.
pub async fn run(client: kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let only_default = watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, only_default, |sa: ServiceAccount| {
            sa.metadata.namespace.map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "service account reconcile failed", error = %e);
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &ServiceAccountError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "default service account will be retried", error = %e);
    Action::requeue(Duration::from_secs(2))
}

/// Whether a namespace takes new objects.
pub fn active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Active")
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ServiceAccountError> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    if !active(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let err = |source| ServiceAccountError { namespace: name.clone(), source };
    if api.get_opt(DEFAULT_SERVICE_ACCOUNT).await.map_err(err)?.is_some() {
        return Ok(Action::await_change());
    }
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}))
        .expect("a well-formed ServiceAccount");
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(Action::await_change()),
        // Exists already, or the namespace started terminating meanwhile.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(err(e)),
    }
}
