//! Placing one pod: upstream's default filters (in upstream's order, first failing filter per
//! node), scores with upstream's weights, the FitError message, and preemption.
//!
//! Per pod the work is O(nodes), plus O(pods) only for pods with pod affinity or topology spread
//! constraints (and for existing pods with anti-affinity terms).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Taint;

use super::cache::ClusterState;
use super::model::{tolerated, NodeInfo, PodInfo, TAINT_UNSCHEDULABLE};

/// Why a node does not fit: upstream's reason text and whether preemption could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub message: String,
    /// `UnschedulableAndUnresolvable`: removing pods from the node would not help.
    pub unresolvable: bool,
}

impl Reason {
    fn new(message: impl Into<String>, unresolvable: bool) -> Reason {
        Reason { message: message.into(), unresolvable }
    }
}

pub const MSG_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const MSG_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const MSG_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const MSG_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const MSG_SPREAD_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
pub const MSG_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const MSG_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const MSG_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const MSG_NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const MSG_PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's ErrNoNodesAvailable.
pub const MSG_NO_NODES: &str = "no nodes available to schedule pods";

/// A preemption: the node, and the pods to evict there.
pub type Preemption = (String, Vec<Arc<PodInfo>>);

/// The result of one scheduling attempt.
#[derive(Debug)]
pub enum Decision {
    /// Bind to this node.
    Fit(String),
    /// Nothing fits; `message` is upstream's FitError text. With `preemption`, these victims on
    /// that node make room (the pod is nominated there).
    NoFit { message: String, preemption: Option<Preemption> },
}

/// Whole-cluster facts computed once per pod: spread counts and inter-pod affinity domains.
struct PodContext {
    /// Per constraint: domain → matching pods, the minimum over eligible domains, and whether
    /// the incoming pod matches its own selector.
    spread: Vec<SpreadState>,
    /// (topologyKey, value) pairs existing pods' required anti-affinity forbids.
    existing_anti: HashSet<(String, String)>,
    /// (topologyKey, value) → pods matching all required affinity terms.
    affinity_counts: HashMap<(String, String), u32>,
    /// Per required anti-affinity term: values of its topology key holding a matching pod.
    anti_counts: HashSet<(String, String)>,
    /// Preferred inter-pod affinity: topologyKey → value → score.
    affinity_scores: HashMap<String, HashMap<String, i64>>,
}

struct SpreadState {
    counts: HashMap<String, i64>,
    min: i64,
    self_match: i64,
}

fn node_matches_affinity(pod: &PodInfo, node: &NodeInfo) -> bool {
    if !pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
        return false;
    }
    match &pod.required_node_terms {
        Some(terms) => terms.iter().any(|t| t.matches(&node.labels, &node.name)),
        None => true,
    }
}

fn untolerated_hard_taint<'a>(pod: &PodInfo, node: &'a NodeInfo) -> Option<&'a Taint> {
    node.taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(&pod.tolerations, t))
}

/// The node-local filters (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
/// NodeResourcesFit); the reasons of the first that fails.
fn local_filters(pod: &PodInfo, node: &NodeInfo) -> Vec<Reason> {
    if node.unschedulable {
        let cordon =
            Taint { key: TAINT_UNSCHEDULABLE.into(), effect: "NoSchedule".into(), value: None, time_added: None };
        if !tolerated(&pod.tolerations, &cordon) {
            return vec![Reason::new(MSG_UNSCHEDULABLE, true)];
        }
    }
    if let Some(t) = untolerated_hard_taint(pod, node) {
        return vec![Reason::new(
            format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value.as_deref().unwrap_or("")),
            true,
        )];
    }
    if !node_matches_affinity(pod, node) {
        return vec![Reason::new(MSG_NODE_AFFINITY, true)];
    }
    if pod.host_ports.iter().any(|p| node.ports.iter().any(|u| p.conflicts(u))) {
        return vec![Reason::new(MSG_PORTS, false)];
    }
    fit_resources(pod, node)
}

