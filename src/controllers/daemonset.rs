//! The DaemonSet controller (upstream's pkg/controller/daemon): one pod per eligible node
//! (nodeSelector, required node affinity, taints against tolerations), each pod pinned to its node
//! by a required node affinity on `metadata.name` and given the daemon tolerations; rolling update
//! within maxUnavailable / maxSurge; OnDelete; ControllerRevisions; the status counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint,
    Toleration,
};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx, CONTROLLER_REVISION_HASH};

/// The deprecated generation label upstream still puts on daemon pods.
pub const POD_TEMPLATE_GENERATION: &str = "pod-template-generation";

/// Starts the DaemonSet controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<DaemonSet>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let mapper = common::pod_mapper(controller.store(), |d: &DaemonSet| d.spec.as_ref().map(|s| s.selector.clone()));
    let controller = controller
        .watches(Api::<Pod>::all(client.clone()), watcher::Config::default(), mapper)
        .owns(Api::<ControllerRevision>::all(client.clone()), watcher::Config::default())
        // Any node change may change where daemons should run.
        .watches(Api::<Node>::all(client.clone()), watcher::Config::default(), move |_node: Node| {
            store.state().iter().map(|d| ObjectRef::from_obj(d.as_ref())).collect::<Vec<_>>()
        });
    common::spawn("daemonset", client, controller, reconcile)
}

/// The tolerations every daemon pod gets (upstream's AddOrUpdateDaemonPodTolerations).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// Whether a toleration tolerates a taint (upstream's ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let vals = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| vals.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !vals.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(x)) =
                (value.and_then(|v| v.parse::<i64>().ok()), vals.first().and_then(|x| x.parse::<i64>().ok()))
            else {
                return false;
            };
            if r.operator == "Gt" {
                v > x
            } else {
                v < x
            }
        }
        _ => false,
    }
}

/// Whether a node satisfies a required node selector (terms ORed, requirements ANDed).
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    let labels = node.labels();
    let name = node.name_any();
    sel.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&name)))
    })
}

/// Upstream's NodeShouldRunDaemonPod: (should run, should continue running).
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let labels = node.labels();
    let fits_selector = spec.node_selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let fits_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .is_none_or(|sel| node_selector_matches(sel, node));
    if !fits_selector || !fits_affinity {
        return (false, false);
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(daemon_tolerations(spec.host_network == Some(true)));
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let untolerated = |effect: &str| {
        taints.iter().filter(|t| t.effect == effect).any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    };
    let no_execute = untolerated("NoExecute");
    let no_schedule = untolerated("NoSchedule");
    (!no_execute && !no_schedule, !no_execute)
}

/// The node a daemon pod is for: its nodeName, or the node its affinity pins it to.
fn target_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let sel =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    sel.node_selector_terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        (r.key == "metadata.name" && r.operator == "In" && r.values.as_ref().is_some_and(|v| v.len() == 1))
            .then(|| r.values.as_ref().unwrap()[0].clone())
    })
}

/// Pins a pod spec to one node (upstream's ReplaceDaemonSetPodNodeNameNodeAffinity).
fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let req = NodeSelectorRequirement {
        key: "metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![node.to_string()]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    let sel = na.required_during_scheduling_ignored_during_execution.get_or_insert_with(NodeSelector::default);
    if sel.node_selector_terms.is_empty() {
        sel.node_selector_terms.push(NodeSelectorTerm { match_expressions: None, match_fields: Some(vec![req]) });
    } else {
        for term in sel.node_selector_terms.iter_mut() {
            term.match_fields = Some(vec![req.clone()]);
        }
    }
}

fn oldest(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().min_by_key(|p| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), p.name_any()))
}

