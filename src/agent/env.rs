//! A container's process: argv (command/args over the image's ENTRYPOINT/CMD), environment
//! (value, configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef, envFrom, service links,
//! `$(VAR)` expansion), working directory and user, as Kubernetes defines them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::Api;

use super::quantity;

/// Why a container's configuration could not be made: the container waits with
/// `CreateContainerConfigError` and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// ConfigMaps and Secrets fetched once per sync (`None` = not found).
#[derive(Default)]
pub struct Objects {
    client: Option<kube::Client>,
    namespace: String,
    configmaps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Objects {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Objects { client: Some(client), namespace: namespace.to_string(), ..Default::default() }
    }

    /// Objects given up front (tests, static pods without an API).
    pub fn fixed(configmaps: Vec<ConfigMap>, secrets: Vec<Secret>) -> Self {
        Objects {
            client: None,
            namespace: String::new(),
            configmaps: configmaps
                .into_iter()
                .map(|c| (c.metadata.name.clone().unwrap_or_default(), Some(c)))
                .collect(),
            secrets: secrets.into_iter().map(|s| (s.metadata.name.clone().unwrap_or_default(), Some(s))).collect(),
        }
    }

    pub async fn configmap(&mut self, name: &str) -> Result<Option<&ConfigMap>, kube::Error> {
        if !self.configmaps.contains_key(name) {
            let got = match &self.client {
                Some(c) => Api::<ConfigMap>::namespaced(c.clone(), &self.namespace).get_opt(name).await?,
                None => None,
            };
            self.configmaps.insert(name.to_string(), got);
        }
        Ok(self.configmaps.get(name).and_then(Option::as_ref))
    }

