//! The resource registry: every built-in resource kelp serves, with what discovery reports about
//! it (names, scope, verbs, subresources) and how its objects are decoded and stored.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::api::status::{Cause, StatusError};

/// The verb of a resource that is only ever created and answered (reviews).
pub const CREATE_ONLY: &[&str] = &["create"];

/// The verbs of an ordinary stored resource.
pub const STANDARD_VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// A subresource and what it answers with.
#[derive(Debug, Clone, Copy)]
pub struct Subresource {
    pub name: &'static str,
    /// (group, version, kind) of the response; empty kind = the parent's kind.
    pub response: (&'static str, &'static str, &'static str),
    pub verbs: &'static [&'static str],
}

const STATUS: Subresource = Subresource { name: "status", response: ("", "", ""), verbs: &["get", "patch", "update"] };
const SCALE: Subresource =
    Subresource { name: "scale", response: ("autoscaling", "v1", "Scale"), verbs: &["get", "patch", "update"] };

const POD_SUBRESOURCES: &[Subresource] = &[
    STATUS,
    Subresource { name: "attach", response: ("", "v1", "PodAttachOptions"), verbs: &["create", "get"] },
    Subresource { name: "binding", response: ("", "v1", "Binding"), verbs: &["create"] },
    Subresource { name: "ephemeralcontainers", response: ("", "", ""), verbs: &["get", "patch", "update"] },
    Subresource { name: "eviction", response: ("policy", "v1", "Eviction"), verbs: &["create"] },
    Subresource { name: "exec", response: ("", "v1", "PodExecOptions"), verbs: &["create", "get"] },
    Subresource { name: "log", response: ("", "", ""), verbs: &["get"] },
    Subresource { name: "portforward", response: ("", "v1", "PodPortForwardOptions"), verbs: &["create", "get"] },
    Subresource {
        name: "proxy",
        response: ("", "v1", "PodProxyOptions"),
        verbs: &["create", "delete", "get", "patch", "update"],
    },
    Subresource { name: "resize", response: ("", "", ""), verbs: &["get", "patch", "update"] },
];
const NODE_SUBRESOURCES: &[Subresource] = &[
    STATUS,
    Subresource {
        name: "proxy",
        response: ("", "v1", "NodeProxyOptions"),
        verbs: &["create", "delete", "get", "patch", "update"],
    },
];
const SERVICE_SUBRESOURCES: &[Subresource] = &[
    STATUS,
    Subresource {
        name: "proxy",
        response: ("", "v1", "ServiceProxyOptions"),
        verbs: &["create", "delete", "get", "patch", "update"],
    },
];
const NAMESPACE_SUBRESOURCES: &[Subresource] =
    &[STATUS, Subresource { name: "finalize", response: ("", "", ""), verbs: &["update"] }];
const SA_SUBRESOURCES: &[Subresource] =
    &[Subresource { name: "token", response: ("authentication.k8s.io", "v1", "TokenRequest"), verbs: &["create"] }];
const STATUS_ONLY: &[Subresource] = &[STATUS];
const STATUS_SCALE: &[Subresource] = &[STATUS, SCALE];
const SCALE_ONLY: &[Subresource] = &[SCALE];
const NONE: &[Subresource] = &[];

/// Decodes a JSON object through the kind's typed struct and back: unknown fields are dropped and
/// wrongly typed fields rejected, as upstream's decoding does.
pub type Codec = fn(Value) -> Result<Value, CodecError>;

/// Why an object could not be decoded as its kind.
#[derive(Debug, Clone)]
pub enum CodecError {
    /// A required field is absent (`path` is the field's JSON path).
    Missing { path: String },
    /// Malformed: wrong types and the like.
    Malformed { path: String, message: String },
}

fn typed<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, CodecError> {
    let t: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            Some(field) => {
                let path = if path == "." || path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
                CodecError::Missing { path }
            }
            None => CodecError::Malformed { path, message },
        }
    })?;
    let decoded =
        serde_json::to_value(t).map_err(|e| CodecError::Malformed { path: String::new(), message: e.to_string() })?;
    Ok(decoded)
}

