//! The scheduler's cluster view: nodes with per-node aggregates, every pod, namespace labels, and
//! the indexes scoring needs (pods per controller per node, pods with affinity terms). Pods the
//! scheduler has decided on but whose binding is not yet seen are "assumed" onto their node.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::model::{NodeInfo, PodInfo};

/// The cluster as the scheduler sees it.
#[derive(Default)]
pub struct ClusterState {
    pub nodes: HashMap<String, NodeInfo>,
    /// Every pod by `namespace/name`.
    pub pods: HashMap<String, Arc<PodInfo>>,
    /// Where each accounted pod is accounted (bound or assumed).
    placed: HashMap<String, String>,
    /// Pods decided on whose binding has not been observed: key → node.
    pub assumed: HashMap<String, String>,
    /// Namespace labels.
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Controller owner uid → node → number of its accounted pods there.
    pub owner_counts: HashMap<String, HashMap<String, u32>>,
    /// Accounted pods that have pod (anti-)affinity terms.
    pub affinity_pods: HashSet<String>,
}

impl ClusterState {
    /// Adds or refreshes a node.
    pub fn upsert_node(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(n) => n.update_node(node),
            None => {
                let mut n = NodeInfo::from_node(node);
                // Pods that were bound to it before it was seen.
                for (key, at) in &self.placed {
                    if *at == name {
                        if let Some(p) = self.pods.get(key) {
                            n.add_pod(p.clone());
                        }
                    }
                }
                self.nodes.insert(name, n);
            }
        }
    }

    /// Removes a node (its pods stay known, accounted to nowhere).
    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Where a pod should be accounted: its node, or the node it is assumed on.
    fn target(&self, p: &PodInfo) -> Option<String> {
        if p.terminal {
            return None;
        }
        p.node_name.clone().or_else(|| self.assumed.get(&p.key).cloned())
    }

    /// Adds or refreshes a pod. Returns the previous version.
    pub fn upsert_pod(&mut self, p: PodInfo) -> Option<Arc<PodInfo>> {
        if p.node_name.is_some() {
            self.assumed.remove(&p.key);
        }
        let p = Arc::new(p);
        let old = self.pods.insert(p.key.clone(), p.clone());
        self.unplace(&p.key);
        if let Some(node) = self.target(&p) {
            self.place(p, node);
        }
        old
    }

    /// Forgets a pod.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        self.assumed.remove(key);
        self.unplace(key);
        self.pods.remove(key)
    }

    /// Accounts a pod to `node` until its binding is observed (or [`forget`](Self::forget)).
    pub fn assume(&mut self, key: &str, node: &str) {
        self.assumed.insert(key.to_string(), node.to_string());
        if let Some(p) = self.pods.get(key).cloned() {
            self.unplace(key);
            self.place(p, node.to_string());
        }
    }

    /// Undoes [`assume`](Self::assume) after a failed binding.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key).is_some() {
            self.unplace(key);
            if let Some(p) = self.pods.get(key).cloned() {
                if let Some(node) = self.target(&p) {
                    self.place(p, node);
                }
            }
        }
    }

    fn place(&mut self, p: Arc<PodInfo>, node: String) {
        if let Some(owner) = &p.owner_uid {
            *self.owner_counts.entry(owner.clone()).or_default().entry(node.clone()).or_default() += 1;
        }
        if p.has_pod_affinity() {
            self.affinity_pods.insert(p.key.clone());
        }
        if let Some(n) = self.nodes.get_mut(&node) {
            n.add_pod(p.clone());
        }
        self.placed.insert(p.key.clone(), node);
    }

    fn unplace(&mut self, key: &str) {
        let Some(node) = self.placed.remove(key) else { return };
        let removed = self.nodes.get_mut(&node).and_then(|n| n.remove_pod(key));
        let p = removed.or_else(|| self.pods.get(key).cloned());
        self.affinity_pods.remove(key);
        if let Some(owner) = p.as_ref().and_then(|p| p.owner_uid.clone()) {
            if let Some(m) = self.owner_counts.get_mut(&owner) {
                if let Some(c) = m.get_mut(&node) {
                    *c = c.saturating_sub(1);
                    if *c == 0 {
                        m.remove(&node);
                    }
                }
                if m.is_empty() {
                    self.owner_counts.remove(&owner);
                }
            }
        }
    }

    /// The node a pod is accounted to.
    pub fn placement(&self, key: &str) -> Option<&str> {
        self.placed.get(key).map(String::as_str)
    }

    /// Every accounted pod with its node.
    pub fn placed_pods(&self) -> impl Iterator<Item = (&Arc<PodInfo>, &NodeInfo)> {
        self.nodes.values().flat_map(|n| n.pods.values().map(move |p| (p, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
            "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap()
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> PodInfo {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d", "uid": name,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs1", "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]}}))
        .unwrap();
        PodInfo::from_pod(&p)
    }

    #[test]
    fn aggregates_follow_binds_assumes_and_deletes() {
        let mut s = ClusterState::default();
        s.upsert_node(&node("n1"));
        s.upsert_pod(pod("a", Some("n1"), "500m"));
        s.upsert_pod(pod("b", None, "250m"));
        assert_eq!(s.nodes["n1"].requested.milli_cpu, 500);
        s.assume("d/b", "n1");
        assert_eq!(s.nodes["n1"].requested.milli_cpu, 750);
        assert_eq!(s.owner_counts["rs1"]["n1"], 2);
        // An unbound update of an assumed pod keeps it assumed.
        s.upsert_pod(pod("b", None, "250m"));
        assert_eq!(s.nodes["n1"].requested.milli_cpu, 750);
        s.forget("d/b");
        assert_eq!(s.nodes["n1"].requested.milli_cpu, 500);
        s.remove_pod("d/a");
        assert_eq!(s.nodes["n1"].requested.milli_cpu, 0);
        assert!(!s.owner_counts.contains_key("rs1"));
        // A pod bound before its node is known is accounted once the node appears.
        s.upsert_pod(pod("c", Some("n2"), "1"));
        s.upsert_node(&node("n2"));
        assert_eq!(s.nodes["n2"].requested.milli_cpu, 1000);
    }
}
