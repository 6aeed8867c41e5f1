//! Defaulting of built-in objects, as upstream Kubernetes 1.33 does it: the generated and
//! hand-written `SetDefaults_*` functions of each API group (applied when a request body is
//! decoded, and again when an object is read back from storage) plus the parts of the registry
//! strategies' `PrepareForCreate` that shape what a client sees (status reset, `generation`,
//! Job selector generation, Namespace finalizers...).
//!
//! Everything works on `serde_json::Value` objects in their versioned (v1) wire form.
//!
//! Deliberately *not* done here (other parts of the API server own them): cluster IP and node
//! port allocation, service account admission (`serviceAccountName: default`), priority
//! admission (`priority`), uid/name/creationTimestamp/resourceVersion.

use serde_json::{json, Map, Value};

use crate::api::validation::{canonical_quantity, parse_quantity};

/// Fill in defaults as upstream's defaulting + strategy `PrepareForCreate` would. `obj` is a full
/// object with apiVersion/kind/metadata (metadata.uid and name are already set when this runs).
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => default_pod(obj),
        ("", "PodTemplate") => {
            if let Some(t) = obj.get_mut("template") {
                default_pod_template(t);
            }
        }
        ("", "ReplicationController") => default_replication_controller(obj),
        ("", "Service") => default_service(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "Secret") => default_secret(obj),
        ("", "ConfigMap") => {}
        ("", "PersistentVolumeClaim") => default_pvc(obj),
        ("", "PersistentVolume") => default_pv(obj),
        ("", "Node") => default_node(obj),
        ("", "Endpoints") => default_endpoints(obj),
        ("", "LimitRange") => default_limit_range(obj),
        ("", "ResourceQuota") => default_resource_quota(obj),
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => default_replica_set(obj),
        ("apps", "StatefulSet") => default_stateful_set(obj),
        ("apps", "DaemonSet") => default_daemon_set(obj),
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => default_cron_job(obj),
        ("networking.k8s.io", "Ingress") => default_ingress(obj),
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            default_role_binding(obj)
        }
        ("autoscaling", "HorizontalPodAutoscaler") => default_hpa(obj),
        ("policy", "PodDisruptionBudget") => {
            set_generation_one(obj);
            reset_status(obj, json!({}));
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(m) = obj.as_object_mut() {
                default_str(m, "preemptionPolicy", "PreemptLowerPriority");
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            if let Some(m) = obj.as_object_mut() {
                default_str(m, "reclaimPolicy", "Delete");
                default_str(m, "volumeBindingMode", "Immediate");
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default_str(p, "protocol", "TCP");
                }
            }
        }
        _ => {}
    }
}

/// Optional companion of [`apply_defaults`] for updates: what upstream's strategies'
/// `PrepareForUpdate` (and the Service REST layer) do before update validation. Call it on the
/// already-defaulted new object with the stored old object.
///
/// - status is carried over from `old` for kinds whose status is only writable through `/status`;
/// - `metadata.generation` is bumped when the spec changed (kinds that track generation);
/// - Service: allocated `clusterIP`/`clusterIPs`/`nodePort`s/`healthCheckNodePort` are kept when
///   the new object omits them (so `kubectl apply` of a manifest without them keeps working);
/// - Namespace: `spec.finalizers` can only be changed through `/finalize`;
/// - DaemonSet: the `deprecated.daemonset.template.generation` annotation follows template changes.
pub fn prepare_for_update(group: &str, kind: &str, obj: &mut Value, old: &Value) {
    if !obj.is_object() || !old.is_object() {
        return;
    }
    let status_kinds = matches!(
        (group, kind),
        ("", "Pod")
            | ("", "ReplicationController")
            | ("", "Service")
            | ("", "Namespace")
            | ("", "Node")
            | ("", "PersistentVolume")
            | ("", "PersistentVolumeClaim")
            | ("", "ResourceQuota")
            | ("apps", _)
            | ("batch", _)
            | ("networking.k8s.io", "Ingress")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("policy", "PodDisruptionBudget")
    );
    if status_kinds {
        match old.get("status") {
            Some(s) => {
                obj["status"] = s.clone();
            }
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if tracks_generation(group, kind) && obj.get("spec") != old.get("spec") {
        let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        meta_mut(obj).insert("generation".into(), json!(g + 1));
    } else if tracks_generation(group, kind) {
        if let Some(g) = old.pointer("/metadata/generation") {
            meta_mut(obj).insert("generation".into(), g.clone());
        }
    }
    match (group, kind) {
        ("", "Service") => service_patch_allocated(obj, old),
        ("", "Namespace") => {
            let fin = old.pointer("/spec/finalizers").cloned();
            let spec = ensure_obj(obj, "spec");
            match fin {
                Some(f) => {
                    spec.insert("finalizers".into(), f);
                }
                None => {
                    spec.remove("finalizers");
                }
            }
            if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) {
                let labels = ensure_obj(meta_mut_value(obj), "labels");
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        ("apps", "DaemonSet") => {
            const ANN: &str = "deprecated.daemonset.template.generation";
            let old_gen = old
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANN))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            let changed = obj.pointer("/spec/template") != old.pointer("/spec/template");
            let new_gen = if changed { old_gen + 1 } else { old_gen };
            if new_gen > 0 {
                let ann = ensure_obj(meta_mut_value(obj), "annotations");
                ann.insert(ANN.into(), json!(new_gen.to_string()));
            }
        }
        _ => {}
    }
}

/// Image pull policy default for an image reference: `Always` for `:latest` or no tag (digest
/// refs → `IfNotPresent`), else `IfNotPresent`. Unparseable references get `IfNotPresent`, like
/// upstream (which ignores the parse error).
pub fn default_pull_policy(image: &str) -> &'static str {
    match image_tag(image) {
        Some(tag) if tag == "latest" => "Always",
        _ => "IfNotPresent",
    }
}

/// The tag of an image reference as upstream's `parsers.ParseImageName` reports it: the explicit
/// tag, `latest` when there is neither tag nor digest, empty when there is only a digest, and
/// `None` when the reference does not parse.
fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.trim() != image {
        return None;
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        // algorithm:hex
        let (alg, hex) = d.split_once(':')?;
        if alg.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
    }
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
        None => (name_tag, None),
    };
    if !valid_repository_name(name) {
        return None;
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !ok {
            return None;
        }
        return Some(t.to_string());
    }
    if digest.is_some() {
        Some(String::new())
    } else {
        Some("latest".to_string())
    }
}

fn valid_repository_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            // registry host[:port]
            let (host, port) = match first.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                return false;
            }
            if let Some(p) = port {
                if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                    return false;
                }
            }
            parts.remove(0);
        }
    }
    parts.iter().all(|p| valid_path_component(p))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // separator run
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

