//! What the scheduler knows about pods and nodes, parsed once per object version: resource
//! requests, host ports, selectors, affinity terms, tolerations, spread constraints; and per-node
//! aggregates (requested resources, used ports, the pods on the node).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use crate::api::selector::LabelSelector;
use crate::api::validation::parse_quantity;

/// The scheduler's name in pods and events.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Requests of a pod used for scoring when it asks for nothing (upstream's non-zero defaults).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// 200 MiB, upstream's non-zero memory default.
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// Resource amounts: cpu in millicores, the others in units (bytes, counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended and hugepage resources by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// From a resource list (requests, allocatable).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        let Some(parsed) = parse_quantity(&q.0) else { return };
        match name {
            "cpu" => self.milli_cpu = milli(parsed.nanos),
            "memory" => self.memory = units(parsed.nanos),
            "ephemeral-storage" => self.ephemeral_storage = units(parsed.nanos),
            "pods" => {}
            other => {
                self.scalar.insert(other.to_string(), units(parsed.nanos));
            }
        }
    }

    /// Adds `o` to self.
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtracts `o` from self.
    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// The element-wise maximum.
    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn milli(nanos: i128) -> i64 {
    // Round up, like upstream's MilliValue.
    ((nanos + 999_999).div_euclid(1_000_000)).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn units(nanos: i128) -> i64 {
    ((nanos + 999_999_999).div_euclid(1_000_000_000)).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A host port a pod asks for: (protocol, host IP, port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream's conflict check: same protocol and port, and either IP is the wildcard or both
    /// are equal.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// One node selector requirement (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`).
#[derive(Debug, Clone)]
pub struct NodeRequirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl NodeRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => v.is_some_and(|v| self.values.contains(v)),
            "NotIn" => v.is_none_or(|v| !self.values.contains(v)),
            "Exists" => v.is_some(),
            "DoesNotExist" => v.is_none(),
            "Gt" | "Lt" => {
                let (Some(v), Some(want)) = (v, self.values.first()) else { return false };
                let (Ok(have), Ok(want)) = (v.parse::<i64>(), want.parse::<i64>()) else { return false };
                if self.operator == "Gt" {
                    have > want
                } else {
                    have < want
                }
            }
            _ => false,
        }
    }
}

/// A node selector term: label expressions and field expressions (only `metadata.name`), ANDed.
/// An empty term matches nothing.
#[derive(Debug, Clone, Default)]
pub struct NodeTerm {
    pub expressions: Vec<NodeRequirement>,
    pub fields: Vec<NodeRequirement>,
}

impl NodeTerm {
    fn from_api(t: &NodeSelectorTerm) -> NodeTerm {
        let conv = |v: &Option<Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>>| {
            v.iter()
                .flatten()
                .map(|r| NodeRequirement {
                    key: r.key.clone(),
                    operator: r.operator.clone(),
                    values: r.values.clone().unwrap_or_default(),
                })
                .collect::<Vec<_>>()
        };
        NodeTerm { expressions: conv(&t.match_expressions), fields: conv(&t.match_fields) }
    }

    /// Whether a node with these labels and name matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        let fields: BTreeMap<String, String> = [("metadata.name".to_string(), name.to_string())].into();
        self.expressions.iter().all(|r| r.matches(labels)) && self.fields.iter().all(|r| r.matches(&fields))
    }
}

/// Which namespaces an affinity term looks at.
#[derive(Debug, Clone)]
pub struct NamespaceScope {
    pub names: Vec<String>,
    /// `namespaceSelector`: `None` when absent.
    pub selector: Option<LabelSelector>,
}

impl NamespaceScope {
    /// Whether a pod in `ns` (whose namespace has `ns_labels`) is in scope.
    pub fn contains(&self, ns: &str, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
        if self.names.iter().any(|n| n == ns) {
            return true;
        }
        match (&self.selector, ns_labels) {
            (Some(sel), Some(labels)) => sel.matches(labels),
            (Some(sel), None) => sel.is_empty(),
            (None, _) => false,
        }
    }
}

/// A pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub selector: LabelSelector,
    pub namespaces: NamespaceScope,
    pub topology_key: String,
}

