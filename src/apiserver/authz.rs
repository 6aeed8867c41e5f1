//! Authorization: RBAC over Roles, ClusterRoles (with aggregation) and their bindings, read from
//! the watch cache. Members of `system:masters` may do everything, as upstream.

use std::collections::{BTreeMap, BTreeSet};

use http::{HeaderMap, Method};
use serde_json::{json, Value};

use super::request::{Query, ResourceRequest, Target};
use super::{ApiServer, UserInfo};
use crate::api::registry;
use crate::api::selector::LabelSelector;
use crate::api::status::StatusError;

/// The superuser group.
pub const MASTERS: &str = "system:masters";

/// What a request does, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    pub namespace: Option<String>,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// For a non-resource request, its path.
    pub path: Option<String>,
}

impl Attributes {
    pub fn of_resource(r: &ResourceRequest) -> Attributes {
        let mut namespace = r.namespace.clone();
        // A namespace's own name is its namespace for RBAC.
        if r.group.is_empty() && r.resource == "namespaces" {
            namespace = r.name.clone();
        }
        // Opening a stream into a pod is `create`, whether asked by POST (SPDY) or by a GET
        // WebSocket upgrade (upstream since 1.31): `get` on pods/exec must not be enough.
        let streams = r.group.is_empty()
            && r.resource == "pods"
            && matches!(r.subresource.as_deref(), Some("exec" | "attach" | "portforward"));
        Attributes {
            verb: if streams { "create".to_string() } else { r.verb.as_str().to_string() },
            namespace,
            group: r.group.clone(),
            resource: r.resource.clone(),
            subresource: r.subresource.clone(),
            name: r.name.clone(),
            path: None,
        }
    }

    pub fn of_target(target: &Target, method: &Method, path: &str) -> Attributes {
        match target {
            Target::Resource(r) => Attributes::of_resource(r),
            _ => Attributes {
                verb: method.as_str().to_ascii_lowercase(),
                path: Some(path.to_string()),
                ..Default::default()
            },
        }
    }
}

fn strs(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Does one PolicyRule allow the request?
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule, "verbs");
    if !verbs.iter().any(|v| v == "*" || *v == a.verb) {
        return false;
    }
    if let Some(path) = &a.path {
        return strs(rule, "nonResourceURLs")
            .iter()
            .any(|u| u == "*" || u == path || (u.ends_with('*') && path.starts_with(&u[..u.len() - 1])));
    }
    if !strs(rule, "apiGroups").iter().any(|g| g == "*" || *g == a.group) {
        return false;
    }
    let full = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    let resource_ok = strs(rule, "resources")
        .iter()
        .any(|r| r == "*" || *r == full || a.subresource.as_ref().is_some_and(|s| *r == format!("*/{s}")));
    if !resource_ok {
        return false;
    }
    let names = strs(rule, "resourceNames");
    names.is_empty() || a.name.as_ref().is_some_and(|n| names.contains(n))
}

fn subject_matches(s: &Value, user: &UserInfo, binding_ns: Option<&str>) -> bool {
    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
    match s.get("kind").and_then(Value::as_str) {
        Some("User") => user.name == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = s.get("namespace").and_then(Value::as_str).or(binding_ns).unwrap_or_default();
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// The RBAC objects the decision needs, read once per decision.
struct Policy {
    cluster_roles: BTreeMap<String, Value>,
    roles: BTreeMap<String, Value>,
    cluster_bindings: Vec<Value>,
    bindings: Vec<Value>,
}

async fn objects(api: &ApiServer, resource: &str, ns: Option<&str>) -> Vec<Value> {
    let Some(def) = registry::find("rbac.authorization.k8s.io", "v1", resource) else { return Vec::new() };
    match api.cache.list(&def.prefix(ns), None, 0, None, &|_| true).await {
        Ok(l) => l.objects.iter().filter_map(|o| o.value().ok()).collect(),
        Err(_) => Vec::new(),
    }
}

fn by_name(objs: Vec<Value>) -> BTreeMap<String, Value> {
    objs.into_iter().filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?.to_string(), o))).collect()
}

impl Policy {
    async fn load(api: &ApiServer, ns: Option<&str>) -> Policy {
        let (roles, bindings) = match ns {
            Some(ns) => (by_name(objects(api, "roles", Some(ns)).await), objects(api, "rolebindings", Some(ns)).await),
            None => (BTreeMap::new(), Vec::new()),
        };
        Policy {
            cluster_roles: by_name(objects(api, "clusterroles", None).await),
            roles,
            cluster_bindings: objects(api, "clusterrolebindings", None).await,
            bindings,
        }
    }

