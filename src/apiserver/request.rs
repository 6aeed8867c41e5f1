//! What a request asks for: the path parsed into a [`RequestInfo`] (as upstream's
//! `RequestInfoFactory` does), query parameters, and content negotiation.

use std::collections::HashMap;

use http::Method;

use crate::api::status::StatusError;

/// The verb of a resource request, upstream's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/api`, `/apis`, `/apis/<g>`, `/api/v1`, `/apis/<g>/<v>`.
    Discovery { group: Option<String>, version: Option<String>, legacy: bool },
    /// A resource request.
    Resource(ResourceRequest),
    /// Anything else (`/healthz`, `/version`, `/openapi/...`).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub verb: Verb,
}

fn verb_for(method: &Method, has_name: bool, watch: bool) -> Option<Verb> {
    Some(match *method {
        Method::GET | Method::HEAD if watch => Verb::Watch,
        Method::GET | Method::HEAD if has_name => Verb::Get,
        Method::GET | Method::HEAD => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if has_name => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    })
}

/// Parse a request path and method.
pub fn parse_target(method: &Method, path: &str, query: &Query) -> Result<Target, StatusError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest, legacy) = match segs.as_slice() {
        ["api"] => return Ok(Target::Discovery { group: None, version: None, legacy: true }),
        ["apis"] => return Ok(Target::Discovery { group: None, version: None, legacy: false }),
        ["api", v] => {
            return Ok(Target::Discovery { group: Some(String::new()), version: Some(v.to_string()), legacy: true })
        }
        ["apis", g] => return Ok(Target::Discovery { group: Some(g.to_string()), version: None, legacy: false }),
        ["apis", g, v] => {
            return Ok(Target::Discovery { group: Some(g.to_string()), version: Some(v.to_string()), legacy: false })
        }
        ["api", v, rest @ ..] => ("", *v, rest, true),
        ["apis", g, v, rest @ ..] => (*g, *v, rest, false),
        _ => return Ok(Target::Other(path.to_string())),
    };
    let _ = legacy;
    let mut rest: Vec<&str> = rest.to_vec();
    let mut watch = query.flag("watch");
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    let (namespace, rest) = match rest.as_slice() {
        // /namespaces/<ns>/<resource>... ; /namespaces/<name>[/status|/finalize] is the namespace itself.
        ["namespaces", ns, resource, tail @ ..]
            if !(group.is_empty() && (*resource == "status" || *resource == "finalize") && tail.is_empty()) =>
        {
            (Some(ns.to_string()), [&[*resource][..], tail].concat())
        }
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [r] => (r.to_string(), None, None),
        [r, n] => (r.to_string(), Some(n.to_string()), None),
        [r, n, s] => (r.to_string(), Some(n.to_string()), Some(s.to_string())),
        // proxy paths carry more segments
        [r, n, s, ..] if *s == "proxy" => (r.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return Err(StatusError::new(404, "NotFound", "the server could not find the requested resource")),
    };
    let verb = verb_for(method, name.is_some(), watch).ok_or_else(|| {
        StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        ))
    })?;
    // A name given as a field selector on a watch (`fieldSelector=metadata.name=x`) stays a list/watch.
    Ok(Target::Resource(ResourceRequest {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource,
        name,
        subresource,
        verb,
    }))
}

/// Query parameters (last value wins, as Go's `Get`).
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        if let Some(q) = q {
            for (k, v) in url_pairs(q) {
                m.insert(k, v);
            }
        }
        Query(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        self.0.get(k).is_some_and(|v| parse_bool(v))
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, StatusError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| StatusError::bad_request(format!("invalid value for {k}: {v:?}")))
            }
        }
    }

    pub fn dry_run(&self) -> Result<bool, StatusError> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => {
                Err(StatusError::bad_request(format!("Unsupported value: {other:?}: supported values: \"All\"")))
            }
        }
    }
}

/// A true boolean as Go's `strconv.ParseBool` reads it (`1`, `t`, `T`, `true`, `True`, `TRUE`);
/// the Python client sends `True`.
pub fn parse_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "True" | "TRUE")
}