/// Keep only what both the typed round trip and the input have: the round trip drops unknown
/// fields, and this drops what it invented (k8s-openapi fills absent required fields with defaults,
/// which would hide a missing `spec.selector` from validation).
fn intersect(decoded: Value, input: &Value) -> Value {
    match (decoded, input) {
        (Value::Object(out), Value::Object(inp)) => {
            Value::Object(out.into_iter().filter_map(|(k, v)| inp.get(&k).map(|i| (k, intersect(v, i)))).collect())
        }
        (Value::Array(out), Value::Array(inp)) => {
            Value::Array(out.into_iter().zip(inp.iter()).map(|(o, i)| intersect(o, i)).collect())
        }
        (out, _) => out,
    }
}

fn typed_pruned<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, CodecError> {
    let input = v.clone();
    typed::<T>(v).map(|d| intersect(d, &input))
}

impl CodecError {
    /// The API error for a body of `def` that failed to decode.
    pub fn to_status(&self, def: &ResourceDef, name: &str) -> StatusError {
        match self {
            CodecError::Missing { path } => {
                StatusError::invalid(def.group, def.kind, name, vec![Cause::required(path.clone())])
            }
            CodecError::Malformed { path, message } => {
                let at = if path.is_empty() || path == "." { String::new() } else { format!("{path}: ") };
                StatusError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {at}{message}",
                    def.kind, def.version, def.kind
                ))
            }
        }
    }
}

/// One resource at one group-version.
#[derive(Debug)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// metadata.generation is maintained (bumped when anything but metadata and status changes).
    pub generation: bool,
    /// The name objects are stored under (shared by the versions of one resource).
    pub storage: &'static str,
    /// This version is the one objects are stored in.
    pub storage_version: bool,
    pub codec: Codec,
    /// For a custom resource (a CRD version), what its CustomResourceDefinition says.
    pub custom: Option<&'static CustomInfo>,
}

/// A CustomResourceDefinition version's schema and printing.
#[derive(Debug)]
pub struct CustomInfo {
    /// `openAPIV3Schema` (structural), if given.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// `subresources.scale`: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    pub scale_paths: Option<(String, String, Option<String>)>,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// Store key prefix for a namespace (None = all namespaces, or a cluster-scoped resource).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.storage),
            _ => format!("/registry/{}/", self.storage),
        }
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }
}

macro_rules! def {
    ($g:expr, $v:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cats:expr, $subs:expr, $gen:expr, $ty:ty) => {
        ResourceDef {
            group: $g,
            version: $v,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cats,
            verbs: STANDARD_VERBS,
            subresources: $subs,
            generation: $gen,
            storage: if $g.is_empty() { $plural } else { concat!($plural, ".", $g) },
            storage_version: true,
            codec: typed_pruned::<$ty>,
            custom: None,
        }
    };
}

const ALL: &[&str] = &["all"];
const READ_ONLY: &[&str] = &["get", "list"];
const NO: &[&str] = &[];

use k8s_openapi::api as k;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;