    /// A ClusterRole's rules with those of every role its aggregation rule selects.
    fn cluster_role_rules(&self, name: &str, seen: &mut BTreeSet<String>, out: &mut Vec<Value>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some(role) = self.cluster_roles.get(name) else { return };
        out.extend(role.get("rules").and_then(Value::as_array).cloned().unwrap_or_default());
        for sel in role.pointer("/aggregationRule/clusterRoleSelectors").and_then(Value::as_array).into_iter().flatten()
        {
            let Ok(sel) = LabelSelector::from_label_selector(sel) else { continue };
            let matching: Vec<String> = self
                .cluster_roles
                .iter()
                .filter(|(_, r)| sel.matches(&crate::api::selector::labels_of(r)))
                .map(|(n, _)| n.clone())
                .collect();
            for m in matching {
                self.cluster_role_rules(&m, seen, out);
            }
        }
    }

    fn role_ref_rules(&self, binding: &Value) -> Vec<Value> {
        let kind = binding.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or_default();
        let name = binding.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or_default();
        let mut out = Vec::new();
        match kind {
            "ClusterRole" => self.cluster_role_rules(name, &mut BTreeSet::new(), &mut out),
            "Role" => {
                if let Some(r) = self.roles.get(name) {
                    out.extend(r.get("rules").and_then(Value::as_array).cloned().unwrap_or_default());
                }
            }
            _ => {}
        }
        out
    }

    /// Every rule that applies to `user`: cluster-wide ones, then the namespace's.
    fn rules_for(&self, user: &UserInfo) -> Vec<Value> {
        let mut rules = Vec::new();
        for b in &self.cluster_bindings {
            if b.get("subjects").and_then(Value::as_array).into_iter().flatten().any(|s| subject_matches(s, user, None))
            {
                rules.extend(self.role_ref_rules(b));
            }
        }
        for b in &self.bindings {
            let ns = b.pointer("/metadata/namespace").and_then(Value::as_str);
            if b.get("subjects").and_then(Value::as_array).into_iter().flatten().any(|s| subject_matches(s, user, ns)) {
                rules.extend(self.role_ref_rules(b));
            }
        }
        rules
    }
}

/// Is `user` allowed to do `a`?
pub async fn allowed(api: &ApiServer, user: &UserInfo, a: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == MASTERS) {
        return true;
    }
    let policy = Policy::load(api, a.namespace.as_deref()).await;
    policy.rules_for(user).iter().any(|r| rule_allows(r, a))
}

/// The rules `user` has in `namespace` (for SelfSubjectRulesReview).
pub async fn rules(api: &ApiServer, user: &UserInfo, namespace: Option<&str>) -> Vec<Value> {
    if user.groups.iter().any(|g| g == MASTERS) {
        return vec![
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
        ];
    }
    Policy::load(api, namespace).await.rules_for(user)
}

/// The 403 upstream returns for a denied request.
pub fn forbidden(user: &UserInfo, a: &Attributes) -> StatusError {
    let mut e = match &a.path {
        Some(path) => {
            StatusError::forbidden(format!("forbidden: User \"{}\" cannot {} path \"{path}\"", user.name, a.verb))
        }
        None => {
            let full = match &a.subresource {
                Some(s) => format!("{}/{s}", a.resource),
                None => a.resource.clone(),
            };
            let what = if a.group.is_empty() { full.clone() } else { format!("{full}.{}", a.group) };
            let named = a.name.as_ref().map(|n| format!(" \"{n}\"")).unwrap_or_default();
            let scope = match &a.namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            StatusError::forbidden(format!(
                "{what}{named} is forbidden: User \"{}\" cannot {} resource \"{full}\" in API group \"{}\" {scope}",
                user.name, a.verb, a.group
            ))
        }
    };
    let mut details = json!({ "kind": a.resource });
    if !a.group.is_empty() {
        details["group"] = json!(a.group);
    }
    if let Some(n) = &a.name {
        details["name"] = json!(n);
    }
    e.details = Some(details);
    e
}