    pub async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, kube::Error> {
        if !self.secrets.contains_key(name) {
            let got = match &self.client {
                Some(c) => Api::<Secret>::namespaced(c.clone(), &self.namespace).get_opt(name).await?,
                None => None,
            };
            self.secrets.insert(name.to_string(), got);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// `$(VAR)` expansion as Kubernetes does it: `$$` is an escaped `$`, an undefined reference is
/// left as written, anything else after `$` is kept.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&input[last..i]);
            match b[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match input[i + 2..].find(')') {
                    Some(end) => {
                        let name = &input[i + 2..i + 2 + end];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        i += end + 3;
                    }
                    None => {
                        out.push_str("$(");
                        i += 2;
                    }
                },
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&input[last..]);
    out
}

/// argv per Kubernetes: `command` replaces ENTRYPOINT (and drops CMD), `args` replaces CMD; both
/// expanded against the container's environment.
pub fn argv(
    container: &Container,
    entrypoint: &[String],
    cmd: &[String],
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |n: &str| map.get(n).map(|v| v.to_string());
    let ex = |v: &Vec<String>| v.iter().map(|s| expand(s, &lookup)).collect::<Vec<_>>();
    let out: Vec<String> = match (&container.command, &container.args) {
        (Some(c), Some(a)) if !c.is_empty() => ex(c).into_iter().chain(ex(a)).collect(),
        (Some(c), None) if !c.is_empty() => ex(c),
        (_, Some(a)) if !a.is_empty() => entrypoint.iter().cloned().chain(ex(a)).collect(),
        _ => entrypoint.iter().chain(cmd).cloned().collect(),
    };
    if out.is_empty() {
        return Err(ConfigError(format!("no command specified for container {:?}", container.name)));
    }
    Ok(out)
}

/// Values the downward API can show that live outside the pod object.
#[derive(Clone, Debug, Default)]
pub struct Downward {
    pub node_name: String,
    pub host_ips: Vec<String>,
    pub pod_ips: Vec<String>,
    /// Node allocatable: the default for unset limits.
    pub node_cpu_millis: i64,
    pub node_memory: i64,
    pub node_ephemeral_storage: i64,
}

/// A `fieldRef` value.
pub fn field_ref(pod: &Pod, path: &str, d: &Downward) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |p: &str, prefix: &str| -> Option<String> {
        let rest = p.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = subscript(path, "metadata.labels") {
        return Ok(meta.labels.as_ref().and_then(|l| l.get(&k)).cloned().unwrap_or_default());
    }
    if let Some(k) = subscript(path, "metadata.annotations") {
        return Ok(meta.annotations.as_ref().and_then(|l| l.get(&k)).cloned().unwrap_or_default());
    }
    let fmt_map = |m: Option<&BTreeMap<String, String>>| {
        m.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => fmt_map(meta.labels.as_ref()),
        "metadata.annotations" => fmt_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| d.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => d.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => d.host_ips.join(","),
        "status.podIP" => d.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => d.pod_ips.join(","),
        other => return Err(ConfigError(format!("unsupported fieldPath: {other}"))),
    })
}

/// A `resourceFieldRef` value: the container's request or limit (limits default to the node's
/// allocatable), divided by the divisor and rounded up.
pub fn resource_field_ref(
    pod: &Pod,
    container_name: &str,
    resource: &str,
    divisor: Option<&str>,
    d: &Downward,
) -> Result<String, ConfigError> {
    let container = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .find(|c| c.name == container_name)
        .ok_or_else(|| ConfigError(format!("container {container_name:?} not found in the pod")))?;
    let res = container.resources.as_ref();
    let get = |which: &str, name: &str| -> Option<String> {
        let m =
            if which == "limits" { res.and_then(|r| r.limits.as_ref()) } else { res.and_then(|r| r.requests.as_ref()) };
        m.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let (which, name) =
        resource.split_once('.').ok_or_else(|| ConfigError(format!("unsupported resource: {resource}")))?;
    if !matches!(which, "limits" | "requests") || !matches!(name, "cpu" | "memory" | "ephemeral-storage") {
        return Err(ConfigError(format!("unsupported container resource: {resource}")));
    }
    let is_cpu = name == "cpu";
    let parse = |s: &str| -> Result<f64, ConfigError> {
        quantity::parse(s).map_err(|e| ConfigError(format!("invalid quantity {s:?} for {resource}: {e}")))
    };
    let value = match get(which, name) {
        Some(q) => parse(&q)?,
        None if which == "limits" => match name {
            "cpu" => d.node_cpu_millis as f64 / 1000.0,
            "memory" => d.node_memory as f64,
            _ => d.node_ephemeral_storage as f64,
        },
        // An unset request defaults to the limit when one is set (API defaulting), else 0.
        None => match get("limits", name) {
            Some(q) => parse(&q)?,
            None => 0.0,
        },
    };
    let div = match divisor {
        Some(s) if !s.is_empty() => parse(s)?,
        _ => 1.0,
    };
    if div <= 0.0 {
        return Err(ConfigError(format!("invalid divisor for {resource}")));
    }
    let _ = is_cpu;
    // Round up like upstream's ConvertResourceCPUToString / memory conversion.
    let v = (value / div - 1e-9).ceil().max(if value > 0.0 { 1.0 } else { 0.0 });
    Ok(format!("{}", v as i64))
}

/// Upstream's C_IDENTIFIER check for envFrom keys with a prefix.
fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Service link variables (`FOO_SERVICE_HOST`, docker-link style `FOO_PORT_80_TCP…`).
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| s.metadata.name.clone());
    for svc in sorted {
        let Some(spec) = &svc.spec else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = svc.metadata.name.clone().unwrap_or_default().to_uppercase().replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = &p.name {
                out.push((format!("{name}_SERVICE_PORT_{}", pn.to_uppercase().replace('-', "_")), p.port.to_string()));
            }
        }
        let proto = first.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.push((format!("{name}_PORT"), format!("{}://{ip}:{}", proto.to_lowercase(), first.port)));
        for p in &ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((prefix.clone(), format!("{}://{ip}:{}", proto.to_lowercase(), p.port)));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.clone()));
        }
    }
    out
}