fn unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Default a string field that Go treats as unset when empty.
fn default_str(m: &mut Map<String, Value>, key: &str, val: &str) {
    if unset(m.get(key)) {
        m.insert(key.into(), Value::String(val.into()));
    }
}

/// Default a pointer field (unset when absent or null).
fn default_ptr(m: &mut Map<String, Value>, key: &str, val: Value) {
    if matches!(m.get(key), None | Some(Value::Null)) {
        m.insert(key.into(), val);
    }
}

/// Default a non-pointer integer field (unset when absent, null or zero).
fn default_nonzero(m: &mut Map<String, Value>, key: &str, val: i64) {
    let is_zero = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(v) => v.as_i64() == Some(0),
    };
    if is_zero {
        m.insert(key.into(), json!(val));
    }
}

/// The object at `key`, created (or replaced if not an object) when needed.
fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let m = v.as_object_mut().expect("object");
    let e = m.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut().expect("object")
}

fn ensure_obj_in<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let e = m.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut().expect("object")
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    ensure_obj(obj, "metadata")
}

fn meta_mut_value(obj: &mut Value) -> &mut Value {
    ensure_obj(obj, "metadata");
    obj.get_mut("metadata").expect("metadata")
}

fn obj_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

fn arr_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Vec<Value>> {
    m.get_mut(key).and_then(Value::as_array_mut)
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

fn labels_empty(m: Option<&Value>) -> bool {
    match m {
        None | Some(Value::Null) => true,
        Some(Value::Object(o)) => o.is_empty(),
        _ => true,
    }
}

fn set_generation_one(obj: &mut Value) {
    meta_mut(obj).insert("generation".into(), json!(1));
}

fn reset_status(obj: &mut Value, status: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("status".into(), status);
    }
}

fn tracks_generation(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment")
            | ("apps", "ReplicaSet")
            | ("apps", "StatefulSet")
            | ("apps", "DaemonSet")
            | ("batch", "Job")
            | ("batch", "CronJob")
            | ("", "ReplicationController")
            | ("networking.k8s.io", "Ingress")
            | ("networking.k8s.io", "NetworkPolicy")
            | ("policy", "PodDisruptionBudget")
    )
}

// ---------------------------------------------------------------------------------------------
// Resource quantities: upstream rounds every ResourceList value up to milli precision and
// serializes it in canonical form (`2000m` → `2`, `1.5Gi` → `1536Mi`).

fn default_resource_list(v: Option<&mut Value>) {
    let Some(Value::Object(m)) = v else { return };
    for (_, q) in m.iter_mut() {
        if let Some(s) = q.as_str() {
            if let Some(mut parsed) = parse_quantity(s) {
                parsed.round_up_milli();
                *q = Value::String(canonical_quantity(&parsed));
            }
        }
    }
}

fn default_resource_requirements(res: Option<&mut Value>) {
    let Some(Value::Object(r)) = res else { return };
    default_resource_list(r.get_mut("limits"));
    default_resource_list(r.get_mut("requests"));
}

// ---------------------------------------------------------------------------------------------
// Pods and pod templates

fn default_pod(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_pod_spec(spec);
    // SetDefaults_Pod: pod-only defaults.
    for key in ["containers", "initContainers"] {
        if let Some(cs) = arr_mut(spec, key) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let res = ensure_obj_in(c, "resources");
                let limits = res.get("limits").and_then(Value::as_object).cloned();
                if let Some(limits) = limits {
                    let req = ensure_obj_in(res, "requests");
                    for (k, v) in limits {
                        req.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    default_ptr(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            if let Some(cs) = arr_mut(spec, key) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(ports) = arr_mut(c, "ports") {
                        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                            let cp = p.get("containerPort").cloned().unwrap_or(json!(0));
                            default_nonzero(p, "hostPort", cp.as_i64().unwrap_or(0));
                        }
                    }
                }
            }
        }
    }
    // PrepareForCreate: status is reset to Pending with the computed QoS class.
    let qos = pod_qos_class(obj.get("spec").unwrap_or(&Value::Null));
    reset_status(obj, json!({ "phase": "Pending", "qosClass": qos }));
}

