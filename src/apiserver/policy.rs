//! The default RBAC policy every cluster starts with: the user-facing roles (`cluster-admin`,
//! `admin`, `edit`, `view`, built by aggregation as upstream), the discovery and self-review roles
//! every authenticated user has, and least-privilege roles for kelp's own agents.

use serde_json::{json, Value};

const BOOTSTRAP: &str = "rbac-defaults";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

fn cluster_role(name: &str, labels: Value, rules: Vec<Value>, aggregate_from: Option<&str>) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!(BOOTSTRAP);
    let mut r = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": name, "labels": labels, "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" } },
        "rules": rules,
    });
    if let Some(label) = aggregate_from {
        r["aggregationRule"] = json!({ "clusterRoleSelectors": [{ "matchLabels": { label: "true" } }] });
    }
    r
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": name, "labels": { "kubernetes.io/bootstrapping": BOOTSTRAP },
                      "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" } },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": groups.iter().map(|g| json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g })).collect::<Vec<_>>(),
    })
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let to = |l: &str| format!("rbac.authorization.k8s.io/aggregate-to-{l}");
    let label = |l: &str| json!({ to(l): "true" });
    let core_read = &[
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "pods",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/status",
        "bindings",
        "events",
        "limitranges",
        "namespaces/status",
        "pods/log",
        "pods/status",
        "replicationcontrollers/status",
        "resourcequotas",
        "resourcequotas/status",
        "namespaces",
    ];
    let apps = &[
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ];
    let apps_write = &[
        "daemonsets",
        "deployments",
        "deployments/rollback",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
    ];
    vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            vec![rule(&["*"], &["*"], &["*"]), json!({ "nonResourceURLs": ["*"], "verbs": ["*"] })],
            None,
        ),
        cluster_role("admin", json!({}), vec![], Some(&to("admin"))),
        cluster_role("edit", label("admin"), vec![], Some(&to("edit"))),
        cluster_role("view", label("edit"), vec![], Some(&to("view"))),
        cluster_role(
            "system:aggregate-to-view",
            label("view"),
            vec![
                rule(&[""], core_read, READ),
                rule(&["apps"], apps, READ),
                rule(&["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
                rule(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(&["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
                rule(&["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"], READ),
                rule(&["metrics.k8s.io"], &["pods", "nodes"], READ),
            ],
            None,
        ),
        cluster_role(
            "system:aggregate-to-edit",
            label("edit"),
            vec![
                rule(
                    &[""],
                    &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(&[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(&["apps"], apps_write, WRITE),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(&["discovery.k8s.io"], &["endpointslices"], WRITE),
            ],
            None,
        ),
        cluster_role(
            "system:aggregate-to-admin",
            label("admin"),
            vec![
                rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                ),
            ],
            None,
        ),
        cluster_role(
            "system:basic-user",
            json!({}),
            vec![
                rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
            None,
        ),
        cluster_role(
            "system:discovery",
            json!({}),
            vec![json!({
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            })],
            None,
        ),
        cluster_role(
            "system:public-info-viewer",
            json!({}),
            vec![
                json!({ "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"] }),
            ],
            None,
        ),
        // kelp's node agents: their Node and its Lease, the pods bound to them, what those pods use.
        cluster_role(
            "system:kelp:agent",
            json!({}),
            vec![
                rule(&[""], &["nodes"], &["create", "get", "list", "watch", "patch", "update"]),
                rule(&[""], &["nodes/status"], &["patch", "update"]),
                // create and delete: mirror pods of static pods; delete: the final delete of a stopped pod.
                rule(&[""], &["pods"], &["get", "list", "watch", "create", "delete"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(
                    &[""],
                    &["configmaps", "secrets", "services", "endpoints", "persistentvolumeclaims", "persistentvolumes"],
                    READ,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(&[""], &["events"], &["create", "patch", "update"]),
                rule(&["events.k8s.io"], &["events"], &["create", "patch", "update"]),
                rule(&["coordination.k8s.io"], &["leases"], &["create", "delete", "get", "patch", "update"]),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(&["storage.k8s.io"], &["csidrivers", "csinodes", "volumeattachments"], READ),
                json!({"verbs": ["post"], "nonResourceURLs": [super::node_proxy::SERVING_CERT_PATH]}),
            ],
            None,
        ),
        // kelp's controllers and scheduler, one role each, as upstream's `system:controller:*`.
        controller(
            "deployment-controller",
            vec![
                rule(&["apps"], &["deployments"], &["get", "list", "watch", "update"]),
                rule(&["apps"], &["deployments/status"], &["update"]),
                rule(&["apps"], &["deployments/finalizers"], &["update"]),
                rule(&["apps"], &["replicasets"], &["create", "delete", "get", "list", "patch", "update", "watch"]),
                rule(&[""], &["pods"], &["get", "list", "update", "watch"]),
            ],
        ),
        controller(
            "replicaset-controller",
            vec![
                rule(&["apps"], &["replicasets"], &["get", "list", "update", "watch"]),
                rule(&["apps"], &["replicasets/status", "replicasets/finalizers"], &["update"]),
                rule(&[""], &["pods"], &["create", "delete", "list", "patch", "watch"]),
            ],
        ),
        controller(
            "statefulset-controller",
            vec![
                rule(&["apps"], &["statefulsets"], &["list", "watch"]),
                rule(&["apps"], &["statefulsets/status", "statefulsets/finalizers"], &["update"]),
                rule(&[""], &["pods"], &["create", "delete", "get", "patch", "update"]),
                rule(
                    &["apps"],
                    &["controllerrevisions"],
                    &["create", "delete", "get", "list", "patch", "update", "watch"],
                ),
                rule(&[""], &["persistentvolumeclaims"], &["create", "get", "update", "delete"]),
            ],
        ),
        controller(
            "daemon-set-controller",
            vec![
                rule(&["apps"], &["daemonsets"], &["get", "list", "watch"]),
                rule(&["apps"], &["daemonsets/status", "daemonsets/finalizers"], &["update"]),
                rule(&[""], &["nodes"], &["list", "watch"]),
                rule(&[""], &["pods"], &["create", "delete", "list", "patch", "watch"]),
                rule(&[""], &["pods/binding"], &["create"]),
                rule(
                    &["apps"],
                    &["controllerrevisions"],
                    &["create", "delete", "get", "list", "patch", "update", "watch"],
                ),
            ],
        ),
        controller(
            "job-controller",
            vec![
                rule(&["batch"], &["jobs"], &["get", "list", "patch", "update", "watch"]),
                rule(&["batch"], &["jobs/status", "jobs/finalizers"], &["update", "patch"]),
                rule(&[""], &["pods"], &["create", "delete", "list", "patch", "watch"]),
            ],
        ),
        controller(
            "cronjob-controller",
            vec![
                rule(&["batch"], &["cronjobs"], &["get", "list", "update", "watch"]),
                rule(&["batch"], &["jobs"], &["create", "delete", "get", "list", "patch", "update", "watch"]),
                rule(&["batch"], &["cronjobs/status", "cronjobs/finalizers"], &["update"]),
                rule(&[""], &["pods"], &["delete", "list"]),
            ],
        ),
        controller(
            "namespace-controller",
            vec![
                rule(&[""], &["namespaces"], &["delete", "get", "list", "watch"]),
                rule(&[""], &["namespaces/finalize", "namespaces/status"], &["update"]),
                rule(&["*"], &["*"], &["delete", "deletecollection", "get", "list"]),
            ],
        ),
        controller(
            "generic-garbage-collector",
            vec![rule(&["*"], &["*"], &["delete", "get", "list", "patch", "update", "watch"])],
        ),
        controller(
            "serviceaccount-controller",
            vec![rule(&[""], &["serviceaccounts"], &["create"]), rule(&[""], &["configmaps"], &["create", "update"])],
        ),
        controller(
            "endpointslice-controller",
            vec![
                rule(&[""], &["nodes", "pods", "services"], &["get", "list", "watch"]),
                rule(&[""], &["services/finalizers"], &["update"]),
                rule(&["discovery.k8s.io"], &["endpointslices"], &["create", "delete", "get", "list", "update"]),
            ],
        ),
        controller(
            "endpoint-controller",
            vec![
                rule(&[""], &["pods", "services"], &["get", "list", "watch"]),
                rule(&[""], &["endpoints"], &["create", "delete", "get", "list", "update"]),
                rule(&[""], &["endpoints/restricted"], &["create"]),
            ],
        ),
        controller(
            "node-controller",
            vec![
                rule(&[""], &["nodes"], &["delete", "get", "list", "patch", "update"]),
                rule(&[""], &["nodes/status"], &["patch", "update"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&[""], &["pods"], &["delete", "list", "get"]),
                rule(&["coordination.k8s.io"], &["leases"], &["get", "list", "watch"]),
            ],
        ),
        controller(
            "pod-garbage-collector",
            vec![
                rule(&[""], &["pods"], &["delete", "list", "watch"]),
                rule(&[""], &["nodes"], &["get", "list", "watch"]),
                rule(&[""], &["pods/status"], &["patch"]),
            ],
        ),
        controller(
            "disruption-controller",
            vec![
                rule(&["apps"], &["deployments", "replicasets", "statefulsets"], &["get", "list", "watch"]),
                rule(&["policy"], &["poddisruptionbudgets"], &["get", "list", "watch"]),
                rule(&["policy"], &["poddisruptionbudgets/status"], &["update"]),
                rule(&["*"], &["*/scale"], &["get"]),
            ],
        ),
        controller(
            "horizontal-pod-autoscaler",
            vec![
                rule(&["autoscaling"], &["horizontalpodautoscalers"], &["get", "list", "watch"]),
                rule(&["autoscaling"], &["horizontalpodautoscalers/status"], &["update"]),
                rule(&["*"], &["*/scale"], &["get", "update"]),
                rule(&["metrics.k8s.io"], &["pods"], &["list"]),
            ],
        ),
        cluster_role(
            "system:kelp:scheduler",
            json!({}),
            vec![
                rule(
                    &[""],
                    &[
                        "nodes",
                        "namespaces",
                        "persistentvolumeclaims",
                        "persistentvolumes",
                        "services",
                        "replicationcontrollers",
                    ],
                    READ,
                ),
                rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
                rule(&[""], &["bindings", "pods/binding"], &["create"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&["apps"], &["replicasets", "statefulsets"], READ),
                rule(&["policy"], &["poddisruptionbudgets"], READ),
                rule(&["storage.k8s.io"], &["csinodes", "csidrivers", "storageclasses"], READ),
                rule(&["events.k8s.io", ""], &["events"], &["create", "patch", "update"]),
                rule(&["coordination.k8s.io"], &["leases"], &["create", "get", "update"]),
            ],
            None,
        ),
    ]
}

/// A controller's role, named as upstream's (`system:controller:<name>`); every controller may
/// also write events.
fn controller(name: &str, mut rules: Vec<Value>) -> Value {
    rules.push(rule(&["", "events.k8s.io"], &["events"], &["create", "patch", "update"]));
    cluster_role(&format!("system:controller:{name}"), json!({}), rules, None)
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &[super::authz::MASTERS]),
        binding("system:basic-user", "system:basic-user", &["system:authenticated"]),
        binding("system:discovery", "system:discovery", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        binding("system:kelp:agent", "system:kelp:agent", &["system:nodes"]),
    ]
}
