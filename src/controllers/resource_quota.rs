//! The ResourceQuota controller: recomputes each quota's `status.hard` and `status.used` from the
//! objects in its namespace (the admission plugin charges new objects as they come; this
//! corrects for deletions, failed creates and terminal pods). Triggered by the quota and by
//! deletions of pods (or pods turning terminal), services, ConfigMaps, Secrets and PVCs in
//! its namespace; everything is recounted every 5 minutes.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{PredicateConfig, WatchStreamExt};
use serde_json::{json, Value};

use crate::api::validation::{canonical_quantity, Quantity, QuantityFormat};
use crate::apiserver::admission::{self, add, resource_list, ResourceList};

use super::resources;

/// What went wrong computing a quota's usage.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// An API call failed.
    #[error("{action} for quota {namespace}/{name}: {source}")]
    Api {
        action: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    client: kube::Client,
}

fn quotas_in(store: &Store<ResourceQuota>, ns: Option<&str>) -> Vec<ObjectRef<ResourceQuota>> {
    store
        .state()
        .iter()
        .filter(|q| q.metadata.namespace.as_deref() == ns)
        .map(|q| ObjectRef::from_obj(q.as_ref()))
        .collect()
}

/// Run the controller until aborted.
///
/// As upstream, usage is recomputed when a quota's spec changes (not when admission charges its
/// status: a recount racing with a charged but not yet committed create would undercount), when
/// objects go (deleted, or pods turning terminal), and every 5 minutes.
pub async fn run(client: kube::Client) {
    let quotas: Api<ResourceQuota> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let spec_changes = watcher(quotas, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_hash, PredicateConfig::default());
    let store = reader.clone();
    Controller::for_stream(spec_changes, reader)
        .reconcile_on(replenish(Api::<Pod>::all(client.clone()), store.clone(), |p: &Pod| {
            matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded") | Some("Failed"))
        }))
        .reconcile_on(replenish(Api::<Service>::all(client.clone()), store.clone(), |_: &Service| false))
        .reconcile_on(replenish(Api::<ConfigMap>::all(client.clone()), store.clone(), |_: &ConfigMap| false))
        .reconcile_on(replenish(Api::<Secret>::all(client.clone()), store.clone(), |_: &Secret| false))
        .reconcile_on(replenish(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            store,
            |_: &PersistentVolumeClaim| false,
        ))
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "resource quota reconcile failed", error = %e);
            }
        })
        .await;
}

/// What a recount depends on in the quota itself: its spec, and whether its status is complete.
fn spec_hash(q: &ResourceQuota) -> Option<u64> {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&q.spec).unwrap_or_default().hash(&mut h);
    let status = q.status.as_ref();
    let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
    (status.and_then(|s| s.hard.as_ref()) == hard).hash(&mut h);
    let used = status.and_then(|s| s.used.as_ref());
    hard.into_iter().flatten().all(|(k, _)| used.is_some_and(|u| u.contains_key(k))).hash(&mut h);
    Some(h.finish())
}

/// The quotas of the namespaces where objects of `api` went away (deleted, or `frees`).
fn replenish<K>(
    api: Api<K>,
    store: Store<ResourceQuota>,
    frees: fn(&K) -> bool,
) -> impl futures::Stream<Item = ObjectRef<ResourceQuota>> + Send + 'static
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |ev| {
            let refs = match ev {
                Ok(watcher::Event::Delete(o)) => quotas_in(&store, o.meta().namespace.as_deref()),
                Ok(watcher::Event::Apply(o)) if frees(&o) => quotas_in(&store, o.meta().namespace.as_deref()),
                _ => Vec::new(),
            };
            futures::stream::iter(refs)
        })
        .flatten()
}

fn error_policy(_q: Arc<ResourceQuota>, e: &QuotaError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "resource quota will be retried", error = %e);
    Action::requeue(Duration::from_secs(5))
}