/// Defaults of a `PodTemplateSpec` embedded in a workload (`template` of a Deployment...).
fn default_pod_template(t: &mut Value) {
    if !t.is_object() {
        *t = json!({});
    }
    let meta = ensure_obj(t, "metadata");
    // metav1.ObjectMeta.creationTimestamp is a non-pointer struct: upstream serializes `null`.
    meta.entry("creationTimestamp").or_insert(Value::Null);
    let spec = ensure_obj(t, "spec");
    default_pod_spec(spec);
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_ptr(spec, "securityContext", json!({}));
    default_ptr(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    // Conversion keeps the deprecated `serviceAccount` mirror of `serviceAccountName`.
    let san = str_of(spec, "serviceAccountName").to_string();
    let sa = str_of(spec, "serviceAccount").to_string();
    if san.is_empty() && !sa.is_empty() {
        spec.insert("serviceAccountName".into(), json!(sa));
    } else if !san.is_empty() && san != sa {
        spec.insert("serviceAccount".into(), json!(san));
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = arr_mut(spec, key) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
    if let Some(vols) = arr_mut(spec, "volumes") {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            default_volume(v);
        }
    }
    default_resource_list(spec.get_mut("overhead"));
    if let Some(Value::Object(r)) = spec.get_mut("resources") {
        default_resource_list(r.get_mut("limits"));
        default_resource_list(r.get_mut("requests"));
    }
}

fn default_container(c: &mut Map<String, Value>) {
    if unset(c.get("imagePullPolicy")) {
        let image = str_of(c, "image").to_string();
        c.insert("imagePullPolicy".into(), json!(default_pull_policy(&image)));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // `resources` is a non-pointer struct: upstream always serializes it.
    default_ptr(c, "resources", json!({}));
    default_resource_requirements(c.get_mut("resources"));
    if let Some(ports) = arr_mut(c, "ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_str(p, "protocol", "TCP");
        }
    }
    if let Some(env) = arr_mut(c, "env") {
        for e in env.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(vf) = obj_mut(e, "valueFrom") {
                if let Some(fr) = obj_mut(vf, "fieldRef") {
                    default_str(fr, "apiVersion", "v1");
                }
                if let Some(rf) = obj_mut(vf, "resourceFieldRef") {
                    default_ptr(rf, "divisor", json!("0"));
                }
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_mut(c, probe) {
            default_nonzero(p, "timeoutSeconds", 1);
            default_nonzero(p, "periodSeconds", 10);
            default_nonzero(p, "successThreshold", 1);
            default_nonzero(p, "failureThreshold", 3);
            default_handler(p);
            if let Some(g) = obj_mut(p, "grpc") {
                default_ptr(g, "service", json!(""));
            }
        }
    }
    if let Some(lc) = obj_mut(c, "lifecycle") {
        for h in ["postStart", "preStop"] {
            if let Some(h) = obj_mut(lc, h) {
                default_handler(h);
            }
        }
    }
}

fn default_handler(h: &mut Map<String, Value>) {
    if let Some(hg) = obj_mut(h, "httpGet") {
        default_str(hg, "path", "/");
        default_str(hg, "scheme", "HTTP");
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Map<String, Value>) {
    let has_source = VOLUME_SOURCES.iter().any(|k| !matches!(v.get(*k), None | Some(Value::Null)));
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(s) = obj_mut(v, "secret") {
        default_ptr(s, "defaultMode", json!(420));
    }
    if let Some(s) = obj_mut(v, "configMap") {
        default_ptr(s, "defaultMode", json!(420));
    }
    if let Some(s) = obj_mut(v, "downwardAPI") {
        default_ptr(s, "defaultMode", json!(420));
        if let Some(items) = arr_mut(s, "items") {
            for it in items.iter_mut().filter_map(Value::as_object_mut) {
                default_downward_item(it);
            }
        }
    }
    if let Some(s) = obj_mut(v, "projected") {
        default_ptr(s, "defaultMode", json!(420));
        if let Some(srcs) = arr_mut(s, "sources") {
            for src in srcs.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(t) = obj_mut(src, "serviceAccountToken") {
                    default_ptr(t, "expirationSeconds", json!(3600));
                }
                if let Some(d) = obj_mut(src, "downwardAPI") {
                    if let Some(items) = arr_mut(d, "items") {
                        for it in items.iter_mut().filter_map(Value::as_object_mut) {
                            default_downward_item(it);
                        }
                    }
                }
            }
        }
    }
    if let Some(s) = obj_mut(v, "hostPath") {
        default_ptr(s, "type", json!(""));
    }
    if let Some(s) = obj_mut(v, "iscsi") {
        default_str(s, "iscsiInterface", "default");
    }
    if let Some(s) = obj_mut(v, "rbd") {
        default_str(s, "pool", "rbd");
        default_str(s, "user", "admin");
        default_str(s, "keyring", "/etc/ceph/keyring");
    }
    if let Some(s) = obj_mut(v, "azureDisk") {
        default_ptr(s, "cachingMode", json!("ReadWrite"));
        default_ptr(s, "fsType", json!("ext4"));
        default_ptr(s, "readOnly", json!(false));
        default_ptr(s, "kind", json!("Shared"));
    }
    if let Some(s) = obj_mut(v, "scaleIO") {
        default_str(s, "storageMode", "ThinProvisioned");
        default_str(s, "fsType", "xfs");
    }
    if let Some(s) = obj_mut(v, "ephemeral") {
        if let Some(t) = s.get_mut("volumeClaimTemplate") {
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                default_pvc_spec(spec);
            }
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.entry("creationTimestamp").or_insert(Value::Null);
            }
        }
    }
    if let Some(s) = obj_mut(v, "image") {
        if unset(s.get("pullPolicy")) {
            let tag = image_tag(str_of(s, "reference"));
            let pp = if tag.as_deref() == Some("latest") { "Always" } else { "IfNotPresent" };
            s.insert("pullPolicy".into(), json!(pp));
        }
    }
}

fn default_downward_item(it: &mut Map<String, Value>) {
    if let Some(fr) = obj_mut(it, "fieldRef") {
        default_str(fr, "apiVersion", "v1");
    }
    if let Some(rf) = obj_mut(it, "resourceFieldRef") {
        default_ptr(rf, "divisor", json!("0"));
    }
}

