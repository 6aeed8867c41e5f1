//! `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward` and `nodes/proxy`: checked here as
//! upstream's registry does (the pod has a node, the container exists, the log options are valid),
//! then served by the node's agent through [`super::node_proxy::NodeAccess::proxy`].

use bytes::Bytes;
use http::{Request, Response};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::objects::Ctx;
use super::request::Query;
use super::Body;
use crate::api::registry;
use crate::api::status::{Cause, StatusError};

/// Serves one of the streaming subresources of the pod `name`.
pub async fn serve_pod(ctx: &Ctx, sub: &str, name: &str, req: Request<Bytes>) -> Result<Response<Body>, StatusError> {
    let pod: Pod = serde_json::from_value(ctx.current_value(name).await?)
        .map_err(|e| StatusError::internal(format!("decoding pod {name}: {e}")))?;
    let ns = ctx.ns.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let path = match sub {
        "log" => {
            check_log_options(&ctx.query, name)?;
            let container = pick_container(&pod, ctx.query.get("container"), true)?;
            format!("/containerLogs/{ns}/{name}/{container}")
        }
        "exec" | "attach" => {
            let container = pick_container(&pod, ctx.query.get("container"), false)?;
            format!("/{sub}/{ns}/{name}/{uid}/{container}")
        }
        "portforward" => format!("/portForward/{ns}/{name}/{uid}"),
        other => {
            return Err(StatusError::new(404, "NotFound", format!("pods/{other} is not served by this kelp version")))
        }
    };
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| StatusError::bad_request(format!("pod {name} does not have a host assigned")))?;
    let node = node(ctx, &node_name).await?;
    let target = if raw_query.is_empty() { path } else { format!("{path}?{raw_query}") };
    ctx.api.node_access()?.proxy(&node, req, &target).await
}

/// `nodes/<name>/proxy/<path>`: any request to the node's agent.
pub async fn serve_node_proxy(ctx: &Ctx, name: &str, req: Request<Bytes>) -> Result<Response<Body>, StatusError> {
    let node = node(ctx, name).await?;
    let full = req.uri().path();
    let marker = format!("/nodes/{name}/proxy");
    let rest = full.split_once(&marker).map(|(_, r)| r).unwrap_or_default();
    let rest = if rest.is_empty() { "/" } else { rest };
    let target = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    ctx.api.node_access()?.proxy(&node, req, &target).await
}

async fn node(ctx: &Ctx, name: &str) -> Result<Node, StatusError> {
    let def = registry::find("", "v1", "nodes").ok_or_else(|| StatusError::internal("nodes are not registered"))?;
    let nodes = Ctx::new(ctx.api.clone(), def, None, Query::parse(None), None)?;
    let v = nodes.get_value(name).await?.ok_or_else(|| StatusError::not_found("", "nodes", name))?;
    serde_json::from_value(v).map_err(|e| StatusError::internal(format!("decoding node {name}: {e}")))
}

/// The container a request is for: the one named, or the only one; upstream's errors otherwise.
fn pick_container(pod: &Pod, asked: Option<&str>, init_too: bool) -> Result<String, StatusError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let main: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let init: Vec<String> = spec.init_containers.unwrap_or_default().into_iter().map(|c| c.name).collect();
    let ephemeral: Vec<String> = spec.ephemeral_containers.unwrap_or_default().into_iter().map(|c| c.name).collect();
    match asked.filter(|a| !a.is_empty()) {
        Some(c) => {
            let known = main.iter().chain(init.iter()).chain(ephemeral.iter()).any(|n| n == c);
            if known {
                Ok(c.to_string())
            } else {
                Err(StatusError::bad_request(format!("container {c} is not valid for pod {name}")))
            }
        }
        None if main.len() == 1 => Ok(main[0].clone()),
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", main.join(" "));
            if init_too && !init.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            if !ephemeral.is_empty() {
                msg.push_str(&format!(" or one of the ephemeral containers: [{}]", ephemeral.join(" ")));
            }
            Err(StatusError::bad_request(msg))
        }
    }
}

/// Upstream's PodLogOptions validation.
fn check_log_options(q: &Query, name: &str) -> Result<(), StatusError> {
    let mut causes = Vec::new();
    let int = |k: &str| -> Result<Option<i64>, StatusError> { q.int(k) };
    if let Some(n) = int("tailLines")? {
        if n < 0 {
            causes.push(Cause::invalid("tailLines", &json!(n), "must be greater than or equal to 0"));
        }
    }
    if let Some(n) = int("limitBytes")? {
        if n < 1 {
            causes.push(Cause::invalid("limitBytes", &json!(n), "must be greater than 0"));
        }
    }
    let since = int("sinceSeconds")?;
    if let Some(n) = since {
        if n < 1 {
            causes.push(Cause::invalid("sinceSeconds", &json!(n), "must be greater than 0"));
        }
    }
    if let Some(t) = q.get("sinceTime") {
        if since.is_some() {
            causes.push(Cause::forbidden(
                "sinceSeconds",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        if chrono::DateTime::parse_from_rfc3339(t).is_err() {
            return Err(StatusError::bad_request(format!("parsing time \"{t}\" as RFC 3339: invalid sinceTime")));
        }
    }
    if let Some(s) = q.get("stream") {
        if !matches!(s, "All" | "Stdout" | "Stderr") {
            causes.push(Cause::not_supported("stream", &Value::String(s.into()), &["All", "Stderr", "Stdout"]));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(StatusError::invalid("", "PodLogOptions", name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str], init: &[&str]) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": containers.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
                "initContainers": init.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
            }
        }))
        .unwrap()
    }

    #[test]
    fn container_choice_follows_upstream() {
        assert_eq!(pick_container(&pod(&["a"], &[]), None, true).unwrap(), "a");
        let e = pick_container(&pod(&["a", "b"], &["i"]), None, true).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let e = pick_container(&pod(&["a", "b"], &["i"]), None, false).unwrap_err();
        assert_eq!(e.message, "a container name must be specified for pod p, choose one of: [a b]");
        assert_eq!(pick_container(&pod(&["a", "b"], &["i"]), Some("i"), false).unwrap(), "i");
        let e = pick_container(&pod(&["a"], &[]), Some("zz"), false).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "container zz is not valid for pod p"));
    }

    #[test]
    fn log_options_are_validated() {
        let q = |s: &str| Query::parse(Some(s));
        assert!(check_log_options(&q("follow=true&tailLines=3"), "p").is_ok());
        assert_eq!(check_log_options(&q("tailLines=-1"), "p").unwrap_err().code, 422);
        assert_eq!(check_log_options(&q("limitBytes=0"), "p").unwrap_err().code, 422);
        assert_eq!(check_log_options(&q("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"), "p").unwrap_err().code, 422);
        assert_eq!(check_log_options(&q("sinceTime=yesterday"), "p").unwrap_err().code, 400);
        assert_eq!(check_log_options(&q("tailLines=x"), "p").unwrap_err().code, 400);
    }
}