async fn reconcile(obj: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(ds) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ds.name_any();
    let spec = ds.spec.clone().unwrap_or_default();
    let sel = common::selector(Some(&spec.selector), &format!("daemonset {ns}/{name}"))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let status = ds.status.clone().unwrap_or_default();

    let mut template = serde_json::to_value(&spec.template)?;
    template["$patch"] = json!("replace");
    let (revs, update_rev) = common::sync_revision(
        &rev_api,
        &ds,
        &sel,
        spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        json!({ "spec": { "template": template } }),
        status.collision_count,
    )
    .await?;
    let hash = update_rev.labels().get(CONTROLLER_REVISION_HASH).cloned().unwrap_or_default();

    let nodes = common::list_all(&Api::<Node>::all(ctx.client.clone())).await?;
    let all = common::list_all(&pods_api).await?;
    let pods = common::claim(&pods_api, &ds, &sel, all).await?;
    let mut by_node: HashMap<String, Vec<Pod>> = HashMap::new();
    for p in pods.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        if let Some(n) = target_node(&p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let at = common::now();
    let is_new = |p: &Pod| p.labels().get(CONTROLLER_REVISION_HASH) == Some(&hash);
    let available = |p: &Pod| common::pod_available(p, min_ready, at).0;
    let desired = nodes.iter().filter(|n| should_run(&template_spec, n).0).count() as i32;
    let max_surge =
        if rolling { common::int_or_percent(ru.and_then(|r| r.max_surge.as_ref()), "0", desired, true)? } else { 0 };
    let max_unavailable = if rolling {
        let v = common::int_or_percent(ru.and_then(|r| r.max_unavailable.as_ref()), "1", desired, true)?;
        if v == 0 && max_surge == 0 {
            1
        } else {
            v
        }
    } else {
        0
    };

    // manage: create on eligible nodes without a pod, delete where it should not run, duplicates
    // and failed pods.
    let mut create_on: Vec<String> = Vec::new();
    let mut delete: Vec<String> = Vec::new();
    for node in &nodes {
        let node_name = node.name_any();
        let (run, keep) = should_run(&template_spec, node);
        let pods = by_node.get(&node_name).cloned().unwrap_or_default();
        if run && pods.is_empty() {
            create_on.push(node_name.clone());
        } else if !keep {
            delete.extend(pods.iter().map(|p| p.name_any()));
        } else if keep {
            let (failed, ok): (Vec<Pod>, Vec<Pod>) = pods.into_iter().partition(|p| common::pod_phase(p) == "Failed");
            delete.extend(failed.iter().map(|p| p.name_any()));
            if ok.is_empty() && run && !failed.is_empty() {
                create_on.push(node_name.clone());
            }
            if ok.len() > 1 {
                let keep: Vec<String> = if max_surge > 0 {
                    let (new, old): (Vec<Pod>, Vec<Pod>) = ok.iter().cloned().partition(|p| is_new(p));
                    oldest(&new).into_iter().chain(oldest(&old)).map(|p| p.name_any()).collect()
                } else {
                    oldest(&ok).map(|p| vec![p.name_any()]).unwrap_or_default()
                };
                delete.extend(ok.iter().map(|p| p.name_any()).filter(|n| !keep.contains(n)));
            }
        }
    }
    // Nodes that no longer exist.
    let node_names: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
    for (n, pods) in &by_node {
        if !node_names.contains(n) {
            delete.extend(pods.iter().map(|p| p.name_any()));
        }
    }

    // Rolling update over the nodes that keep their pods.
    if rolling && delete.is_empty() && create_on.is_empty() {
        let mut unavailable = 0;
        let mut surged = 0;
        let mut replace_now: Vec<String> = Vec::new();
        let mut candidates: Vec<String> = Vec::new();
        let mut surge_now: Vec<String> = Vec::new();
        let mut surge_candidates: Vec<String> = Vec::new();
        for node in &nodes {
            let node_name = node.name_any();
            if !should_run(&template_spec, node).0 {
                continue;
            }
            let pods = by_node.get(&node_name).cloned().unwrap_or_default();
            let new = pods.iter().find(|p| is_new(p));
            let old = pods.iter().find(|p| !is_new(p));
            match (new, old) {
                (None, None) => unavailable += 1,
                (Some(n), None) => {
                    if !available(n) {
                        unavailable += 1;
                    }
                }
                (None, Some(o)) => {
                    if max_surge > 0 {
                        if available(o) {
                            surge_candidates.push(node_name);
                        } else {
                            surge_now.push(node_name);
                        }
                    } else if available(o) {
                        candidates.push(o.name_any());
                    } else {
                        replace_now.push(o.name_any());
                    }
                }
                (Some(n), Some(o)) => {
                    if max_surge > 0 && available(n) {
                        delete.push(o.name_any());
                    } else {
                        surged += 1;
                        unavailable += 1;
                    }
                }
            }
        }
        if max_surge > 0 {
            let room = (max_surge - surged).max(0) as usize;
            create_on.extend(surge_now);
            create_on.extend(surge_candidates.into_iter().take(room));
        } else {
            let room = (max_unavailable - unavailable).max(0) as usize;
            delete.extend(replace_now);
            delete.extend(candidates.into_iter().take(room));
        }
    }

    // Deletions first: a surge node's old pod goes before another node's new pod starts.
    for p in &delete {
        common::delete_pod_recorded(&ctx, &ds, &pods_api, p).await?;
    }
    for n in &create_on {
        let mut pod = common::pod_from_template(&spec.template, common::controller_ref(&ds));
        pod.metadata.generate_name = Some(format!("{name}-"));
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(CONTROLLER_REVISION_HASH.into(), hash.clone());
        labels.insert(POD_TEMPLATE_GENERATION.into(), ds.metadata.generation.unwrap_or(1).to_string());
        let pspec = pod.spec.get_or_insert_with(PodSpec::default);
        pin_to_node(pspec, n);
        let tolerations = pspec.tolerations.get_or_insert_with(Vec::new);
        for t in daemon_tolerations(pspec.host_network == Some(true)) {
            tolerations.retain(|x| !(x.key == t.key && x.effect == t.effect));
            tolerations.push(t);
        }
        common::create_pod_recorded(&ctx, &ds, &pods_api, &pod).await?;
    }

    // Status from a fresh list.
    let all = common::list_all(&pods_api).await?;
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let mut by_node: HashMap<String, Vec<Pod>> = HashMap::new();
    for p in all
        .into_iter()
        .filter(|p| common::is_controlled_by(&p.metadata, &uid) && p.metadata.deletion_timestamp.is_none())
    {
        if let Some(n) = target_node(&p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let (mut desired, mut current, mut misscheduled, mut ready, mut avail, mut updated) = (0, 0, 0, 0, 0, 0);
    let mut wait: Option<Duration> = None;
    for node in &nodes {
        let run = should_run(&template_spec, node).0;
        let pods = by_node.get(&node.name_any()).cloned().unwrap_or_default();
        if run {
            desired += 1;
            if let Some(p) = oldest(&pods) {
                current += 1;
                if common::pod_ready(p) {
                    ready += 1;
                }
                let (a, w) = common::pod_available(p, min_ready, at);
                if a {
                    avail += 1;
                }
                wait = common::earliest(wait, w);
                if pods.iter().any(&is_new) {
                    updated += 1;
                }
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
        }
    }
    let new_status = json!({
        "observedGeneration": ds.metadata.generation,
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": avail,
        "numberUnavailable": desired - avail,
        "updatedNumberScheduled": updated,
    });
    let old = serde_json::to_value(&status)?;
    if new_status.as_object().unwrap().iter().any(|(k, v)| old.get(k).cloned().unwrap_or(json!(0)) != *v) {
        common::patch_status(&api, &name, &new_status).await?;
    }
    let live: Vec<&str> = by_node
        .values()
        .flatten()
        .filter_map(|p| p.labels().get(CONTROLLER_REVISION_HASH))
        .map(|h| h.as_str())
        .collect();
    let live_revs: Vec<String> = revs
        .iter()
        .filter(|r| r.labels().get(CONTROLLER_REVISION_HASH).is_some_and(|h| live.contains(&h.as_str())))
        .map(|r| r.name_any())
        .chain(std::iter::once(update_rev.name_any()))
        .collect();
    let live_refs: Vec<&str> = live_revs.iter().map(String::as_str).collect();
    common::truncate_revisions(&rev_api, &revs, &live_refs, spec.revision_history_limit.unwrap_or(10)).await?;
    Ok(Action::requeue(wait.unwrap_or(Duration::from_secs(300))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        n.spec = Some(NodeSpec { taints: Some(taints), ..Default::default() });
        n
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), value: None, time_added: None }
    }

    #[test]
    fn eligibility_follows_selector_affinity_and_taints() {
        let mut spec = PodSpec::default();
        assert_eq!(should_run(&spec, &node("a", &[], vec![])), (true, true));
        // Daemon tolerations cover unschedulable and not-ready.
        let n = node(
            "b",
            &[],
            vec![
                taint("node.kubernetes.io/unschedulable", "NoSchedule"),
                taint("node.kubernetes.io/not-ready", "NoExecute"),
            ],
        );
        assert_eq!(should_run(&spec, &n), (true, true));
        // An untolerated NoSchedule taint: not started, but kept running.
        assert_eq!(should_run(&spec, &node("c", &[], vec![taint("dedicated", "NoSchedule")])), (false, true));
        // An untolerated NoExecute taint: evicted.
        assert_eq!(should_run(&spec, &node("c", &[], vec![taint("dedicated", "NoExecute")])), (false, false));
        spec.tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
        assert_eq!(should_run(&spec, &node("c", &[], vec![taint("dedicated", "NoExecute")])), (true, true));
        spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        assert_eq!(should_run(&spec, &node("d", &[], vec![])), (false, false));
        assert_eq!(should_run(&spec, &node("d", &[("disk", "ssd")], vec![])), (true, true));
        pin_to_node(&mut spec, "d");
        assert!(should_run(&spec, &node("d", &[("disk", "ssd")], vec![])).0);
        assert!(!should_run(&spec, &node("e", &[("disk", "ssd")], vec![])).0);
        let p = Pod { spec: Some(spec), ..Default::default() };
        assert_eq!(target_node(&p).as_deref(), Some("d"));
    }
}