/// NodeResourcesFit: "Too many pods", then "Insufficient <resource>" for each short resource.
fn fit_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<Reason> {
    let mut out = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        out.push(Reason::new("Too many pods", false));
    }
    let r = &pod.requests;
    let a = &node.allocatable;
    let u = &node.requested;
    let mut check = |name: &str, want: i64, alloc: i64, used: i64| {
        if want > 0 && want > alloc - used {
            out.push(Reason::new(format!("Insufficient {name}"), want > alloc));
        }
    };
    check("cpu", r.milli_cpu, a.milli_cpu, u.milli_cpu);
    check("memory", r.memory, a.memory, u.memory);
    check("ephemeral-storage", r.ephemeral_storage, a.ephemeral_storage, u.ephemeral_storage);
    for (name, want) in &r.scalar {
        let alloc = a.scalar.get(name).copied().unwrap_or(0);
        let used = u.scalar.get(name).copied().unwrap_or(0);
        check(name, *want, alloc, used);
    }
    out
}

impl PodContext {
    fn new(state: &ClusterState, pod: &PodInfo) -> PodContext {
        let mut ctx = PodContext {
            spread: Vec::new(),
            existing_anti: HashSet::new(),
            affinity_counts: HashMap::new(),
            anti_counts: HashSet::new(),
            affinity_scores: HashMap::new(),
        };
        let ns = &state.namespaces;
        // Existing pods' required anti-affinity against the incoming pod, and their affinity
        // terms for scoring (symmetry).
        for key in &state.affinity_pods {
            let Some(node_name) = state.placement(key) else { continue };
            let (Some(existing), Some(node)) = (state.pods.get(key), state.nodes.get(node_name)) else { continue };
            for t in &existing.anti_affinity {
                if t.matches_pod(pod, ns) {
                    if let Some(v) = node.labels.get(&t.topology_key) {
                        ctx.existing_anti.insert((t.topology_key.clone(), v.clone()));
                    }
                }
            }
            let mut add = |key: &str, w: i64| {
                if let Some(v) = node.labels.get(key) {
                    *ctx.affinity_scores.entry(key.to_string()).or_default().entry(v.clone()).or_default() += w;
                }
            };
            for t in &existing.affinity {
                if t.matches_pod(pod, ns) {
                    add(&t.topology_key, 1);
                }
            }
            for (w, t) in &existing.preferred_affinity {
                if t.matches_pod(pod, ns) {
                    add(&t.topology_key, *w as i64);
                }
            }
            for (w, t) in &existing.preferred_anti_affinity {
                if t.matches_pod(pod, ns) {
                    add(&t.topology_key, -(*w as i64));
                }
            }
        }
        // The incoming pod's own terms against every placed pod.
        if pod.has_pod_affinity() {
            for (existing, node) in state.placed_pods() {
                if existing.key == pod.key {
                    continue;
                }
                if !pod.affinity.is_empty() && pod.affinity.iter().all(|t| t.matches_pod(existing, ns)) {
                    for t in &pod.affinity {
                        if let Some(v) = node.labels.get(&t.topology_key) {
                            *ctx.affinity_counts.entry((t.topology_key.clone(), v.clone())).or_default() += 1;
                        }
                    }
                }
                for t in &pod.anti_affinity {
                    if t.matches_pod(existing, ns) {
                        if let Some(v) = node.labels.get(&t.topology_key) {
                            ctx.anti_counts.insert((t.topology_key.clone(), v.clone()));
                        }
                    }
                }
                let mut add = |key: &str, w: i64| {
                    if let Some(v) = node.labels.get(key) {
                        *ctx.affinity_scores.entry(key.to_string()).or_default().entry(v.clone()).or_default() += w;
                    }
                };
                for (w, t) in &pod.preferred_affinity {
                    if t.matches_pod(existing, ns) {
                        add(&t.topology_key, *w as i64);
                    }
                }
                for (w, t) in &pod.preferred_anti_affinity {
                    if t.matches_pod(existing, ns) {
                        add(&t.topology_key, -(*w as i64));
                    }
                }
            }
        }
        // Topology spread: counts per domain over the nodes that are eligible for the pod.
        if !pod.spread.is_empty() {
            let eligible: Vec<&NodeInfo> = state
                .nodes
                .values()
                .filter(|n| pod.spread.iter().all(|c| n.labels.contains_key(&c.topology_key)))
                .collect();
            for c in &pod.spread {
                let mut counts: HashMap<String, i64> = HashMap::new();
                for n in &eligible {
                    if c.honor_affinity && !node_matches_affinity(pod, n) {
                        continue;
                    }
                    if c.honor_taints && untolerated_hard_taint(pod, n).is_some() {
                        continue;
                    }
                    let v = &n.labels[&c.topology_key];
                    let cnt = n
                        .pods
                        .values()
                        .filter(|p| p.key != pod.key && p.namespace == pod.namespace && !p.deleting)
                        .filter(|p| c.selector.matches(&p.labels))
                        .count() as i64;
                    *counts.entry(v.clone()).or_default() += cnt;
                }
                let mut min = counts.values().copied().min().unwrap_or(0);
                if c.hard && c.min_domains.is_some_and(|m| (counts.len() as i64) < m as i64) {
                    min = 0;
                }
                let self_match = i64::from(c.selector.matches(&pod.labels));
                ctx.spread.push(SpreadState { counts, min, self_match });
            }
        }
        ctx
    }