/// The (group, plural) whose objects a quota entry counts.
fn counted_resource(key: &str) -> (String, String) {
    if let Some(rest) = key.strip_prefix("count/") {
        return match rest.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), rest.to_string()),
        };
    }
    let plural = match key {
        "services" | "services.nodeports" | "services.loadbalancers" => "services",
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" | "persistentvolumeclaims" => key,
        k if k == "requests.storage" || k.contains(".storageclass.storage.k8s.io/") => "persistentvolumeclaims",
        _ => "pods",
    };
    (String::new(), plural.to_string())
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, QuotaError> {
    let ns = quota.metadata.namespace.clone().unwrap_or_default();
    let name = quota.metadata.name.clone().unwrap_or_default();
    let qv = serde_json::to_value(quota.as_ref()).unwrap_or_default();
    let hard = resource_list(qv.pointer("/spec/hard"));
    let mut wanted: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for k in hard.keys() {
        wanted.entry(counted_resource(k)).or_default().push(k.clone());
    }
    let mut served: Option<Vec<resources::Served>> = None;
    let mut used = ResourceList::new();
    for ((group, plural), keys) in &wanted {
        let ar = if group.is_empty()
            && matches!(
                plural.as_str(),
                "pods"
                    | "services"
                    | "configmaps"
                    | "secrets"
                    | "persistentvolumeclaims"
                    | "replicationcontrollers"
                    | "resourcequotas"
            ) {
            core(plural)
        } else {
            if served.is_none() {
                served = Some(resources::discover(&ctx.client).await.map_err(|source| QuotaError::Api {
                    action: "discovering resources".into(),
                    namespace: ns.clone(),
                    name: name.clone(),
                    source,
                })?);
            }
            let found = served.iter().flatten().find(|s| s.resource.group == *group && s.resource.plural == *plural);
            match found {
                Some(s) => s.resource.clone(),
                None => {
                    // Nothing of it can exist: counted as zero, as upstream does for unknown kinds.
                    continue;
                }
            }
        };
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
        let list = api.list(&ListParams::default()).await.map_err(|source| QuotaError::Api {
            action: format!("listing {plural}"),
            namespace: ns.clone(),
            name: name.clone(),
            source,
        })?;
        for o in list.items {
            let v = serde_json::to_value(&o).unwrap_or(Value::Null);
            if !admission::in_scope(&qv, group, plural, &v) {
                continue;
            }
            for (k, q) in admission::usage(group, plural, &v) {
                if keys.contains(&k) {
                    let cur = used.remove(&k).unwrap_or(Quantity { nanos: 0, format: q.format });
                    used.insert(k, add(cur, q));
                }
            }
        }
    }
    let used_json: serde_json::Map<String, Value> = hard
        .keys()
        .map(|k| {
            let u = used.get(k).copied().unwrap_or(Quantity { nanos: 0, format: QuantityFormat::DecimalSi });
            (k.clone(), json!(canonical_quantity(&u)))
        })
        .collect();
    let status = json!({"hard": qv.pointer("/spec/hard").cloned().unwrap_or(json!({})), "used": used_json});
    let current = json!({
        "hard": qv.pointer("/status/hard").cloned().unwrap_or(json!({})),
        "used": qv.pointer("/status/used").cloned().unwrap_or(json!({})),
    });
    if status != current {
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
        // A merge patch of the maps would keep removed keys: replace the status whole.
        let mut q = (*quota).clone();
        q.metadata.managed_fields = None;
        q.status = Some(serde_json::from_value(status).unwrap_or_default());
        match api.replace_status(&name, &Default::default(), &q).await {
            Ok(_) => {}
            // Changed meanwhile (admission charged it): count again shortly.
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Action::requeue(Duration::from_millis(500))),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(QuotaError::Api { action: "writing the status".into(), namespace: ns, name, source })
            }
        }
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn core(plural: &str) -> ApiResource {
    let kind = match plural {
        "pods" => "Pod",
        "services" => "Service",
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "replicationcontrollers" => "ReplicationController",
        _ => "ResourceQuota",
    };
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_keys_map_to_resources() {
        assert_eq!(counted_resource("requests.cpu"), (String::new(), "pods".into()));
        assert_eq!(counted_resource("count/deployments.apps"), ("apps".into(), "deployments".into()));
        assert_eq!(counted_resource("count/configmaps"), (String::new(), "configmaps".into()));
        assert_eq!(counted_resource("services.nodeports"), (String::new(), "services".into()));
        assert_eq!(
            counted_resource("gold.storageclass.storage.k8s.io/requests.storage"),
            (String::new(), "persistentvolumeclaims".into())
        );
    }
}