/// Upstream's `qos.GetPodQOS` over regular and init containers.
fn pod_qos_class(spec: &Value) -> &'static str {
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<String, i128> = BTreeMap::new();
    let mut limits: BTreeMap<String, i128> = BTreeMap::new();
    let mut zero_limits: std::collections::BTreeSet<String> = Default::default();
    let mut is_guaranteed = true;
    let supported = ["cpu", "memory"];
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect::<Vec<_>>();
    for c in containers {
        let res = c.get("resources");
        let reqs = res.and_then(|r| r.get("requests")).and_then(Value::as_object);
        let lims = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
        if let Some(reqs) = reqs {
            for (name, q) in reqs {
                if !supported.contains(&name.as_str()) {
                    continue;
                }
                if let Some(q) = q.as_str().and_then(parse_quantity) {
                    if q.nanos != 0 {
                        *requests.entry(name.clone()).or_insert(0) += q.nanos;
                    }
                }
            }
        }
        let mut qos_limits_found = std::collections::BTreeSet::new();
        if let Some(lims) = lims {
            for (name, q) in lims {
                if !supported.contains(&name.as_str()) {
                    continue;
                }
                if let Some(q) = q.as_str().and_then(parse_quantity) {
                    if q.nanos != 0 {
                        qos_limits_found.insert(name.clone());
                        *limits.entry(name.clone()).or_insert(0) += q.nanos;
                    } else {
                        zero_limits.insert(name.clone());
                    }
                }
            }
        }
        if qos_limits_found.len() != supported.len() {
            is_guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if is_guaranteed {
        for (name, req) in &requests {
            if limits.get(name) != Some(req) {
                is_guaranteed = false;
                break;
            }
        }
    }
    if is_guaranteed && requests.len() == limits.len() {
        return "Guaranteed";
    }
    "Burstable"
}

// ---------------------------------------------------------------------------------------------
// Workloads

fn default_template_at(spec: &mut Map<String, Value>) {
    let t = spec.entry("template").or_insert_with(|| json!({}));
    default_pod_template(t);
}

fn default_deployment(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_ptr(spec, "replicas", json!(1));
    let strategy = ensure_obj_in(spec, "strategy");
    default_str(strategy, "type", "RollingUpdate");
    if str_of(strategy, "type") == "RollingUpdate" {
        let ru = ensure_obj_in(strategy, "rollingUpdate");
        default_ptr(ru, "maxUnavailable", json!("25%"));
        default_ptr(ru, "maxSurge", json!("25%"));
    }
    default_ptr(spec, "revisionHistoryLimit", json!(10));
    default_ptr(spec, "progressDeadlineSeconds", json!(600));
    default_template_at(spec);
    set_generation_one(obj);
    reset_status(obj, json!({}));
}

fn default_replica_set(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_ptr(spec, "replicas", json!(1));
    default_template_at(spec);
    set_generation_one(obj);
    reset_status(obj, json!({ "replicas": 0 }));
}

fn default_stateful_set(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_str(spec, "podManagementPolicy", "OrderedReady");
    let us = ensure_obj_in(spec, "updateStrategy");
    if unset(us.get("type")) {
        us.insert("type".into(), json!("RollingUpdate"));
        default_ptr(us, "rollingUpdate", json!({}));
    }
    if str_of(us, "type") == "RollingUpdate" {
        if let Some(ru) = obj_mut(us, "rollingUpdate") {
            default_ptr(ru, "partition", json!(0));
        }
    }
    let pol = ensure_obj_in(spec, "persistentVolumeClaimRetentionPolicy");
    default_str(pol, "whenDeleted", "Retain");
    default_str(pol, "whenScaled", "Retain");
    default_ptr(spec, "replicas", json!(1));
    default_ptr(spec, "revisionHistoryLimit", json!(10));
    default_template_at(spec);
    if let Some(vcts) = arr_mut(spec, "volumeClaimTemplates") {
        for t in vcts.iter_mut() {
            if !t.is_object() {
                continue;
            }
            if let Some(m) = t.as_object_mut() {
                default_str(m, "apiVersion", "v1");
                default_str(m, "kind", "PersistentVolumeClaim");
            }
            ensure_obj(t, "metadata").entry("creationTimestamp").or_insert(Value::Null);
            default_pvc_spec(ensure_obj(t, "spec"));
            let status = ensure_obj(t, "status");
            default_str(status, "phase", "Pending");
        }
    }
    set_generation_one(obj);
    reset_status(obj, json!({ "replicas": 0, "availableReplicas": 0 }));
}

fn default_daemon_set(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    let us = ensure_obj_in(spec, "updateStrategy");
    default_str(us, "type", "RollingUpdate");
    if str_of(us, "type") == "RollingUpdate" {
        let ru = ensure_obj_in(us, "rollingUpdate");
        default_ptr(ru, "maxUnavailable", json!(1));
        default_ptr(ru, "maxSurge", json!(0));
    }
    default_ptr(spec, "revisionHistoryLimit", json!(10));
    default_template_at(spec);
    // PrepareForCreate: templateGeneration = 1, surfaced in apps/v1 as an annotation.
    let ann = ensure_obj(meta_mut_value(obj), "annotations");
    ann.insert("deprecated.daemonset.template.generation".into(), json!("1"));
    set_generation_one(obj);
    reset_status(
        obj,
        json!({
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0
        }),
    );
}

fn default_replication_controller(obj: &mut Value) {
    let template_labels = obj.pointer("/spec/template/metadata/labels").cloned();
    if let Some(Value::Object(tl)) = &template_labels {
        let spec = ensure_obj(obj, "spec");
        if labels_empty(spec.get("selector")) {
            spec.insert("selector".into(), Value::Object(tl.clone()));
        }
        let meta = meta_mut(obj);
        if labels_empty(meta.get("labels")) {
            meta.insert("labels".into(), Value::Object(tl.clone()));
        }
    }
    let spec = ensure_obj(obj, "spec");
    default_ptr(spec, "replicas", json!(1));
    if spec.get("template").is_some_and(Value::is_object) {
        default_template_at(spec);
    }
    set_generation_one(obj);
    reset_status(obj, json!({ "replicas": 0 }));
}

fn default_job(obj: &mut Value) {
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let job_labels_empty = labels_empty(obj.pointer("/metadata/labels"));
    {
        let spec = ensure_obj(obj, "spec");
        let completions_unset = matches!(spec.get("completions"), None | Some(Value::Null));
        let parallelism_unset = matches!(spec.get("parallelism"), None | Some(Value::Null));
        if completions_unset && parallelism_unset {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        default_ptr(spec, "parallelism", json!(1));
        let per_index = !matches!(spec.get("backoffLimitPerIndex"), None | Some(Value::Null));
        default_ptr(spec, "backoffLimit", json!(if per_index { i32::MAX as i64 } else { 6 }));
        default_ptr(spec, "completionMode", json!("NonIndexed"));
        default_ptr(spec, "suspend", json!(false));
        let has_pfp = !matches!(spec.get("podFailurePolicy"), None | Some(Value::Null));
        default_ptr(spec, "podReplacementPolicy", json!(if has_pfp { "Failed" } else { "TerminatingOrFailed" }));
        default_ptr(spec, "manualSelector", json!(false));
        if let Some(pfp) = obj_mut(spec, "podFailurePolicy") {
            if let Some(rules) = arr_mut(pfp, "rules") {
                for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(pcs) = arr_mut(r, "onPodConditions") {
                        for pc in pcs.iter_mut().filter_map(Value::as_object_mut) {
                            default_str(pc, "status", "True");
                        }
                    }
                }
            }
        }
        default_template_at(spec);

        // PrepareForCreate: generate the selector unless the user asked for a manual one.
        let manual = spec.get("manualSelector").and_then(Value::as_bool).unwrap_or(false);
        // uid is always set on create; without it (an update body being re-defaulted) nothing
        // is generated and validation reports what upstream would.
        if !manual && !uid.is_empty() {
            let tmeta = ensure_obj(spec.get_mut("template").expect("template"), "metadata");
            let labels = ensure_obj_in(tmeta, "labels");
            for key in ["job-name", "batch.kubernetes.io/job-name"] {
                labels.entry(key).or_insert_with(|| json!(name));
            }
            for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
                labels.entry(key).or_insert_with(|| json!(uid));
            }
            let sel = ensure_obj_in(spec, "selector");
            let ml = ensure_obj_in(sel, "matchLabels");
            ml.entry("batch.kubernetes.io/controller-uid").or_insert_with(|| json!(uid));
        }
    }
    // SetDefaults_Job copies the template labels to an unlabeled Job (on decode and again when the
    // stored object, now carrying the generated labels, is read back).
    if job_labels_empty {
        if let Some(Value::Object(tl)) = obj.pointer("/spec/template/metadata/labels").cloned() {
            if !tl.is_empty() {
                meta_mut(obj).insert("labels".into(), Value::Object(tl));
            }
        }
    }
    set_generation_one(obj);
    reset_status(obj, json!({}));
}

