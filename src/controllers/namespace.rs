//! The namespace controller: a namespace being deleted (Terminating, with the `kubernetes`
//! finalizer in `spec.finalizers`) has every namespaced object inside deleted, built-in and custom
//! alike; its status conditions say what is left, as upstream's; once nothing is left the
//! `kubernetes` finalizer is removed through `namespaces/finalize` and the namespace goes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::discovery::verbs;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;

use super::resources::{self, Served};

const FINALIZER: &str = "kubernetes";

/// What went wrong reconciling a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// An API call failed.
    #[error("{action} namespace {namespace}: {source}")]
    Api {
        action: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    client: kube::Client,
    /// Passes so far per namespace still holding content: the recheck backs off (1 s doubling
    /// up to 16 s), so a namespace held by a finalizer does not keep the API busy.
    passes: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl Ctx {
    fn next_check(&self, ns: &str) -> Duration {
        let mut p = self.passes.lock().unwrap_or_else(|e| e.into_inner());
        let n = p.entry(ns.to_string()).or_insert(0);
        *n += 1;
        Duration::from_secs(1u64 << (*n - 1).min(4))
    }

    fn done(&self, ns: &str) {
        self.passes.lock().unwrap_or_else(|e| e.into_inner()).remove(ns);
    }
}

/// Run the namespace controller until aborted.
pub async fn run(client: kube::Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { client, passes: Default::default() }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "namespace reconcile failed", error = %e);
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &NamespaceError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "namespace deletion will be retried", error = %e);
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, NamespaceError> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    if ns.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let err = |action: &'static str| {
        let namespace = name.clone();
        move |source| NamespaceError::Api { action, namespace, source }
    };
    let mut report = Report::default();
    let served = match resources::discover(&ctx.client).await {
        Ok(s) => s,
        Err(e) => {
            report.discovery = Some(e.to_string());
            Vec::new()
        }
    };
    // As upstream: only what can be listed and deleted (not read-only views such as metrics).
    let namespaced: Vec<&Served> = served
        .iter()
        .filter(|s| s.namespaced && s.can(verbs::LIST) && (s.can(verbs::DELETE) || s.can(verbs::DELETE_COLLECTION)))
        .collect();
    // Delete everything; then count what is left (things with finalizers or grace periods).
    for s in &namespaced {
        if let Err(e) = delete_all(&ctx.client, &name, s).await {
            report.failures.push(format!("{}: {e}", s.group_resource()));
        }
    }
    for s in &namespaced {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::namespaced_with(ctx.client.clone(), &name, &s.resource);
        match api.list_metadata(&ListParams::default()).await {
            Ok(list) if !list.items.is_empty() => {
                report.remaining.insert(s.group_resource(), list.items.len());
                for o in &list.items {
                    for f in o.metadata.finalizers.iter().flatten() {
                        *report.finalizers.entry(f.clone()).or_default() += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => report.failures.push(format!("{}: {e}", s.group_resource())),
        }
    }
    let nss: Api<Namespace> = Api::all(ctx.client.clone());
    let conditions = report.conditions(ns.status.as_ref().and_then(|s| s.conditions.as_ref()));
    let status = json!({"status": {"conditions": conditions}});
    match nss.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(err("reporting the status of")(e)),
    }
    if report.discovery.is_some() || !report.failures.is_empty() || !report.remaining.is_empty() {
        return Ok(Action::requeue(ctx.next_check(&name)));
    }
    ctx.done(&name);
    let mut done = (*ns).clone();
    if let Some(spec) = done.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    done.status = None;
    match nss.replace_subresource("finalize", &name, &PostParams::default(), &done).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(err("finalizing")(e)),
    }
}

/// Delete every object of one resource in `ns`: deletecollection where served, else one by one.
async fn delete_all(client: &kube::Client, ns: &str, s: &Served) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &s.resource);
    let dp = DeleteParams::background();
    if s.can(verbs::DELETE_COLLECTION) {
        return match api.delete_collection(&dp, &ListParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        };
    }
    if !s.can(verbs::DELETE) {
        return Ok(());
    }
    let meta: Api<PartialObjectMeta<DynamicObject>> = Api::namespaced_with(client.clone(), ns, &s.resource);
    for o in meta.list_metadata(&ListParams::default()).await?.items {
        let Some(n) = o.metadata.name else { continue };
        match api.delete(&n, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What one pass found, rendered as upstream's namespace conditions.
#[derive(Default)]
struct Report {
    discovery: Option<String>,
    failures: Vec<String>,
    /// group-resource → objects left.
    remaining: BTreeMap<String, usize>,
    /// finalizer → objects carrying it.
    finalizers: BTreeMap<String, usize>,
}

impl Report {
    fn conditions(&self, old: Option<&Vec<NamespaceCondition>>) -> Vec<NamespaceCondition> {
        let cond = |type_: &str, failed: bool, reason: &str, message: String| {
            let status = if failed { "True" } else { "False" };
            // The transition time moves only when the status does.
            let since = old
                .into_iter()
                .flatten()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
            NamespaceCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(since),
            }
        };
        let mut out = Vec::new();
        out.push(match &self.discovery {
            Some(e) => cond(
                "NamespaceDeletionDiscoveryFailure",
                true,
                "DiscoveryFailed",
                format!("Discovery failed for some groups: {e}"),
            ),
            None => cond(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
        });
        out.push(cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ));
        out.push(if self.failures.is_empty() {
            cond(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            cond(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    self.failures.len(),
                    self.failures.join(", ")
                ),
            )
        });
        out.push(if self.remaining.is_empty() {
            cond("NamespaceContentRemaining", false, "ContentRemoved", "All content successfully removed".into())
        } else {
            let parts: Vec<String> =
                self.remaining.iter().map(|(gr, n)| format!("{gr} has {n} resource instances")).collect();
            cond(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", parts.join(", ")),
            )
        });
        out.push(if self.finalizers.is_empty() {
            cond(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            let parts: Vec<String> =
                self.finalizers.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect();
            cond(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!("Some content in the namespace has finalizers remaining: {}", parts.join(", ")),
            )
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_use_upstream_wording() {
        let mut r = Report::default();
        r.remaining.insert("configmaps".into(), 2);
        r.remaining.insert("pods".into(), 1);
        r.finalizers.insert("example.com/hold".into(), 2);
        let c = r.conditions(None);
        let find = |t: &str| c.iter().find(|c| c.type_ == t).unwrap().clone();
        let remaining = find("NamespaceContentRemaining");
        assert_eq!(remaining.status, "True");
        assert_eq!(
            remaining.message.as_deref(),
            Some("Some resources are remaining: configmaps has 2 resource instances, pods has 1 resource instances")
        );
        assert_eq!(
            find("NamespaceFinalizersRemaining").message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances")
        );
        assert_eq!(find("NamespaceDeletionContentFailure").status, "False");
        let done = Report::default().conditions(Some(&c));
        assert_eq!(find_in(&done, "NamespaceContentRemaining").reason.as_deref(), Some("ContentRemoved"));
    }

    fn find_in(c: &[NamespaceCondition], t: &str) -> NamespaceCondition {
        c.iter().find(|c| c.type_ == t).unwrap().clone()
    }
}