    /// PodTopologySpread and InterPodAffinity filters for one node.
    fn global_filters(&self, state: &ClusterState, pod: &PodInfo, node: &NodeInfo) -> Vec<Reason> {
        for (c, s) in pod.spread.iter().zip(&self.spread).filter(|(c, _)| c.hard) {
            let Some(v) = node.labels.get(&c.topology_key) else {
                return vec![Reason::new(MSG_SPREAD_LABEL, true)];
            };
            let skew = s.counts.get(v).copied().unwrap_or(0) + s.self_match - s.min;
            if skew > c.max_skew as i64 {
                return vec![Reason::new(MSG_SPREAD, false)];
            }
        }
        if !pod.affinity.is_empty() {
            let mut pods_exist = true;
            let mut ok = true;
            for t in &pod.affinity {
                match node.labels.get(&t.topology_key) {
                    Some(v) => {
                        if self.affinity_counts.get(&(t.topology_key.clone(), v.clone())).copied().unwrap_or(0) == 0 {
                            pods_exist = false;
                        }
                    }
                    None => ok = false,
                }
            }
            let first_of_series =
                self.affinity_counts.is_empty() && pod.affinity.iter().all(|t| t.matches_pod(pod, &state.namespaces));
            if !ok || (!pods_exist && !first_of_series) {
                return vec![Reason::new(MSG_AFFINITY, true)];
            }
        }
        if pod.anti_affinity.iter().any(|t| {
            node.labels
                .get(&t.topology_key)
                .is_some_and(|v| self.anti_counts.contains(&(t.topology_key.clone(), v.clone())))
        }) {
            return vec![Reason::new(MSG_ANTI_AFFINITY, false)];
        }
        if node.labels.iter().any(|(k, v)| self.existing_anti.contains(&(k.clone(), v.clone()))) {
            return vec![Reason::new(MSG_EXISTING_ANTI_AFFINITY, false)];
        }
        Vec::new()
    }
}

/// Normalizes raw scores (higher is better) to 0..=100 by the maximum.
fn normalize_max(raw: &[i64]) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter().map(|r| if max > 0 { r * 100 / max } else { 0 }).collect()
}

/// Normalizes raw costs (lower is better) to 0..=100.
fn normalize_reverse(raw: &[i64]) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter().map(|r| if max > 0 { 100 - r * 100 / max } else { 100 }).collect()
}