fn default_cron_job(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_str(spec, "concurrencyPolicy", "Allow");
    default_ptr(spec, "suspend", json!(false));
    default_ptr(spec, "successfulJobsHistoryLimit", json!(3));
    default_ptr(spec, "failedJobsHistoryLimit", json!(1));
    let jt = spec.entry("jobTemplate").or_insert_with(|| json!({}));
    if !jt.is_object() {
        *jt = json!({});
    }
    ensure_obj(jt, "metadata").entry("creationTimestamp").or_insert(Value::Null);
    let jspec = ensure_obj(jt, "spec");
    default_template_at(jspec);
    set_generation_one(obj);
    reset_status(obj, json!({}));
}

// ---------------------------------------------------------------------------------------------
// Core kinds

fn default_service(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert("sessionAffinityConfig".into(), json!({ "clientIP": { "timeoutSeconds": 10800 } }));
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    let ty = str_of(spec, "type").to_string();
    if let Some(ports) = arr_mut(spec, "ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_str(p, "protocol", "TCP");
            let tp_unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(v) => v.as_i64() == Some(0),
            };
            if tp_unset {
                let port = p.get("port").cloned().unwrap_or(json!(0));
                p.insert("targetPort".into(), port);
            }
        }
    }
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips(spec));
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default_ptr(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_ptr(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // PrepareForCreate: clusterIPs follows clusterIP.
    let cip = str_of(spec, "clusterIP").to_string();
    let cips_empty = spec.get("clusterIPs").and_then(Value::as_array).is_none_or(|a| a.is_empty());
    if !cip.is_empty() && cips_empty {
        spec.insert("clusterIPs".into(), json!([cip]));
    }
    // IP family defaults (upstream does this in the IP allocation layer; single-stack IPv4 here).
    if ty != "ExternalName" {
        let headless = cip == "None";
        let selectorless = labels_empty(spec.get("selector"));
        if headless && selectorless {
            default_ptr(spec, "ipFamilyPolicy", json!("RequireDualStack"));
        } else {
            default_ptr(spec, "ipFamilyPolicy", json!("SingleStack"));
        }
        let fams_empty = spec.get("ipFamilies").and_then(Value::as_array).is_none_or(|a| a.is_empty());
        if fams_empty {
            let fam = if !headless && cip.contains(':') { "IPv6" } else { "IPv4" };
            spec.insert("ipFamilies".into(), json!([fam]));
        }
    }
    reset_status(obj, json!({ "loadBalancer": {} }));
}

fn has_external_ips(spec: &Map<String, Value>) -> bool {
    spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// Keep the allocated values of a Service when the update omits them (upstream's
/// `patchAllocatedValues`).
fn service_patch_allocated(obj: &mut Value, old: &Value) {
    let Some(old_spec) = old.get("spec").and_then(Value::as_object) else {
        return;
    };
    let new_type = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let old_type = str_of(old_spec, "type").to_string();
    let spec = ensure_obj(obj, "spec");
    let needs_cluster_ip = new_type != "ExternalName";
    if needs_cluster_ip && old_type != "ExternalName" {
        if unset(spec.get("clusterIP")) {
            if let Some(v) = old_spec.get("clusterIP") {
                spec.insert("clusterIP".into(), v.clone());
            }
        }
        let cip = str_of(spec, "clusterIP").to_string();
        let cips_empty = spec.get("clusterIPs").and_then(Value::as_array).is_none_or(|a| a.is_empty());
        if cips_empty {
            if let Some(old_cips) = old_spec.get("clusterIPs").and_then(Value::as_array) {
                if old_cips.first().and_then(Value::as_str) == Some(cip.as_str()) {
                    spec.insert("clusterIPs".into(), Value::Array(old_cips.clone()));
                }
            }
            let still_empty = spec.get("clusterIPs").and_then(Value::as_array).is_none_or(|a| a.is_empty());
            if still_empty && !cip.is_empty() {
                spec.insert("clusterIPs".into(), json!([cip]));
            }
        }
    }
    let needs_node_port = matches!(new_type.as_str(), "NodePort" | "LoadBalancer");
    if needs_node_port {
        let old_ports: Vec<Map<String, Value>> = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.as_object().cloned()).collect())
            .unwrap_or_default();
        if let Some(ports) = arr_mut(spec, "ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                let np_unset = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0;
                if !np_unset {
                    continue;
                }
                let port = p.get("port").cloned();
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
                let found = old_ports.iter().find(|op| {
                    op.get("port") == port.as_ref()
                        && op.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto
                });
                if let Some(np) = found.and_then(|op| op.get("nodePort")).filter(|v| v.as_i64().unwrap_or(0) != 0) {
                    p.insert("nodePort".into(), np.clone());
                }
            }
        }
    }
    if new_type == "LoadBalancer"
        && str_of(spec, "externalTrafficPolicy") == "Local"
        && spec.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0
    {
        if let Some(h) = old_spec.get("healthCheckNodePort").filter(|v| v.as_i64().unwrap_or(0) != 0) {
            spec.insert("healthCheckNodePort".into(), h.clone());
        }
    }
    if needs_cluster_ip {
        if unset(spec.get("ipFamilyPolicy")) {
            if let Some(v) = old_spec.get("ipFamilyPolicy") {
                spec.insert("ipFamilyPolicy".into(), v.clone());
            }
        }
        let fams_empty = spec.get("ipFamilies").and_then(Value::as_array).is_none_or(|a| a.is_empty());
        if fams_empty {
            if let Some(v) = old_spec.get("ipFamilies") {
                spec.insert("ipFamilies".into(), v.clone());
            }
        }
    }
}

fn default_namespace(obj: &mut Value) {
    if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) {
        if !name.is_empty() {
            let labels = ensure_obj(meta_mut_value(obj), "labels");
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    let spec = ensure_obj(obj, "spec");
    let fins = spec.entry("finalizers").or_insert_with(|| json!([]));
    if !fins.is_array() {
        *fins = json!([]);
    }
    let arr = fins.as_array_mut().expect("array");
    if !arr.iter().any(|f| f.as_str() == Some("kubernetes")) {
        arr.push(json!("kubernetes"));
    }
    reset_status(obj, json!({ "phase": "Active" }));
}

fn default_secret(obj: &mut Value) {
    use base64::Engine;
    let Some(m) = obj.as_object_mut() else { return };
    default_str(m, "type", "Opaque");
    // v1 → internal conversion merges stringData into data (stringData wins) and drops it.
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        let data = ensure_obj_in(m, "data");
        for (k, v) in sd {
            let s = v.as_str().unwrap_or("").to_string();
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())));
        }
    }
}

fn default_pvc_spec(spec: &mut Map<String, Value>) {
    default_ptr(spec, "volumeMode", json!("Filesystem"));
    if let Some(Value::Object(r)) = spec.get_mut("resources") {
        default_resource_list(r.get_mut("requests"));
        default_resource_list(r.get_mut("limits"));
    }
}