#[rustfmt::skip]
static RESOURCES: &[ResourceDef] = &[
    // core/v1
    def!("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], NO, NONE, false, k::core::v1::ConfigMap),
    def!("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], NO, NONE, false, k::core::v1::Endpoints),
    def!("", "v1", "Event", "events", "event", true, &["ev"], NO, NONE, false, k::core::v1::Event),
    def!("", "v1", "LimitRange", "limitranges", "limitrange", true, &["limits"], NO, NONE, false, k::core::v1::LimitRange),
    def!("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], NO, NAMESPACE_SUBRESOURCES, false, k::core::v1::Namespace),
    def!("", "v1", "Node", "nodes", "node", false, &["no"], NO, NODE_SUBRESOURCES, false, k::core::v1::Node),
    def!("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, &["pv"], NO, STATUS_ONLY, false, k::core::v1::PersistentVolume),
    def!("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true, &["pvc"], NO, STATUS_ONLY, false, k::core::v1::PersistentVolumeClaim),
    def!("", "v1", "Pod", "pods", "pod", true, &["po"], ALL, POD_SUBRESOURCES, false, k::core::v1::Pod),
    def!("", "v1", "PodTemplate", "podtemplates", "podtemplate", true, NO, NO, NONE, false, k::core::v1::PodTemplate),
    def!("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", true, &["rc"], ALL, STATUS_SCALE, true, k::core::v1::ReplicationController),
    def!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", true, &["quota"], NO, STATUS_ONLY, false, k::core::v1::ResourceQuota),
    def!("", "v1", "Secret", "secrets", "secret", true, NO, NO, NONE, false, k::core::v1::Secret),
    def!("", "v1", "Service", "services", "service", true, &["svc"], ALL, SERVICE_SUBRESOURCES, false, k::core::v1::Service),
    def!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], NO, SA_SUBRESOURCES, false, k::core::v1::ServiceAccount),
    // apps/v1
    def!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, NO, NO, NONE, false, k::apps::v1::ControllerRevision),
    def!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["ds"], ALL, STATUS_ONLY, true, k::apps::v1::DaemonSet),
    def!("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], ALL, STATUS_SCALE, true, k::apps::v1::Deployment),
    def!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], ALL, STATUS_SCALE, true, k::apps::v1::ReplicaSet),
    def!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["sts"], ALL, STATUS_SCALE, true, k::apps::v1::StatefulSet),
    // batch/v1
    def!("batch", "v1", "CronJob", "cronjobs", "cronjob", true, &["cj"], ALL, STATUS_ONLY, true, k::batch::v1::CronJob),
    def!("batch", "v1", "Job", "jobs", "job", true, NO, ALL, STATUS_ONLY, true, k::batch::v1::Job),
    // networking.k8s.io/v1
    def!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, &["ing"], NO, STATUS_ONLY, true, k::networking::v1::Ingress),
    def!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, NO, NO, NONE, false, k::networking::v1::IngressClass),
    def!("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, &["netpol"], NO, NONE, true, k::networking::v1::NetworkPolicy),
    def!("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", false, &["ip"], NO, NONE, false, k::networking::v1::IPAddress),
    def!("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", false, NO, NO, STATUS_ONLY, false, k::networking::v1::ServiceCIDR),
    // rbac.authorization.k8s.io/v1
    def!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, NO, NO, NONE, false, k::rbac::v1::ClusterRole),
    def!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, NO, NO, NONE, false, k::rbac::v1::ClusterRoleBinding),
    def!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, NO, NO, NONE, false, k::rbac::v1::Role),
    def!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, NO, NO, NONE, false, k::rbac::v1::RoleBinding),
    // coordination.k8s.io/v1
    def!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, NO, NO, NONE, false, k::coordination::v1::Lease),
    // discovery.k8s.io/v1
    def!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, NO, NO, NONE, false, k::discovery::v1::EndpointSlice),
    // policy/v1
    def!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, &["pdb"], NO, STATUS_ONLY, true, k::policy::v1::PodDisruptionBudget),
    // autoscaling: v2 is stored, v1 converted
    def!("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["hpa"], ALL, STATUS_ONLY, false, k::autoscaling::v2::HorizontalPodAutoscaler),
    ResourceDef {
        storage_version: false,
        ..def!("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["hpa"], ALL, STATUS_ONLY, false, k::autoscaling::v1::HorizontalPodAutoscaler)
    },
    // storage.k8s.io/v1
    def!("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", false, NO, NO, NONE, false, k::storage::v1::CSIDriver),
    def!("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", false, NO, NO, NONE, false, k::storage::v1::CSINode),
    def!("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", "csistoragecapacity", true, NO, NO, NONE, false, k::storage::v1::CSIStorageCapacity),
    def!("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", false, &["sc"], NO, NONE, false, k::storage::v1::StorageClass),
    def!("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "volumeattachment", false, NO, NO, STATUS_ONLY, false, k::storage::v1::VolumeAttachment),
    // scheduling.k8s.io/v1
    def!("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", false, &["pc"], NO, NONE, false, k::scheduling::v1::PriorityClass),
    // events.k8s.io/v1: the same objects as core/v1 events, converted
    ResourceDef {
        storage: "events",
        storage_version: false,
        ..def!("events.k8s.io", "v1", "Event", "events", "event", true, &["ev"], NO, NONE, false, k::events::v1::Event)
    },
    // authorization.k8s.io/v1 and authentication.k8s.io/v1: reviews, answered and never stored
    ResourceDef { verbs: CREATE_ONLY, ..def!("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", true, NO, NO, NONE, false, k::authorization::v1::LocalSubjectAccessReview) },
    ResourceDef { verbs: CREATE_ONLY, ..def!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, NO, NO, NONE, false, k::authorization::v1::SelfSubjectAccessReview) },
    ResourceDef { verbs: CREATE_ONLY, ..def!("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", false, NO, NO, NONE, false, k::authorization::v1::SelfSubjectRulesReview) },
    ResourceDef { verbs: CREATE_ONLY, ..def!("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", false, NO, NO, NONE, false, k::authorization::v1::SubjectAccessReview) },
    ResourceDef { verbs: CREATE_ONLY, ..def!("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false, NO, NO, NONE, false, k::authentication::v1::SelfSubjectReview) },
    // kubectl 1.27 asks v1beta1 (v1 is from 1.28); same shape, answered the same way.
    ResourceDef { verbs: CREATE_ONLY, codec: untyped, ..def!("authentication.k8s.io", "v1beta1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false, NO, NO, NONE, false, k::authentication::v1::SelfSubjectReview) },
    // apiextensions.k8s.io/v1
    ResourceDef {
        categories: &["api-extensions"],
        ..def!("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", false, &["crd", "crds"], NO, STATUS_ONLY, true, apiext::CustomResourceDefinition)
    },
    // metrics.k8s.io/v1beta1: read-only, computed from the agents' usage (src/apiserver/metrics.rs).
    ResourceDef { verbs: READ_ONLY, codec: untyped, singular: "", storage: "nodes.metrics.k8s.io", ..def!("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", "", false, NO, NO, NONE, false, k::core::v1::Node) },
    ResourceDef { verbs: READ_ONLY, codec: untyped, singular: "", storage: "pods.metrics.k8s.io", ..def!("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", "", true, NO, NO, NONE, false, k::core::v1::Pod) },
];

/// The group of the resource metrics API.
pub const METRICS_GROUP: &str = "metrics.k8s.io";

/// Whether kelp serves the metrics API itself (`--disable metrics-server` leaves the group to
/// custom resources or another provider).
static METRICS_SERVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the built-in metrics API on or off (once, at start).
pub fn serve_metrics_api(on: bool) {
    METRICS_SERVED.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// The built-in resources being served.
fn builtin() -> impl Iterator<Item = &'static ResourceDef> {
    let metrics = METRICS_SERVED.load(std::sync::atomic::Ordering::SeqCst);
    RESOURCES.iter().filter(move |d| metrics || d.group != METRICS_GROUP)
}

/// Custom resources served, from the CustomResourceDefinitions (replaced as a whole).
static CUSTOM: std::sync::RwLock<Vec<&'static ResourceDef>> = std::sync::RwLock::new(Vec::new());

/// Every resource served: the built-in ones, then the custom ones.
pub fn all() -> Vec<&'static ResourceDef> {
    let mut out: Vec<&'static ResourceDef> = builtin().collect();
    if let Ok(c) = CUSTOM.read() {
        out.extend(c.iter().copied());
    }
    out
}

/// The subresources a custom resource version has.
pub fn custom_subresources(status: bool, scale: bool) -> &'static [Subresource] {
    match (status, scale) {
        (true, true) => STATUS_SCALE,
        (true, false) => STATUS_ONLY,
        (false, true) => SCALE_ONLY,
        (false, false) => NONE,
    }
}

/// Counts changes of the custom resources (documents derived from the registry key on it).
static CUSTOM_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Replace the custom resources served.
pub fn set_custom(defs: Vec<&'static ResourceDef>) {
    if let Ok(mut c) = CUSTOM.write() {
        let same = c.len() == defs.len() && c.iter().zip(&defs).all(|(a, b)| std::ptr::eq(*a, *b));
        *c = defs;
        if !same {
            CUSTOM_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Changes with every change of the custom resources served.
pub fn custom_generation() -> u64 {
    CUSTOM_GENERATION.load(std::sync::atomic::Ordering::SeqCst)
}

/// The custom resources served now.
pub fn custom() -> Vec<&'static ResourceDef> {
    CUSTOM.read().map(|c| c.clone()).unwrap_or_default()
}

/// Is `group` one of the built-in API groups?
pub fn is_builtin_group(group: &str) -> bool {
    builtin().any(|d| d.group == group)
}

/// Is (group, plural) served by a built-in resource?
pub fn is_builtin(group: &str, plural: &str) -> bool {
    builtin().any(|d| d.group == group && d.plural == plural)
}

/// Look up a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    builtin().find(|d| d.group == group && d.version == version && d.plural == plural).or_else(|| {
        CUSTOM.read().ok()?.iter().copied().find(|d| d.group == group && d.version == version && d.plural == plural)
    })
}

/// Look up a resource by group, version and kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceDef> {
    all().into_iter().find(|d| d.group == group && d.version == version && d.kind == kind)
}

/// The version a resource is stored in, by storage name.
pub fn by_storage(storage: &str) -> Option<&'static ResourceDef> {
    builtin()
        .find(|d| d.storage == storage && d.storage_version)
        .or_else(|| CUSTOM.read().ok()?.iter().copied().find(|d| d.storage == storage && d.storage_version))
}