/// Apply `Impersonate-*` headers: the requester must be allowed to impersonate each.
pub async fn impersonate(api: &ApiServer, headers: &HeaderMap, user: UserInfo) -> Result<UserInfo, StatusError> {
    let get_all = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    };
    let users = get_all("impersonate-user");
    let groups = get_all("impersonate-group");
    if users.is_empty() {
        if !groups.is_empty() {
            return Err(StatusError::bad_request(
                "requested [Impersonate-Group] without impersonating a user".to_string(),
            ));
        }
        return Ok(user);
    }
    let target = users[0].clone();
    let check = |resource: &str, name: &str, ns: Option<&str>| Attributes {
        verb: "impersonate".into(),
        group: String::new(),
        resource: resource.into(),
        name: Some(name.into()),
        namespace: ns.map(str::to_string),
        ..Default::default()
    };
    let mut wanted = Vec::new();
    match target.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, sa)) => wanted.push(check("serviceaccounts", sa, Some(ns))),
        None => wanted.push(check("users", &target, None)),
    }
    for g in &groups {
        wanted.push(check("groups", g, None));
    }
    for a in &wanted {
        if !allowed(api, &user, a).await {
            let mut e = forbidden(&user, a);
            e.message = format!(
                "{} \"{}\" is forbidden: User \"{}\" cannot impersonate resource \"{}\" in API group \"\" at the cluster scope",
                a.resource,
                a.name.clone().unwrap_or_default(),
                user.name,
                a.resource
            );
            return Err(e);
        }
    }
    let mut all_groups = groups;
    if target.starts_with("system:serviceaccount:") {
        all_groups.push("system:serviceaccounts".into());
        if let Some((ns, _)) = target.trim_start_matches("system:serviceaccount:").split_once(':') {
            all_groups.push(format!("system:serviceaccounts:{ns}"));
        }
    }
    if !all_groups.iter().any(|g| g == "system:authenticated") {
        all_groups.push("system:authenticated".into());
    }
    Ok(UserInfo { name: target, groups: all_groups })
}

/// Attributes from a query's view of a name (`fieldSelector=metadata.name=x` on list/watch).
pub fn with_selected_name(mut a: Attributes, query: &Query) -> Attributes {
    if a.name.is_none() && (a.verb == "list" || a.verb == "watch") {
        if let Some(fs) = query.get("fieldSelector") {
            if let Some(n) = fs
                .split(',')
                .find_map(|t| t.strip_prefix("metadata.name=").or_else(|| t.strip_prefix("metadata.name==")))
            {
                a.name = Some(n.to_string());
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: Option<&str>, name: Option<&str>) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.map(str::to_string),
            name: name.map(str::to_string),
            namespace: Some("default".into()),
            path: None,
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_names_and_paths() {
        let r = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]});
        assert!(rule_allows(&r, &attrs("get", "", "pods", None, Some("p"))));
        assert!(rule_allows(&r, &attrs("get", "", "pods", Some("log"), Some("p"))));
        assert!(!rule_allows(&r, &attrs("get", "", "pods", Some("exec"), Some("p"))));
        assert!(!rule_allows(&r, &attrs("delete", "", "pods", None, Some("p"))));
        assert!(!rule_allows(&r, &attrs("get", "apps", "pods", None, None)));
        let named = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"], "resourceNames": ["web"]});
        assert!(rule_allows(&named, &attrs("update", "apps", "deployments", Some("scale"), Some("web"))));
        assert!(!rule_allows(&named, &attrs("update", "apps", "deployments", Some("scale"), Some("db"))));
        assert!(!rule_allows(&named, &attrs("update", "apps", "deployments", None, Some("web"))));
        let nr = json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]});
        let path = |p: &str| Attributes { verb: "get".into(), path: Some(p.into()), ..Default::default() };
        assert!(rule_allows(&nr, &path("/healthz")));
        assert!(rule_allows(&nr, &path("/apis/apps/v1")));
        assert!(!rule_allows(&nr, &path("/metrics")));
    }

    #[test]
    fn denial_message_is_upstreams() {
        let u = UserInfo { name: "alice".into(), groups: vec![] };
        let e = forbidden(&u, &attrs("list", "", "pods", None, None));
        assert_eq!(e.code, 403);
        assert_eq!(e.message, "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"");
        let mut a = attrs("create", "", "pods", Some("exec"), Some("web"));
        a.namespace = Some("x".into());
        assert_eq!(
            forbidden(&u, &a).message,
            "pods/exec \"web\" is forbidden: User \"alice\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"x\""
        );
    }

    #[test]
    fn aggregation_follows_labels_transitively() {
        let mut p = Policy {
            cluster_roles: BTreeMap::new(),
            roles: BTreeMap::new(),
            cluster_bindings: vec![],
            bindings: vec![],
        };
        p.cluster_roles.insert("admin".into(), json!({"metadata": {"name": "admin"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-admin": "true"}}]}}));
        p.cluster_roles.insert("edit".into(), json!({"metadata": {"name": "edit", "labels": {"to-admin": "true"}}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-edit": "true"}}]}}));
        p.cluster_roles.insert("bits".into(), json!({"metadata": {"name": "bits", "labels": {"to-edit": "true"}}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}));
        let mut out = Vec::new();
        p.cluster_role_rules("admin", &mut BTreeSet::new(), &mut out);
        assert_eq!(out.len(), 1);
    }
}