/// The container's environment from the API objects, in upstream's order: envFrom, then env
/// (each value expanded against what came before and the service variables), then the service
/// variables not already set. Returns the variables and warnings for skipped envFrom keys.
pub async fn resolve(
    pod: &Pod,
    container: &Container,
    objects: &mut Objects,
    service_vars: &[(String, String)],
    d: &Downward,
) -> Result<(Vec<(String, String)>, Vec<String>), ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut warnings = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = out.iter_mut().find(|(kk, _)| *kk == k) {
            e.1 = v;
        } else {
            out.push((k, v));
        }
    };
    let api_err = |e: kube::Error| ConfigError(format!("failed to fetch an object: {e}"));
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(r) = &from.config_map_ref {
            match objects.configmap(&r.name).await.map_err(api_err)? {
                Some(cm) => pairs.extend(cm.data.clone().unwrap_or_default()),
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap {:?} not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match objects.secret(&r.name).await.map_err(api_err)? {
                Some(s) => pairs.extend(
                    s.data
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())),
                ),
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret {:?} not found", r.name))),
            }
        }
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            let key = format!("{prefix}{k}");
            if !valid_env_name(&key) {
                invalid.push(key);
                continue;
            }
            set(&mut out, key, v);
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push(format!(
                "Keys [{}] from the EnvFrom were skipped since they are invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    for e in container.env.iter().flatten() {
        let value = match (&e.value_from, &e.value) {
            (Some(src), _) => {
                if let Some(r) = &src.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match objects.configmap(&r.name).await.map_err(api_err)? {
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(ConfigError(format!(
                                    "couldn't find key {} in ConfigMap {}/{}",
                                    r.key,
                                    ns(pod),
                                    r.name
                                )))
                            }
                        },
                        None if optional => continue,
                        None => return Err(ConfigError(format!("configmap {:?} not found", r.name))),
                    }
                } else if let Some(r) = &src.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match objects.secret(&r.name).await.map_err(api_err)? {
                        Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(ConfigError(format!(
                                    "couldn't find key {} in Secret {}/{}",
                                    r.key,
                                    ns(pod),
                                    r.name
                                )))
                            }
                        },
                        None if optional => continue,
                        None => return Err(ConfigError(format!("secret {:?} not found", r.name))),
                    }
                } else if let Some(f) = &src.field_ref {
                    field_ref(pod, &f.field_path, d)?
                } else if let Some(r) = &src.resource_field_ref {
                    let cname =
                        r.container_name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| container.name.clone());
                    resource_field_ref(pod, &cname, &r.resource, r.divisor.as_ref().map(|q| q.0.as_str()), d)?
                } else {
                    String::new()
                }
            }
            (None, Some(v)) => {
                let lookup = |n: &str| {
                    out.iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .or_else(|| service_vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
                };
                expand(v, &lookup)
            }
            (None, None) => String::new(),
        };
        set(&mut out, e.name.clone(), value);
    }
    for (k, v) in service_vars {
        if !out.iter().any(|(kk, _)| kk == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    Ok((out, warnings))
}

fn ns(pod: &Pod) -> String {
    pod.metadata.namespace.clone().unwrap_or_default()
}

/// The image's environment overridden by the container's, as `KEY=VALUE`.
pub fn merge_image_env(image_env: &[String], env: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = image_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    for (k, v) in env {
        match out.iter_mut().find(|(kk, _)| kk == k) {
            Some(e) => e.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(0, ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// A user resolved from the image's `USER` and the image's /etc/passwd and /etc/group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUser {
    pub uid: u32,
    pub gid: u32,
    /// The user as written when it is a name (runAsNonRoot cannot trust a name).
    pub name: Option<String>,
}

/// Reads `etc/<file>` from the top-most layer that has it.
fn layer_file(layers: &[PathBuf], file: &str) -> Option<String> {
    layers.iter().rev().find_map(|l| std::fs::read_to_string(l.join("etc").join(file)).ok())
}

/// `uid`, `uid:gid`, `name`, `name:group` (empty = root) against the image's files.
pub fn image_user(user: Option<&str>, layers: &[PathBuf]) -> Result<ImageUser, ConfigError> {
    let user = user.unwrap_or("").trim();
    if user.is_empty() {
        return Ok(ImageUser { uid: 0, gid: 0, name: None });
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = || layer_file(layers, "passwd").unwrap_or_default();
    let (uid, mut gid, name) = match u.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd()
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[2].parse() == Ok(uid))
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(0);
            (uid, gid, None)
        }
        Err(_) => {
            let line = passwd()
                .lines()
                .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[0] == u);
            match line {
                Some(f) => (
                    f[2].parse().map_err(|_| ConfigError(format!("invalid uid for user {u:?} in /etc/passwd")))?,
                    f[3].parse().unwrap_or(0),
                    Some(u.to_string()),
                ),
                None => {
                    return Err(ConfigError(format!("unable to find user {u}: no matching entries in passwd file")))
                }
            }
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => layer_file(layers, "group")
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| ConfigError(format!("unable to find group {g}: no matching entries in group file")))?,
        };
    }
    Ok(ImageUser { uid, gid, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector};
    use k8s_openapi::ByteString;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn expansion_follows_upstream() {
        let look = |n: &str| match n {
            "A" => Some("x".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("$(A)-$(A)", &look), "x-x");
        assert_eq!(expand("$$(A)", &look), "$(A)");
        assert_eq!(expand("$(B)", &look), "$(B)");
        assert_eq!(expand("a$(EMPTY)b", &look), "ab");
        assert_eq!(expand("$(A", &look), "$(A");
        assert_eq!(expand("$A $", &look), "$A $");
        assert_eq!(expand("$$$$", &look), "$$");
        assert_eq!(expand("ünï$(A)cødé", &look), "ünïxcødé");
    }

    #[test]
    fn command_and_args_over_entrypoint_and_cmd() {
        let ep = s(&["/ep"]);
        let cmd = s(&["cmd1"]);
        let env = vec![("X".to_string(), "1".to_string())];
        let mut c = Container { name: "c".into(), ..Default::default() };
        assert_eq!(argv(&c, &ep, &cmd, &env).unwrap(), s(&["/ep", "cmd1"]));
        c.args = Some(s(&["a", "$(X)"]));
        assert_eq!(argv(&c, &ep, &cmd, &env).unwrap(), s(&["/ep", "a", "1"]));
        c.command = Some(s(&["/bin/sh", "-c"]));
        assert_eq!(argv(&c, &ep, &cmd, &env).unwrap(), s(&["/bin/sh", "-c", "a", "1"]));
        c.args = None;
        assert_eq!(argv(&c, &ep, &cmd, &env).unwrap(), s(&["/bin/sh", "-c"]));
        let empty = Container { name: "e".into(), ..Default::default() };
        assert!(argv(&empty, &[], &[], &env).unwrap_err().0.contains("no command"));
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn env_sources_and_order() {
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "cm"}, "data": {"K": "v", "1bad": "x", "SHARED": "cm"}}),
        )
        .unwrap();
        let mut sec = Secret::default();
        sec.metadata.name = Some("sec".into());
        sec.data = Some([("pw".to_string(), ByteString(b"hunter2".to_vec()))].into_iter().collect());
        let mut objects = Objects::fixed(vec![cm], vec![sec]);
        let p = pod();
        let fr = |path: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
            ..Default::default()
        };
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                    name: "cm".into(),
                    optional: None,
                }),
                prefix: None,
                secret_ref: None,
            }]),
            env: Some(vec![
                EnvVar { name: "SHARED".into(), value: Some("env".into()), value_from: None },
                EnvVar { name: "POD".into(), value_from: Some(fr("metadata.name")), value: None },
                EnvVar { name: "APP".into(), value_from: Some(fr("metadata.labels['app']")), value: None },
                EnvVar { name: "IP".into(), value_from: Some(fr("status.podIP")), value: None },
                EnvVar {
                    name: "PW".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "sec".into(),
                            key: "pw".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    value: None,
                },
                EnvVar {
                    name: "OPT".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "nope".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                    value: None,
                },
                EnvVar {
                    name: "MSG".into(),
                    value: Some("$(K)/$(POD)/$(KUBERNETES_SERVICE_HOST)/$(LATER)".into()),
                    value_from: None,
                },
                EnvVar { name: "LATER".into(), value: Some("l".into()), value_from: None },
            ]),
            ..Default::default()
        };
        let d = Downward { pod_ips: vec!["10.42.0.5".into()], ..Default::default() };
        let svc = vec![("KUBERNETES_SERVICE_HOST".to_string(), "10.43.0.1".to_string())];
        let (env, warnings) = resolve(&p, &c, &mut objects, &svc, &d).await.unwrap();
        let get = |k: &str| env.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("K"), Some("v"));
        assert_eq!(get("SHARED"), Some("env"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.42.0.5"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("MSG"), Some("v/p/10.43.0.1/$(LATER)"));
        assert_eq!(env.last().unwrap().0, "KUBERNETES_SERVICE_HOST");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("1bad"));

        let missing = Container {
            name: "c".into(),
            env: Some(vec![EnvVar {
                name: "X".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector { name: "sec".into(), key: "nokey".into(), optional: None }),
                    ..Default::default()
                }),
                value: None,
            }]),
            ..Default::default()
        };
        let err = resolve(&p, &missing, &mut objects, &[], &d).await.unwrap_err();
        assert_eq!(err.0, "couldn't find key nokey in Secret ns/sec");
    }

    #[test]
    fn resource_field_refs() {
        let p = pod();
        let d = Downward { node_cpu_millis: 2000, node_memory: 1 << 30, ..Default::default() };
        assert_eq!(resource_field_ref(&p, "c", "requests.cpu", None, &d).unwrap(), "1");
        assert_eq!(resource_field_ref(&p, "c", "requests.cpu", Some("1m"), &d).unwrap(), "250");
        assert_eq!(resource_field_ref(&p, "c", "limits.cpu", None, &d).unwrap(), "2");
        assert_eq!(resource_field_ref(&p, "c", "limits.memory", Some("1Mi"), &d).unwrap(), "128");
        assert_eq!(resource_field_ref(&p, "c", "requests.memory", None, &d).unwrap(), "67108864");
        assert!(resource_field_ref(&p, "c", "limits.gpu", None, &d).is_err());
        assert!(resource_field_ref(&p, "x", "limits.cpu", None, &d).is_err());
    }

    #[test]
    fn image_users() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = dir.path().join("l1");
        let l2 = dir.path().join("l2");
        std::fs::create_dir_all(l1.join("etc")).unwrap();
        std::fs::create_dir_all(l2.join("etc")).unwrap();
        std::fs::write(l1.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(l2.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n").unwrap();
        std::fs::write(l2.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let layers = vec![l1, l2];
        assert_eq!(image_user(None, &layers).unwrap(), ImageUser { uid: 0, gid: 0, name: None });
        assert_eq!(image_user(Some("1000"), &layers).unwrap(), ImageUser { uid: 1000, gid: 1001, name: None });
        assert_eq!(
            image_user(Some("web"), &layers).unwrap(),
            ImageUser { uid: 1000, gid: 1001, name: Some("web".into()) }
        );
        assert_eq!(image_user(Some("web:staff"), &layers).unwrap().gid, 50);
        assert_eq!(image_user(Some("5:6"), &layers).unwrap(), ImageUser { uid: 5, gid: 6, name: None });
        assert!(image_user(Some("nobody"), &layers).is_err());
        assert!(image_user(Some("web:nogroup"), &layers).is_err());
    }

    #[test]
    fn image_env_is_overridden() {
        let env = merge_image_env(&s(&["PATH=/bin", "A=1"]), &[("A".into(), "2".into()), ("B".into(), "3".into())]);
        assert_eq!(env, s(&["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(merge_image_env(&[], &[])[0].split('=').next(), Some("PATH"));
    }
}