fn default_pvc(obj: &mut Value) {
    default_pvc_spec(ensure_obj(obj, "spec"));
    reset_status(obj, json!({ "phase": "Pending" }));
}

fn default_pv(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
    default_ptr(spec, "volumeMode", json!("Filesystem"));
    default_resource_list(spec.get_mut("capacity"));
    if let Some(hp) = obj_mut(spec, "hostPath") {
        default_ptr(hp, "type", json!(""));
    }
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    reset_status(obj, json!({ "phase": "Pending", "lastPhaseTransitionTime": now }));
}

fn default_node(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("configSource");
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("config");
        default_resource_list(status.get_mut("capacity"));
        default_resource_list(status.get_mut("allocatable"));
        if matches!(status.get("allocatable"), None | Some(Value::Null)) {
            if let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned() {
                status.insert("allocatable".into(), cap);
            }
        }
    }
}

fn default_endpoints(obj: &mut Value) {
    if let Some(subsets) = obj.get_mut("subsets").and_then(Value::as_array_mut) {
        for ss in subsets.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(ports) = arr_mut(ss, "ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default_str(p, "protocol", "TCP");
                }
            }
        }
    }
}

fn default_limit_range(obj: &mut Value) {
    let Some(limits) = obj.pointer_mut("/spec/limits").and_then(Value::as_array_mut) else {
        return;
    };
    for item in limits.iter_mut().filter_map(Value::as_object_mut) {
        for k in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
            default_resource_list(item.get_mut(k));
        }
        if str_of(item, "type") != "Container" {
            continue;
        }
        let max = item.get("max").and_then(Value::as_object).cloned().unwrap_or_default();
        let min = item.get("min").and_then(Value::as_object).cloned().unwrap_or_default();
        let def = ensure_obj_in(item, "default");
        for (k, v) in &max {
            def.entry(k.clone()).or_insert(v.clone());
        }
        let def = def.clone();
        let dreq = ensure_obj_in(item, "defaultRequest");
        for (k, v) in &def {
            dreq.entry(k.clone()).or_insert(v.clone());
        }
        for (k, v) in &min {
            dreq.entry(k.clone()).or_insert(v.clone());
        }
    }
}

fn default_resource_quota(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_resource_list(spec.get_mut("hard"));
    }
    reset_status(obj, json!({}));
}

// ---------------------------------------------------------------------------------------------
// Other groups

fn default_ingress(obj: &mut Value) {
    set_generation_one(obj);
    reset_status(obj, json!({ "loadBalancer": {} }));
}