/// Normalizes raw scores that may be negative to 0..=100 by min and max.
fn normalize_min_max(raw: &[i64]) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    let min = raw.iter().copied().min().unwrap_or(0);
    raw.iter().map(|r| if max > min { (r - min) * 100 / (max - min) } else { 0 }).collect()
}

/// Scores the feasible nodes with upstream's default weights.
fn score(state: &ClusterState, ctx: &PodContext, pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let n = nodes.len();
    let mut total = vec![0i64; n];
    // NodeResourcesFit (LeastAllocated) and NodeResourcesBalancedAllocation, weight 1 each.
    for (i, node) in nodes.iter().enumerate() {
        let cpu_alloc = node.allocatable.milli_cpu.max(1);
        let mem_alloc = node.allocatable.memory.max(1);
        let cpu_used = node.nonzero.0 + pod.nonzero.0;
        let mem_used = node.nonzero.1 + pod.nonzero.1;
        let least = |used: i64, alloc: i64| ((alloc - used).max(0) * 100) / alloc;
        total[i] += (least(cpu_used, cpu_alloc) + least(mem_used, mem_alloc)) / 2;
        let fc = (cpu_used as f64 / cpu_alloc as f64).min(1.0);
        let fm = (mem_used as f64 / mem_alloc as f64).min(1.0);
        total[i] += ((1.0 - (fc - fm).abs() / 2.0) * 100.0) as i64;
    }
    // TaintToleration, weight 3: fewer untolerated PreferNoSchedule taints is better.
    let taints: Vec<i64> = nodes
        .iter()
        .map(|n| {
            n.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&pod.tolerations, t)).count() as i64
        })
        .collect();
    for (t, s) in total.iter_mut().zip(normalize_reverse(&taints)) {
        *t += 3 * s;
    }
    // NodeAffinity preferred terms, weight 2.
    if !pod.preferred_node_terms.is_empty() {
        let raw: Vec<i64> = nodes
            .iter()
            .map(|n| {
                pod.preferred_node_terms
                    .iter()
                    .filter(|(_, t)| t.matches(&n.labels, &n.name))
                    .map(|(w, _)| *w as i64)
                    .sum()
            })
            .collect();
        for (t, s) in total.iter_mut().zip(normalize_max(&raw)) {
            *t += 2 * s;
        }
    }
    // InterPodAffinity preferred terms (both directions), weight 2.
    if !ctx.affinity_scores.is_empty() {
        let raw: Vec<i64> = nodes
            .iter()
            .map(|n| {
                ctx.affinity_scores
                    .iter()
                    .filter_map(|(k, by_value)| n.labels.get(k).and_then(|v| by_value.get(v)))
                    .sum()
            })
            .collect();
        for (t, s) in total.iter_mut().zip(normalize_min_max(&raw)) {
            *t += 2 * s;
        }
    }
    // PodTopologySpread, weight 2: the pod's soft constraints, or the system default spreading
    // of a controller's pods over hostnames and zones.
    let soft: Vec<(usize, &super::model::SpreadConstraint)> =
        pod.spread.iter().enumerate().filter(|(_, c)| !c.hard).collect();
    if !soft.is_empty() {
        let raw: Vec<i64> = nodes
            .iter()
            .map(|n| {
                soft.iter()
                    .map(|(i, c)| match n.labels.get(&c.topology_key) {
                        Some(v) => ctx.spread[*i].counts.get(v).copied().unwrap_or(0) + c.max_skew as i64 - 1,
                        None => 0,
                    })
                    .sum()
            })
            .collect();
        for (t, s) in total.iter_mut().zip(normalize_reverse(&raw)) {
            *t += 2 * s;
        }
    } else if pod.spread.is_empty() {
        if let Some(by_node) = pod.owner_uid.as_ref().and_then(|o| state.owner_counts.get(o)) {
            const ZONE: &str = "topology.kubernetes.io/zone";
            let mut zones: HashMap<&str, i64> = HashMap::new();
            for (node, c) in by_node {
                if let Some(z) = state.nodes.get(node).and_then(|n| n.labels.get(ZONE)) {
                    *zones.entry(z).or_default() += *c as i64;
                }
            }
            let raw: Vec<i64> = nodes
                .iter()
                .map(|n| {
                    let host = by_node.get(&n.name).copied().unwrap_or(0) as i64;
                    let zone = n.labels.get(ZONE).and_then(|z| zones.get(z.as_str())).copied().unwrap_or(0);
                    // Hostname spreading counts double the zone's, like upstream's weighting of
                    // the smaller domain.
                    2 * host + zone
                })
                .collect();
            for (t, s) in total.iter_mut().zip(normalize_reverse(&raw)) {
                *t += 2 * s;
            }
        }
    }
    total
}