/// The stored version of the resource `def` is a version of.
pub fn storage_def(def: &'static ResourceDef) -> &'static ResourceDef {
    if def.storage_version {
        def
    } else {
        by_storage(def.storage).unwrap_or(def)
    }
}

/// An object decoded as is (custom resources: their schema is applied separately).
pub fn untyped(v: Value) -> Result<Value, CodecError> {
    Ok(v)
}

/// Group versions served, in discovery order (preferred version first within a group).
pub fn group_versions() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for d in all() {
        match out.iter_mut().find(|(g, _)| *g == d.group) {
            Some((_, vs)) => {
                if !vs.contains(&d.version) {
                    vs.push(d.version);
                }
            }
            None => out.push((d.group, vec![d.version])),
        }
    }
    out
}

/// Split a store key into (storage, namespace, name).
pub fn parse_key(key: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.splitn(3, '/');
    let storage = parts.next()?;
    let a = parts.next()?;
    match parts.next() {
        Some(name) => Some((storage, Some(a), name)),
        None => Some((storage, None, a)),
    }
}

/// Convert an object from its stored version to `def`'s version.
pub fn from_storage(def: &ResourceDef, mut obj: Value) -> Value {
    if def.storage_version {
        return obj;
    }
    match (def.group, def.kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => hpa_v2_to_v1(&mut obj),
        ("events.k8s.io", "Event") => core_event_to_events(&mut obj),
        _ => {}
    }
    obj["apiVersion"] = Value::String(def.api_version());
    obj
}