fn default_network_policy(obj: &mut Value) {
    let spec = ensure_obj(obj, "spec");
    for dir in ["ingress", "egress"] {
        if let Some(rules) = arr_mut(spec, dir) {
            for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(ports) = arr_mut(r, "ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default_ptr(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
    let types_empty = spec.get("policyTypes").and_then(Value::as_array).is_none_or(|a| a.is_empty());
    if types_empty {
        let mut types = vec![json!("Ingress")];
        if spec.get("egress").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    set_generation_one(obj);
}

fn default_role_binding(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let rr = ensure_obj_in(m, "roleRef");
    default_str(rr, "apiGroup", "rbac.authorization.k8s.io");
    if let Some(subjects) = arr_mut(m, "subjects") {
        for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
            if unset(s.get("apiGroup")) {
                match str_of(s, "kind") {
                    "User" | "Group" => {
                        s.insert("apiGroup".into(), json!("rbac.authorization.k8s.io"));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn hpa_scale_up_defaults() -> Value {
    json!({
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            { "type": "Pods", "value": 4, "periodSeconds": 15 },
            { "type": "Percent", "value": 100, "periodSeconds": 15 }
        ]
    })
}

fn hpa_scale_down_defaults() -> Value {
    json!({
        "selectPolicy": "Max",
        "policies": [ { "type": "Percent", "value": 100, "periodSeconds": 15 } ]
    })
}

fn merge_rules(given: Option<&Value>, defaults: Value) -> Value {
    let mut out = defaults;
    if let (Some(Value::Object(g)), Some(o)) = (given, out.as_object_mut()) {
        for k in ["stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"] {
            if let Some(v) = g.get(k).filter(|v| !v.is_null()) {
                o.insert(k.into(), v.clone());
            }
        }
    }
    out
}

fn default_hpa(obj: &mut Value) {
    let v2 = obj.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.ends_with("/v2"));
    let spec = ensure_obj(obj, "spec");
    default_ptr(spec, "minReplicas", json!(1));
    if !v2 {
        return;
    }
    let metrics_empty = spec.get("metrics").and_then(Value::as_array).is_none_or(|a| a.is_empty());
    if metrics_empty {
        spec.insert(
            "metrics".into(),
            json!([{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } }
            }]),
        );
    }
    if let Some(b) = obj_mut(spec, "behavior") {
        let up = merge_rules(b.get("scaleUp"), hpa_scale_up_defaults());
        let down = merge_rules(b.get("scaleDown"), hpa_scale_down_defaults());
        b.insert("scaleUp".into(), up);
        b.insert("scaleDown".into(), down);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, kind: &str, v: Value) -> Value {
        let mut v = v;
        apply_defaults(group, kind, &mut v);
        v
    }

    fn pod_with(containers: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "namespace": "default", "uid": "u-1" },
            "spec": { "containers": containers }
        })
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("registry.local:5000/team/app"), "Always");
        assert_eq!(default_pull_policy("registry.local:5000/team/app:v2"), "IfNotPresent");
        let digest = format!("nginx@sha256:{}", "a".repeat(64));
        assert_eq!(default_pull_policy(&digest), "IfNotPresent");
        let tagged_digest = format!("nginx:latest@sha256:{}", "b".repeat(64));
        assert_eq!(default_pull_policy(&tagged_digest), "Always");
        assert_eq!(default_pull_policy("Nginx"), "IfNotPresent");
        assert_eq!(default_pull_policy(""), "IfNotPresent");
    }

    #[test]
    fn pod_spec_and_container_defaults() {
        let p = defaulted(
            "",
            "Pod",
            pod_with(json!([{
                "name": "c", "image": "nginx",
                "ports": [{ "containerPort": 80 }],
                "env": [{ "name": "N", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
                "livenessProbe": { "httpGet": { "port": 80 } },
                "readinessProbe": { "tcpSocket": { "port": 80 }, "periodSeconds": 5 }
            }])),
        );
        let s = &p["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["securityContext"], json!({}));
        assert_eq!(s["enableServiceLinks"], true);
        assert!(s.get("priority").is_none());
        assert!(s.get("serviceAccountName").is_none());
        let c = &s["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        let lp = &c["livenessProbe"];
        assert_eq!(lp["timeoutSeconds"], 1);
        assert_eq!(lp["periodSeconds"], 10);
        assert_eq!(lp["successThreshold"], 1);
        assert_eq!(lp["failureThreshold"], 3);
        assert_eq!(lp["httpGet"]["scheme"], "HTTP");
        assert_eq!(lp["httpGet"]["path"], "/");
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn pod_requests_default_to_limits_and_quantities_canonicalize() {
        let p = defaulted(
            "",
            "Pod",
            pod_with(json!([{
                "name": "c", "image": "nginx:1",
                "resources": { "limits": { "cpu": "500m", "memory": "1.5Gi" } }
            }])),
        );
        let r = &p["spec"]["containers"][0]["resources"];
        assert_eq!(r["requests"], json!({ "cpu": "500m", "memory": "1536Mi" }));
        assert_eq!(r["limits"]["memory"], "1536Mi");
        assert_eq!(p["status"]["qosClass"], "Guaranteed");

        let p = defaulted(
            "",
            "Pod",
            pod_with(json!([{ "name": "c", "image": "x:1", "resources": { "requests": { "cpu": "2000m" } } }])),
        );
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"]["cpu"], "2");
        assert_eq!(p["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn volume_defaults() {
        let mut p = pod_with(json!([{ "name": "c", "image": "x:1" }]));
        p["spec"]["volumes"] = json!([
            { "name": "a" },
            { "name": "b", "configMap": { "name": "cm" } },
            { "name": "c", "secret": { "secretName": "s" } },
            { "name": "d", "hostPath": { "path": "/tmp" } },
            { "name": "e", "emptyDir": { "medium": "Memory" } }
        ]);
        let p = defaulted("", "Pod", p);
        let v = &p["spec"]["volumes"];
        assert_eq!(v[0]["emptyDir"], json!({}));
        assert_eq!(v[1]["configMap"]["defaultMode"], 420);
        assert_eq!(v[2]["secret"]["defaultMode"], 420);
        assert_eq!(v[3]["hostPath"]["type"], "");
        assert_eq!(v[4]["emptyDir"]["medium"], "Memory");
        assert!(v[4].get("configMap").is_none());
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default", "uid": "u-2" },
            "spec": {
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } }
            }
        })
    }

    #[test]
    fn deployment_defaults() {
        let d = defaulted("apps", "Deployment", deployment());
        let s = &d["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(s["strategy"]["type"], "RollingUpdate");
        assert_eq!(s["strategy"]["rollingUpdate"]["maxUnavailable"], "25%");
        assert_eq!(s["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        let ts = &s["template"]["spec"];
        assert_eq!(ts["restartPolicy"], "Always");
        assert_eq!(ts["dnsPolicy"], "ClusterFirst");
        assert_eq!(ts["terminationGracePeriodSeconds"], 30);
        assert_eq!(ts["schedulerName"], "default-scheduler");
        assert_eq!(ts["containers"][0]["imagePullPolicy"], "IfNotPresent");
        // enableServiceLinks is a Pod-only default upstream.
        assert!(ts.get("enableServiceLinks").is_none());
        assert_eq!(s["template"]["metadata"]["creationTimestamp"], Value::Null);
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["status"], json!({}));

        // Recreate: no rollingUpdate defaults.
        let mut r = deployment();
        r["spec"]["strategy"] = json!({ "type": "Recreate" });
        let r = defaulted("apps", "Deployment", r);
        assert!(r["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn replica_set_and_rc_defaults() {
        let mut rs = deployment();
        rs["kind"] = json!("ReplicaSet");
        let rs = defaulted("apps", "ReplicaSet", rs);
        assert_eq!(rs["spec"]["replicas"], 1);

        let rc = defaulted(
            "",
            "ReplicationController",
            json!({
                "apiVersion": "v1", "kind": "ReplicationController",
                "metadata": { "name": "rc", "namespace": "default" },
                "spec": { "template": { "metadata": { "labels": { "app": "x" } },
                          "spec": { "containers": [{ "name": "c", "image": "x:1" }] } } }
            }),
        );
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["selector"], json!({ "app": "x" }));
        assert_eq!(rc["metadata"]["labels"], json!({ "app": "x" }));
    }

    #[test]
    fn stateful_set_defaults() {
        let mut s = deployment();
        s["kind"] = json!("StatefulSet");
        s["spec"]["volumeClaimTemplates"] = json!([{
            "metadata": { "name": "data" },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
        }]);
        let s = defaulted("apps", "StatefulSet", s);
        let sp = &s["spec"];
        assert_eq!(sp["replicas"], 1);
        assert_eq!(sp["podManagementPolicy"], "OrderedReady");
        assert_eq!(sp["updateStrategy"], json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }));
        assert_eq!(sp["revisionHistoryLimit"], 10);
        assert_eq!(
            sp["persistentVolumeClaimRetentionPolicy"],
            json!({ "whenDeleted": "Retain", "whenScaled": "Retain" })
        );
        assert_eq!(sp["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(sp["volumeClaimTemplates"][0]["status"]["phase"], "Pending");

        // OnDelete: no partition.
        let mut o = deployment();
        o["spec"]["updateStrategy"] = json!({ "type": "OnDelete" });
        let o = defaulted("apps", "StatefulSet", o);
        assert_eq!(o["spec"]["updateStrategy"], json!({ "type": "OnDelete" }));
    }

    #[test]
    fn daemon_set_defaults() {
        let mut d = deployment();
        d["kind"] = json!("DaemonSet");
        let d = defaulted("apps", "DaemonSet", d);
        assert_eq!(
            d["spec"]["updateStrategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } })
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1");
    }

    fn job() -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": "pi", "namespace": "default", "uid": "1234-abcd" },
            "spec": { "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{ "name": "pi", "image": "perl:5.34" }] } } }
        })
    }

    #[test]
    fn job_defaults_and_selector_generation() {
        let j = defaulted("batch", "Job", job());
        let s = &j["spec"];
        assert_eq!(s["parallelism"], 1);
        assert_eq!(s["completions"], 1);
        assert_eq!(s["backoffLimit"], 6);
        assert_eq!(s["completionMode"], "NonIndexed");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(s["manualSelector"], false);
        assert_eq!(s["selector"], json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": "1234-abcd" } }));
        let labels = &s["template"]["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], "1234-abcd");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["controller-uid"], "1234-abcd");
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(&j["metadata"]["labels"], labels);
        assert_eq!(s["template"]["spec"]["restartPolicy"], "Never");

        // Only parallelism given: completions stays unset.
        let mut p = job();
        p["spec"]["parallelism"] = json!(3);
        let p = defaulted("batch", "Job", p);
        assert_eq!(p["spec"]["parallelism"], 3);
        assert!(p["spec"].get("completions").is_none());

        // Only completions given: parallelism defaults to 1.
        let mut c = job();
        c["spec"]["completions"] = json!(5);
        let c = defaulted("batch", "Job", c);
        assert_eq!(c["spec"]["completions"], 5);
        assert_eq!(c["spec"]["parallelism"], 1);

        // Manual selector: nothing generated.
        let mut m = job();
        m["spec"]["manualSelector"] = json!(true);
        m["spec"]["selector"] = json!({ "matchLabels": { "a": "b" } });
        m["spec"]["template"]["metadata"] = json!({ "labels": { "a": "b" } });
        let m = defaulted("batch", "Job", m);
        assert_eq!(m["spec"]["selector"], json!({ "matchLabels": { "a": "b" } }));
        assert!(m["spec"]["template"]["metadata"]["labels"].get("job-name").is_none());
    }

    #[test]
    fn cron_job_defaults() {
        let c = defaulted(
            "batch",
            "CronJob",
            json!({
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": { "name": "c", "namespace": "default" },
                "spec": { "schedule": "*/5 * * * *", "jobTemplate": { "spec": { "template": { "spec": {
                    "restartPolicy": "OnFailure", "containers": [{ "name": "c", "image": "busybox" }] } } } } }
            }),
        );
        let s = &c["spec"];
        assert_eq!(s["concurrencyPolicy"], "Allow");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["successfulJobsHistoryLimit"], 3);
        assert_eq!(s["failedJobsHistoryLimit"], 1);
        let ts = &s["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(ts["dnsPolicy"], "ClusterFirst");
        assert_eq!(ts["restartPolicy"], "OnFailure");
        assert_eq!(ts["containers"][0]["imagePullPolicy"], "Always");
        assert!(s["jobTemplate"]["spec"].get("backoffLimit").is_none());
    }

    #[test]
    fn service_defaults() {
        let s = defaulted(
            "",
            "Service",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "web", "namespace": "default" },
                "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }, { "port": 443, "targetPort": "https", "name": "https" }] }
            }),
        );
        let sp = &s["spec"];
        assert_eq!(sp["type"], "ClusterIP");
        assert_eq!(sp["sessionAffinity"], "None");
        assert_eq!(sp["ports"][0]["protocol"], "TCP");
        assert_eq!(sp["ports"][0]["targetPort"], 80);
        assert_eq!(sp["ports"][1]["targetPort"], "https");
        assert_eq!(sp["ipFamilyPolicy"], "SingleStack");
        assert_eq!(sp["ipFamilies"], json!(["IPv4"]));
        assert_eq!(sp["internalTrafficPolicy"], "Cluster");
        assert!(sp.get("externalTrafficPolicy").is_none());
        assert_eq!(s["status"], json!({ "loadBalancer": {} }));

        let np = defaulted(
            "",
            "Service",
            json!({ "metadata": { "name": "n" }, "spec": { "type": "NodePort", "ports": [{ "port": 80 }] } }),
        );
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        let lb = defaulted("", "Service", json!({ "metadata": { "name": "n" }, "spec": { "type": "LoadBalancer" } }));
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);

        let en = defaulted(
            "",
            "Service",
            json!({ "metadata": { "name": "n" }, "spec": { "type": "ExternalName", "externalName": "example.com" } }),
        );
        assert!(en["spec"].get("ipFamilies").is_none());
        assert!(en["spec"].get("ipFamilyPolicy").is_none());
        assert!(en["spec"].get("internalTrafficPolicy").is_none());

        let ci = defaulted(
            "",
            "Service",
            json!({ "metadata": { "name": "n" }, "spec": { "sessionAffinity": "ClientIP", "clusterIP": "10.0.0.9" } }),
        );
        assert_eq!(ci["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
        assert_eq!(ci["spec"]["clusterIPs"], json!(["10.0.0.9"]));
    }

    #[test]
    fn namespace_secret_volume_defaults() {
        let ns = defaulted(
            "",
            "Namespace",
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "team-a" } }),
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");

        let s = defaulted(
            "",
            "Secret",
            json!({ "metadata": { "name": "s" }, "stringData": { "user": "admin" }, "data": { "x": "eQ==" } }),
        );
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["data"]["user"], "YWRtaW4=");
        assert_eq!(s["data"]["x"], "eQ==");
        assert!(s.get("stringData").is_none());

        let pvc = defaulted(
            "",
            "PersistentVolumeClaim",
            json!({ "metadata": { "name": "c" }, "spec": { "accessModes": ["ReadWriteOnce"] } }),
        );
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"]["phase"], "Pending");

        let pv = defaulted(
            "",
            "PersistentVolume",
            json!({ "metadata": { "name": "v" }, "spec": { "capacity": { "storage": "1Gi" }, "hostPath": { "path": "/d" } } }),
        );
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["status"]["phase"], "Pending");
    }

    #[test]
    fn endpoints_hpa_rbac_defaults() {
        let ep = defaulted(
            "",
            "Endpoints",
            json!({ "metadata": { "name": "e" }, "subsets": [{ "addresses": [{ "ip": "10.1.1.1" }], "ports": [{ "port": 80 }] }] }),
        );
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");

        let hpa = defaulted(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({ "apiVersion": "autoscaling/v2", "metadata": { "name": "h" },
                    "spec": { "maxReplicas": 5, "scaleTargetRef": { "kind": "Deployment", "name": "web" },
                              "behavior": { "scaleDown": { "stabilizationWindowSeconds": 60 } } } }),
        );
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
        assert_eq!(hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["value"], 4);

        let rb = defaulted(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({ "metadata": { "name": "rb" }, "roleRef": { "kind": "Role", "name": "r" },
                    "subjects": [{ "kind": "User", "name": "alice" }, { "kind": "ServiceAccount", "name": "sa" }] }),
        );
        assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none());
    }

    #[test]
    fn prepare_for_update_keeps_allocated_service_values() {
        let old = json!({
            "metadata": { "name": "s" },
            "spec": { "type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                      "ports": [{ "port": 80, "protocol": "TCP", "nodePort": 30080 }] },
            "status": { "loadBalancer": {} }
        });
        let mut new = json!({
            "metadata": { "name": "s" },
            "spec": { "type": "NodePort", "ports": [{ "port": 80 }] }
        });
        apply_defaults("", "Service", &mut new);
        prepare_for_update("", "Service", &mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.0.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.0.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
    }
}