/// Upstream's FitError message: `0/N nodes are available: <count> <reason>, ... .` with the
/// reasons sorted as strings.
pub fn fit_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// Decides where `pod` goes. `pick` chooses among equally scored nodes (an index below its
/// argument).
pub fn schedule(state: &ClusterState, pod: &PodInfo, pick: &mut dyn FnMut(usize) -> usize) -> Decision {
    if state.nodes.is_empty() {
        return Decision::NoFit { message: MSG_NO_NODES.to_string(), preemption: None };
    }
    let ctx = PodContext::new(state, pod);
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut failures: HashMap<&str, Vec<Reason>> = HashMap::new();
    for node in state.nodes.values() {
        let mut reasons = local_filters(pod, node);
        if reasons.is_empty() {
            reasons = ctx.global_filters(state, pod, node);
        }
        if reasons.is_empty() {
            feasible.push(node);
        } else {
            failures.insert(&node.name, reasons);
        }
    }
    if !feasible.is_empty() {
        // Deterministic order before the random tie-break.
        feasible.sort_by(|a, b| a.name.cmp(&b.name));
        let scores = score(state, &ctx, pod, &feasible);
        let best = scores.iter().copied().max().unwrap_or(0);
        let top: Vec<usize> = (0..feasible.len()).filter(|i| scores[*i] == best).collect();
        let chosen = top[pick(top.len()).min(top.len() - 1)];
        return Decision::Fit(feasible[chosen].name.clone());
    }
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    for reasons in failures.values() {
        for r in reasons {
            *hist.entry(r.message.clone()).or_default() += 1;
        }
    }
    let total = state.nodes.len();
    let mut message = fit_message(total, &hist);
    let (post, preemption) = preempt(state, &ctx, pod, &failures);
    message.push_str(" preemption: ");
    message.push_str(&post);
    Decision::NoFit { message, preemption }
}

