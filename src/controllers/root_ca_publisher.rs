//! The root CA publisher: every active namespace has the `kube-root-ca.crt` ConfigMap holding
//! the cluster CA (`ca.crt`), restored if changed or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::service_account::active;

/// The ConfigMap's name.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What went wrong publishing the CA in a namespace.
#[derive(Debug, thiserror::Error)]
#[error("publishing {ROOT_CA_CONFIGMAP} in {namespace}: {source}")]
pub struct RootCaError {
    namespace: String,
    #[source]
    source: kube::Error,
}

struct Ctx {
    client: kube::Client,
    ca_pem: String,
}

/// Run the publisher until aborted.
pub async fn run(client: kube::Client, ca_pem: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let configmaps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(configmaps, only_ours, |cm: ConfigMap| {
            cm.metadata.namespace.map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .run(reconcile, error_policy, Arc::new(Ctx { client, ca_pem }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "root CA reconcile failed", error = %e);
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &RootCaError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "root CA publishing will be retried", error = %e);
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, RootCaError> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    if !active(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let err = |source| RootCaError { namespace: name.clone(), source };
    let data = BTreeMap::from([("ca.crt".to_string(), ctx.ca_pem.clone())]);
    let result = match api.get_opt(ROOT_CA_CONFIGMAP).await.map_err(err)? {
        None => {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(ROOT_CA_CONFIGMAP.into());
            cm.metadata.annotations = Some(BTreeMap::from([(DESCRIPTION_KEY.into(), DESCRIPTION.into())]));
            cm.data = Some(data);
            api.create(&PostParams::default(), &cm).await.map(|_| ())
        }
        Some(mut cm) => {
            let described = cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_KEY)).is_some();
            if cm.data.as_ref() == Some(&data) && cm.binary_data.is_none() && described {
                return Ok(Action::await_change());
            }
            cm.data = Some(data);
            cm.binary_data = None;
            cm.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(DESCRIPTION_KEY.into(), DESCRIPTION.into());
            cm.metadata.managed_fields = None;
            api.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &cm).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        // Raced with another writer (retried from the next event), or the namespace is going.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(err(e)),
    }
}
