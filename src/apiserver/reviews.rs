//! Access and identity reviews: SelfSubjectAccessReview, SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectRulesReview (`kubectl auth can-i [--list]`) and
//! SelfSubjectReview (`kubectl auth whoami`). Answered on create, never stored.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::authz::{self, Attributes};
use super::objects::Ctx;
use super::{Body, UserInfo};
use crate::api::registry::ResourceDef;
use crate::api::status::{Cause, StatusError};

/// Is this resource one of the reviews?
pub fn is_review(def: &ResourceDef) -> bool {
    matches!(def.group, "authorization.k8s.io" | "authentication.k8s.io")
}

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn attributes(spec: &Value) -> Result<Attributes, Cause> {
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let opt = |k: &str| ra.get(k).and_then(Value::as_str).filter(|x| !x.is_empty()).map(str::to_string);
        return Ok(Attributes {
            verb: s(ra, "/verb"),
            namespace: opt("namespace"),
            group: s(ra, "/group"),
            resource: s(ra, "/resource"),
            subresource: opt("subresource"),
            name: opt("name"),
            path: None,
        });
    }
    if let Some(nra) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes { verb: s(nra, "/verb"), path: Some(s(nra, "/path")), ..Default::default() });
    }
    Err(Cause::required("spec.resourceAttributes")
        .with_detail("exactly one of nonResourceAttributes or resourceAttributes must be specified"))
}

trait Detail {
    fn with_detail(self, d: &str) -> Self;
}

impl Detail for Cause {
    fn with_detail(mut self, d: &str) -> Self {
        self.reason = "FieldValueInvalid".into();
        self.message = format!("Invalid value: \"null\": {d}");
        self
    }
}

fn review_status(allowed: bool) -> Value {
    if allowed {
        json!({ "allowed": true, "reason": "allowed by kelp RBAC" })
    } else {
        json!({ "allowed": false })
    }
}

/// Answer a review create.
pub async fn create(ctx: &Ctx, user: &UserInfo, req: &Request<Bytes>) -> Result<Response<Body>, StatusError> {
    let def = ctx.def;
    let mut obj = ctx.decode_object(req)?;
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let invalid = |c: Cause| StatusError::invalid(def.group, def.kind, "", vec![c]);
    let status = match def.kind {
        "SelfSubjectAccessReview" => {
            let a = attributes(&spec).map_err(invalid)?;
            review_status(authz::allowed(&ctx.api, user, &a).await)
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let mut a = attributes(&spec).map_err(invalid)?;
            if def.kind == "LocalSubjectAccessReview" {
                let ns = ctx.ns.clone().unwrap_or_default();
                if a.namespace.as_deref().is_some_and(|n| n != ns) {
                    return Err(invalid(Cause::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(a.namespace),
                        "must match metadata.namespace",
                    )));
                }
                a.namespace = Some(ns);
            }
            let name = s(&spec, "/user");
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| g.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            if name.is_empty() && groups.is_empty() {
                return Err(invalid(
                    Cause::required("spec.user").with_detail("at least one of user or group must be specified"),
                ));
            }
            review_status(authz::allowed(&ctx.api, &UserInfo { name, groups }, &a).await)
        }
        "SelfSubjectRulesReview" => {
            let ns = s(&spec, "/namespace");
            let rules = authz::rules(&ctx.api, user, (!ns.is_empty()).then_some(ns.as_str())).await;
            let (non_resource, resource): (Vec<Value>, Vec<Value>) =
                rules.into_iter().partition(|r| r.get("nonResourceURLs").is_some());
            json!({ "resourceRules": resource, "nonResourceRules": non_resource, "incomplete": false })
        }
        "SelfSubjectReview" => json!({ "userInfo": { "username": user.name, "groups": user.groups } }),
        other => return Err(StatusError::method_not_allowed(format!("create is not supported on {other}"))),
    };
    obj["status"] = status;
    obj["metadata"] = json!({ "creationTimestamp": null });
    ctx.respond_object(StatusCode::CREATED, &obj)
}