/// DefaultPreemption: the node where evicting the fewest, lowest-priority pods makes the pod fit.
/// Returns the post-filter message and the choice.
fn preempt(
    state: &ClusterState,
    ctx: &PodContext,
    pod: &PodInfo,
    failures: &HashMap<&str, Vec<Reason>>,
) -> (String, Option<Preemption>) {
    if pod.preemption_never {
        return ("not eligible due to preemptionPolicy=Never.".into(), None);
    }
    if let Some(nominated) = pod.nominated_node.as_deref().and_then(|n| state.nodes.get(n)) {
        if nominated.pods.values().any(|p| p.deleting && p.priority < pod.priority) {
            return ("not eligible due to a terminating pod on the nominated node.".into(), None);
        }
    }
    let total = state.nodes.len();
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(Preemption, (i32, i64, usize))> = None;
    let mut names: Vec<&&str> = failures.keys().collect();
    names.sort();
    for name in names {
        let reasons = &failures[*name];
        if reasons.iter().any(|r| r.unresolvable) {
            *hist.entry(MSG_PREEMPTION_NOT_HELPFUL.into()).or_default() += 1;
            continue;
        }
        let node = &state.nodes[*name as &str];
        let mut candidates: Vec<Arc<PodInfo>> =
            node.pods.values().filter(|p| p.priority < pod.priority).cloned().collect();
        let mut trial = node.clone();
        for c in &candidates {
            trial.remove_pod(&c.key);
        }
        let fits = |n: &NodeInfo| local_filters(pod, n).is_empty() && ctx.global_filters(state, pod, n).is_empty();
        if candidates.is_empty() || !fits(&trial) {
            *hist.entry(MSG_NO_VICTIMS.into()).or_default() += 1;
            continue;
        }
        // Reprieve as many as possible, highest priority first.
        candidates.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.creation.cmp(&b.creation)));
        let mut victims = Vec::new();
        for c in candidates {
            trial.add_pod(c.clone());
            if !fits(&trial) {
                trial.remove_pod(&c.key);
                victims.push(c);
            }
        }
        let rank = (
            victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN),
            victims.iter().map(|v| v.priority as i64).sum::<i64>(),
            victims.len(),
        );
        if best.as_ref().is_none_or(|(_, r)| rank < *r) {
            best = Some(((node.name.clone(), victims), rank));
        }
    }
    match best {
        Some((choice, _)) => (String::new(), Some(choice)),
        None => (fit_message(total, &hist), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    fn node(name: &str, cpu: &str, extra: Value) -> Node {
        let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn pod(name: &str, extra: Value) -> PodInfo {
        let mut v = json!({"metadata": {"name": name, "namespace": "d", "uid": name},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        merge(&mut v, extra);
        PodInfo::from_pod(&serde_json::from_value::<Pod>(v).unwrap())
    }

    fn cpu(c: &str) -> Value {
        json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": c}}}]}})
    }

    fn run(state: &ClusterState, p: &PodInfo) -> Decision {
        schedule(state, p, &mut |_| 0)
    }

    fn message(d: Decision) -> String {
        match d {
            Decision::NoFit { message, .. } => message,
            Decision::Fit(n) => panic!("fit on {n}"),
        }
    }

    #[test]
    fn upstream_message_for_taints_and_cpu() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("a", "1", json!({})));
        let taint =
            json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        s.upsert_node(&node("b", "8", taint.clone()));
        s.upsert_node(&node("c", "8", taint));
        let m = message(run(&s, &pod("p", cpu("2"))));
        assert_eq!(
            m,
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: \
             3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn resolvable_failures_without_victims() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("a", "1", json!({})));
        let mut busy = pod("busy", cpu("800m"));
        busy.node_name = Some("a".into());
        s.upsert_pod(busy);
        s.upsert_node(&node("b", "1", json!({"spec": {"unschedulable": true}})));
        let m = message(run(&s, &pod("p", cpu("500m"))));
        assert_eq!(
            m,
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable. preemption: 0/2 nodes \
             are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn selectors_affinity_ports_and_fit() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("a", "4", json!({"metadata": {"labels": {"disk": "ssd"}}})));
        s.upsert_node(&node("b", "4", json!({})));
        let p = pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
        assert!(matches!(run(&s, &p), Decision::Fit(n) if n == "a"));
        let p = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}]}}}}}),
        );
        assert!(matches!(run(&s, &p), Decision::Fit(n) if n == "b"));
        let p = pod("p", json!({"spec": {"nodeSelector": {"disk": "hdd"}}}));
        assert!(message(run(&s, &p))
            .starts_with("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."));
        // Preferred node affinity wins the score.
        let p = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
            [{"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}}),
        );
        assert!(matches!(run(&s, &p), Decision::Fit(n) if n == "a"));
        // Host ports.
        let port = json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}});
        for (n, name) in [("a", "x"), ("b", "y")] {
            let mut q = pod(name, port.clone());
            q.node_name = Some(n.into());
            s.upsert_pod(q);
        }
        assert!(message(run(&s, &pod("p", port)))
            .starts_with("0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."));
    }

    #[test]
    fn pod_anti_affinity_and_spread() {
        let mut s = ClusterState::default();
        for n in ["a", "b", "c"] {
            s.upsert_node(&node(n, "4", json!({})));
        }
        let anti = json!({"metadata": {"labels": {"app": "w"}}, "spec": {"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "w"}},
            "topologyKey": "kubernetes.io/hostname"}]}}}});
        for (i, n) in ["a", "b"].iter().enumerate() {
            let mut q = pod(&format!("w{i}"), anti.clone());
            q.node_name = Some(n.to_string());
            s.upsert_pod(q);
        }
        assert!(matches!(run(&s, &pod("w2", anti.clone())), Decision::Fit(n) if n == "c"));
        let mut q = pod("w2", anti.clone());
        q.node_name = Some("c".into());
        s.upsert_pod(q);
        let m = message(run(&s, &pod("w3", anti)));
        assert!(m.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."), "{m}");
        // A pod without terms is kept off by the existing pods' anti-affinity.
        let m = message(run(&s, &pod("plain", json!({"metadata": {"labels": {"app": "w"}}}))));
        assert!(
            m.starts_with("0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."),
            "{m}"
        );

        // Spread: maxSkew 1 over hostnames with two pods on a.
        let mut s = ClusterState::default();
        for n in ["a", "b"] {
            s.upsert_node(&node(n, "4", json!({})));
        }
        for i in 0..2 {
            let mut q = pod(&format!("s{i}"), json!({"metadata": {"labels": {"app": "s"}}}));
            q.node_name = Some("a".into());
            s.upsert_pod(q);
        }
        let spread = json!({"metadata": {"labels": {"app": "s"}}, "spec": {"topologySpreadConstraints": [{"maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "s"}}}]}});
        assert!(matches!(run(&s, &pod("s9", spread.clone())), Decision::Fit(n) if n == "b"));
        let zone = json!({"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]}});
        let m = message(run(&s, &pod("s8", zone)));
        assert!(m.starts_with("0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints (missing required label)."), "{m}");
    }

    #[test]
    fn preemption_picks_lowest_priority_victims() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("a", "1", json!({})));
        s.upsert_node(&node("b", "1", json!({})));
        let mut low = pod(
            "low",
            json!({"spec": {"priority": 10, "containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "800m"}}}]}}),
        );
        low.node_name = Some("a".into());
        s.upsert_pod(low);
        let mut high = pod(
            "high",
            json!({"spec": {"priority": 1000, "containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "800m"}}}]}}),
        );
        high.node_name = Some("b".into());
        s.upsert_pod(high);
        let p = pod(
            "p",
            json!({"spec": {"priority": 500, "containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "500m"}}}]}}),
        );
        match run(&s, &p) {
            Decision::NoFit { preemption: Some((node, victims)), message } => {
                assert_eq!(node, "a");
                assert_eq!(victims.len(), 1);
                assert_eq!(victims[0].name, "low");
                assert!(message.starts_with("0/2 nodes are available: 2 Insufficient cpu. preemption: "), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spreads_a_controllers_pods() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("a", "4", json!({})));
        s.upsert_node(&node("b", "4", json!({})));
        let owned = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r",
            "uid": "r1", "controller": true}]}});
        let mut q = pod("r-1", owned.clone());
        q.node_name = Some("a".into());
        s.upsert_pod(q);
        assert!(matches!(run(&s, &pod("r-2", owned)), Decision::Fit(n) if n == "b"));
    }

    #[test]
    fn not_ready_nodes_are_tainted_implicitly() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("a", "4", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})));
        let m = message(run(&s, &pod("p", json!({}))));
        assert!(
            m.starts_with(
                "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
            ),
            "{m}"
        );
    }
}