/// The `key=value` pairs of a query string, decoded, repeats kept.
pub fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|s| !s.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// Decode `%XX` escapes and `+` (form encoding) in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What representation the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The object (or list) itself.
    Object,
    /// `meta.k8s.io` Table (`as=Table`).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Pick the first representation of the `Accept` header kelp can produce.
pub fn negotiate(accept: Option<&str>) -> Result<Representation, StatusError> {
    let Some(accept) = accept else {
        return Ok(Representation::Object);
    };
    let mut saw_any = false;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        let mut as_ = None;
        let mut g = None;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(v.trim()),
                    "g" => g = Some(v.trim()),
                    _ => {}
                }
            }
        }
        if !(media == "application/json" || media == "*/*" || media == "application/*" || media == "application/yaml") {
            saw_any = true;
            continue;
        }
        match (as_, g) {
            (None, _) => return Ok(Representation::Object),
            (Some("Table"), Some("meta.k8s.io")) => return Ok(Representation::Table),
            (Some("PartialObjectMetadata") | Some("PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Ok(Representation::Metadata)
            }
            _ => saw_any = true,
        }
    }
    if saw_any {
        return Err(StatusError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/yaml; got {accept:?}"),
        ));
    }
    Ok(Representation::Object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(method: Method, path: &str, q: &str) -> Target {
        parse_target(&method, path, &Query::parse(Some(q))).unwrap()
    }

    #[test]
    fn resource_paths() {
        match t(Method::GET, "/api/v1/namespaces/default/pods/p1/log", "") {
            Target::Resource(r) => {
                assert_eq!(
                    (r.namespace.as_deref(), r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
                    (Some("default"), "pods", Some("p1"), Some("log"))
                );
                assert_eq!(r.verb, Verb::Get);
            }
            other => panic!("{other:?}"),
        }
        match t(Method::GET, "/api/v1/namespaces/kube-system", "") {
            Target::Resource(r) => assert_eq!(
                (r.namespace, r.resource.as_str(), r.name.as_deref()),
                (None, "namespaces", Some("kube-system"))
            ),
            other => panic!("{other:?}"),
        }
        match t(Method::PUT, "/api/v1/namespaces/x/finalize", "") {
            Target::Resource(r) => assert_eq!(
                (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
                ("namespaces", Some("x"), Some("finalize"))
            ),
            other => panic!("{other:?}"),
        }
        match t(Method::GET, "/apis/apps/v1/deployments", "watch=true") {
            Target::Resource(r) => assert_eq!((r.verb, r.namespace), (Verb::Watch, None)),
            other => panic!("{other:?}"),
        }
        match t(Method::GET, "/api/v1/watch/namespaces/default/pods", "") {
            Target::Resource(r) => assert_eq!((r.verb, r.namespace.as_deref()), (Verb::Watch, Some("default"))),
            other => panic!("{other:?}"),
        }
        match t(Method::DELETE, "/api/v1/namespaces/default/configmaps", "") {
            Target::Resource(r) => assert_eq!(r.verb, Verb::DeleteCollection),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t(Method::GET, "/apis/apps", ""),
            Target::Discovery { group: Some("apps".into()), version: None, legacy: false }
        );
        assert_eq!(t(Method::GET, "/healthz", ""), Target::Other("/healthz".into()));
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=1&limit=500&dryRun=All"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert!(q.flag("watch"));
        assert!(!Query::parse(Some("watch=false")).flag("watch"));
        assert_eq!(q.int("limit").unwrap(), Some(500));
        assert!(q.dry_run().unwrap());
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)).unwrap(), Representation::Table);
        assert_eq!(negotiate(Some("application/json")).unwrap(), Representation::Object);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, application/json")).unwrap(),
            Representation::Object
        );
        assert_eq!(negotiate(None).unwrap(), Representation::Object);
        assert_eq!(negotiate(Some("text/html")).unwrap_err().code, 406);
    }
}