/// Convert an object of `def`'s version to its stored version.
pub fn to_storage(def: &ResourceDef, mut obj: Value) -> Value {
    if def.storage_version {
        return obj;
    }
    match (def.group, def.kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => {
            hpa_v1_to_v2(&mut obj);
            obj["apiVersion"] = Value::String("autoscaling/v2".into());
        }
        ("events.k8s.io", "Event") => {
            events_to_core_event(&mut obj);
            obj["apiVersion"] = Value::String("v1".into());
        }
        _ => {
            // Custom resources: versions differ only in apiVersion (conversion strategy None).
            if let Some(stored) = by_storage(def.storage) {
                obj["apiVersion"] = Value::String(stored.api_version());
            }
        }
    }
    obj
}

fn take(obj: &mut Value, field: &str) -> Option<Value> {
    obj.as_object_mut().and_then(|m| m.remove(field))
}

fn put(obj: &mut Value, field: &str, v: Option<Value>) {
    if let (Some(v), Some(m)) = (v, obj.as_object_mut()) {
        if !v.is_null() {
            m.insert(field.to_string(), v);
        }
    }
}

fn hpa_v1_to_v2(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec") {
        if let Some(cpu) = take(spec, "targetCPUUtilizationPercentage") {
            spec["metrics"] = serde_json::json!([{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": cpu } }
            }]);
        }
    }
    if let Some(status) = obj.get_mut("status") {
        if let Some(cpu) = take(status, "currentCPUUtilizationPercentage") {
            status["currentMetrics"] = serde_json::json!([{
                "type": "Resource",
                "resource": { "name": "cpu", "current": { "averageUtilization": cpu } }
            }]);
        }
    }
}