impl AffinityTerm {
    fn from_api(t: &PodAffinityTerm, pod_ns: &str) -> AffinityTerm {
        let selector = t
            .label_selector
            .as_ref()
            .map(|s| {
                LabelSelector::from_label_selector(&serde_json::to_value(s).unwrap_or(Value::Null))
                    .unwrap_or_else(|_| LabelSelector::nothing())
            })
            .unwrap_or_else(LabelSelector::nothing);
        let ns_selector = t.namespace_selector.as_ref().map(|s| {
            LabelSelector::from_label_selector(&serde_json::to_value(s).unwrap_or(Value::Null))
                .unwrap_or_else(|_| LabelSelector::nothing())
        });
        let mut names = t.namespaces.clone().unwrap_or_default();
        if names.is_empty() && ns_selector.is_none() {
            names.push(pod_ns.to_string());
        }
        AffinityTerm {
            selector,
            namespaces: NamespaceScope { names, selector: ns_selector },
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` is selected by this term.
    pub fn matches_pod(&self, pod: &PodInfo, namespaces: &HashMap<String, BTreeMap<String, String>>) -> bool {
        self.namespaces.contains(&pod.namespace, namespaces.get(&pod.namespace)) && self.selector.matches(&pod.labels)
    }
}

/// A topology spread constraint.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub hard: bool,
    pub selector: LabelSelector,
    pub min_domains: Option<i32>,
    /// `nodeTaintsPolicy: Honor`.
    pub honor_taints: bool,
    /// `nodeAffinityPolicy` is Honor unless set to Ignore.
    pub honor_affinity: bool,
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub node_name: Option<String>,
    pub scheduler_name: String,
    pub priority: i32,
    pub preemption_never: bool,
    pub requests: Resources,
    /// (cpu, memory) with upstream's non-zero defaults, for scoring.
    pub nonzero: (i64, i64),
    pub host_ports: Vec<HostPort>,
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity terms (ORed); `None` when absent.
    pub required_node_terms: Option<Vec<NodeTerm>>,
    pub preferred_node_terms: Vec<(i32, NodeTerm)>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Vec<AffinityTerm>,
    pub anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i32, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, AffinityTerm)>,
    pub spread: Vec<SpreadConstraint>,
    /// The controller owner's uid.
    pub owner_uid: Option<String>,
    /// Succeeded or Failed.
    pub terminal: bool,
    pub deleting: bool,
    pub nominated_node: Option<String>,
    /// Whether the pod carries a PodScheduled=False/Unschedulable condition with this message.
    pub unschedulable_message: Option<String>,
    /// A hash of what scheduling depends on (spec and labels), to tell meaningful updates.
    pub signature: u64,
    pub creation: String,
}

impl PodInfo {
    /// Parses a pod.
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");

        // Requests: max(sum of containers (+ sidecars), any init container) + overhead.
        let mut sum = Resources::default();
        for c in &spec.containers {
            sum.add(&Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref())));
        }
        let mut init_max = Resources::default();
        let mut sidecars = Resources::default();
        for c in spec.init_containers.iter().flatten() {
            let r = Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars.add(&r);
                sum.add(&r);
            } else {
                let mut with_sidecars = r.clone();
                with_sidecars.add(&sidecars);
                init_max.max_with(&with_sidecars);
            }
        }
        let mut requests = sum.clone();
        requests.max_with(&init_max);
        requests.add(&Resources::from_list(spec.overhead.as_ref()));
        let mut nz_cpu = 0;
        let mut nz_mem = 0;
        for c in &spec.containers {
            let r = Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
            let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            nz_cpu += if req.is_some_and(|m| m.contains_key("cpu")) { r.milli_cpu } else { DEFAULT_MILLI_CPU };
            nz_mem += if req.is_some_and(|m| m.contains_key("memory")) { r.memory } else { DEFAULT_MEMORY };
        }

        let mut host_ports = Vec::new();
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    let ip = p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
                    host_ports.push(HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip,
                        port: hp,
                    });
                }
            }
        }

        let aff = spec.affinity.clone().unwrap_or_default();
        let na = aff.node_affinity.unwrap_or_default();
        let required_node_terms = na
            .required_during_scheduling_ignored_during_execution
            .map(|r| r.node_selector_terms.iter().map(NodeTerm::from_api).collect());
        let preferred_node_terms = na
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default()
            .iter()
            .map(|p| (p.weight, NodeTerm::from_api(&p.preference)))
            .collect();
        let pa = aff.pod_affinity.unwrap_or_default();
        let paa = aff.pod_anti_affinity.unwrap_or_default();
        let terms = |v: Option<Vec<PodAffinityTerm>>| {
            v.unwrap_or_default().iter().map(|t| AffinityTerm::from_api(t, &namespace)).collect::<Vec<_>>()
        };
        let weighted = |v: Option<Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            v.unwrap_or_default()
                .iter()
                .map(|w| (w.weight, AffinityTerm::from_api(&w.pod_affinity_term, &namespace)))
                .collect::<Vec<_>>()
        };
        let spread = spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| {
                let mut selector = c
                    .label_selector
                    .as_ref()
                    .map(|s| {
                        LabelSelector::from_label_selector(&serde_json::to_value(s).unwrap_or(Value::Null))
                            .unwrap_or_else(|_| LabelSelector::nothing())
                    })
                    .unwrap_or_else(LabelSelector::nothing);
                // matchLabelKeys: the pod's own values for those keys join the selector.
                let keys: Vec<&String> = c.match_label_keys.iter().flatten().collect();
                if !keys.is_empty() && !selector.matches_nothing() {
                    let mut ml = serde_json::Map::new();
                    for k in keys {
                        if let Some(v) = meta.labels.as_ref().and_then(|l| l.get(k)) {
                            ml.insert(k.clone(), Value::String(v.clone()));
                        }
                    }
                    let mut sel = c.label_selector.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default());
                    if let Some(Value::Object(o)) = sel.as_mut() {
                        let entry = o.entry("matchLabels").or_insert_with(|| Value::Object(Default::default()));
                        if let Value::Object(m) = entry {
                            m.extend(ml);
                        }
                    }
                    if let Some(s) = sel {
                        selector = LabelSelector::from_label_selector(&s).unwrap_or_else(|_| LabelSelector::nothing());
                    }
                }
                SpreadConstraint {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable != "ScheduleAnyway",
                    selector,
                    min_domains: c.min_domains,
                    honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                    honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                }
            })
            .collect();

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&spec).unwrap_or_default().hash(&mut hasher);
        meta.labels.hash(&mut hasher);
        let signature = hasher.finish();

        let unschedulable_message = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False"))
            .and_then(|c| c.message.clone());

        PodInfo {
            key: format!("{namespace}/{name}"),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            scheduler_name: spec.scheduler_name.clone().unwrap_or_else(|| DEFAULT_SCHEDULER.into()),
            priority: spec.priority.unwrap_or(0),
            preemption_never: spec.preemption_policy.as_deref() == Some("Never"),
            requests,
            nonzero: (nz_cpu, nz_mem),
            host_ports,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_terms,
            preferred_node_terms,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            affinity: terms(pa.required_during_scheduling_ignored_during_execution),
            anti_affinity: terms(paa.required_during_scheduling_ignored_during_execution),
            preferred_affinity: weighted(pa.preferred_during_scheduling_ignored_during_execution),
            preferred_anti_affinity: weighted(paa.preferred_during_scheduling_ignored_during_execution),
            spread,
            owner_uid: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            terminal: phase == "Succeeded" || phase == "Failed",
            deleting: meta.deletion_timestamp.is_some(),
            nominated_node: status.and_then(|s| s.nominated_node_name.clone()).filter(|n| !n.is_empty()),
            unschedulable_message,
            signature,
            creation: meta.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
            namespace,
            name,
        }
    }

    /// Whether the pod has any pod (anti-)affinity term.
    pub fn has_pod_affinity(&self) -> bool {
        !self.affinity.is_empty()
            || !self.anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// Whether this scheduler should place the pod.
    pub fn wants_scheduling(&self) -> bool {
        self.node_name.is_none()
            && !self.terminal
            && !self.deleting
            && (self.scheduler_name.is_empty() || self.scheduler_name == DEFAULT_SCHEDULER)
    }
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any toleration tolerates the taint.
pub fn tolerated(ts: &[Toleration], taint: &Taint) -> bool {
    ts.iter().any(|t| tolerates(t, taint))
}

/// A node as the scheduler sees it, with the aggregates of the pods bound (or assumed) to it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub unschedulable: bool,
    /// Spec taints plus the not-ready/unreachable NoSchedule taints its Ready condition implies.
    pub taints: Vec<Taint>,
    pub requested: Resources,
    pub nonzero: (i64, i64),
    pub pods: HashMap<String, Arc<PodInfo>>,
    pub ports: Vec<HostPort>,
}

/// The taint upstream puts on nodes whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint upstream puts on nodes whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of cordoned nodes.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

impl NodeInfo {
    /// Builds the node part (without pods).
    pub fn from_node(node: &Node) -> NodeInfo {
        let mut n = NodeInfo::default();
        n.update_node(node);
        n
    }

    /// Refreshes the node part, keeping the pods.
    pub fn update_node(&mut self, node: &Node) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let status = node.status.as_ref();
        let alloc = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        self.allocatable = Resources::from_list(alloc);
        self.allowed_pods =
            alloc.and_then(|a| a.get("pods")).and_then(|q| parse_quantity(&q.0)).map(|q| units(q.nanos)).unwrap_or(0);
        let spec = node.spec.clone().unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        let mut taints = spec.taints.unwrap_or_default();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        let implied = match ready.as_deref() {
            Some("True") => None,
            Some("False") => Some(TAINT_NOT_READY),
            // No Ready condition yet counts as not ready, like a node the lifecycle controller
            // has not tainted yet.
            None => Some(TAINT_NOT_READY),
            Some(_) => Some(TAINT_UNREACHABLE),
        };
        if let Some(key) = implied {
            if !taints.iter().any(|t| t.key == key && t.effect == "NoSchedule") {
                taints.push(Taint { key: key.into(), effect: "NoSchedule".into(), value: None, time_added: None });
            }
        }
        self.taints = taints;
    }

    /// Accounts a pod to this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        if let Some(old) = self.pods.remove(&pod.key) {
            self.account(&old, -1);
        }
        self.account(&pod, 1);
        self.pods.insert(pod.key.clone(), pod);
    }

    /// Removes a pod from this node.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let old = self.pods.remove(key)?;
        self.account(&old, -1);
        Some(old)
    }

    fn account(&mut self, pod: &PodInfo, sign: i64) {
        if sign > 0 {
            self.requested.add(&pod.requests);
            self.ports.extend(pod.host_ports.iter().cloned());
        } else {
            self.requested.sub(&pod.requests);
            for p in &pod.host_ports {
                if let Some(i) = self.ports.iter().position(|x| x == p) {
                    self.ports.swap_remove(i);
                }
            }
        }
        self.nonzero.0 += sign * pod.nonzero.0;
        self.nonzero.1 += sign * pod.nonzero.1;
    }
}