fn hpa_v2_to_v1(obj: &mut Value) {
    let cpu_of = |list: Option<Value>, field: &str| -> Option<Value> {
        list?.as_array()?.iter().find_map(|m| {
            let r = m.get("resource")?;
            (r.get("name")?.as_str()? == "cpu").then(|| r.get(field)?.get("averageUtilization").cloned()).flatten()
        })
    };
    if let Some(spec) = obj.get_mut("spec") {
        let metrics = take(spec, "metrics");
        take(spec, "behavior");
        put(spec, "targetCPUUtilizationPercentage", cpu_of(metrics, "target"));
    }
    if let Some(status) = obj.get_mut("status") {
        let metrics = take(status, "currentMetrics");
        take(status, "conditions");
        put(status, "currentCPUUtilizationPercentage", cpu_of(metrics, "current"));
    }
}

/// (events.k8s.io/v1 field, core/v1 field) pairs that only differ in name.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn core_event_to_events(obj: &mut Value) {
    for (new, old) in EVENT_RENAMES {
        let v = take(obj, old);
        put(obj, new, v);
    }
}

fn events_to_core_event(obj: &mut Value) {
    for (new, old) in EVENT_RENAMES {
        let v = take(obj, new);
        put(obj, old, v);
    }
}

/// Field selector names of events.k8s.io/v1 mapped to core/v1 ones.
pub fn events_field_to_core(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match field {
        "reportingController" => "reportingComponent".into(),
        "deprecatedSource" => "source".into(),
        "note" => "message".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_resource_decodes_an_empty_object() {
        for d in all() {
            let obj = json!({"apiVersion": d.api_version(), "kind": d.kind, "metadata": {"name": "x"}});
            // Some kinds have required fields; those must come back as Missing, never Malformed.
            if let Err(CodecError::Malformed { path, message }) = (d.codec)(obj) {
                panic!("{} {}: {path}: {message}", d.api_version(), d.kind);
            }
        }
    }

    #[test]
    fn absent_fields_stay_absent_and_bad_types_have_a_path() {
        let d = find("apps", "v1", "deployments").unwrap();
        let out = (d.codec)(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {}}}),
        )
        .unwrap();
        assert!(out["spec"].get("selector").is_none(), "absent required fields stay absent for validation: {out}");
        let bad = (d.codec)(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "three", "selector": {}, "template": {}}}),
        );
        assert!(matches!(bad, Err(CodecError::Malformed { ref path, .. }) if path == "spec.replicas"), "{bad:?}");
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let d = find("", "v1", "configmaps").unwrap();
        let v = (d.codec)(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "bogus": 1, "data": {"a": "b"}}),
        )
        .unwrap();
        assert!(v.get("bogus").is_none());
        assert_eq!(v["data"]["a"], "b");
    }

    #[test]
    fn hpa_and_events_round_trip_through_storage() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let obj = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 70, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}});
        let stored = to_storage(v1, obj.clone());
        assert_eq!(stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
        assert_eq!(from_storage(v1, stored), obj);
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "note": "hi", "regarding": {"name": "p"}, "eventTime": null});
        let core = to_storage(ev, e);
        assert_eq!(core["message"], "hi");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(from_storage(ev, core)["note"], "hi");
    }

    #[test]
    fn keys_parse_back() {
        let d = find("apps", "v1", "deployments").unwrap();
        let k = d.key(Some("default"), "web");
        assert_eq!(k, "/registry/deployments.apps/default/web");
        assert_eq!(parse_key(&k), Some(("deployments.apps", Some("default"), "web")));
        assert_eq!(parse_key("/registry/nodes/n1"), Some(("nodes", None, "n1")));
    }
}
