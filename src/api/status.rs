//! `metav1.Status`: every error the API returns is one of these.

use serde_json::{json, Value};

/// One field-level cause of an error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Upstream cause type: `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`,
    /// `FieldValueNotSupported`, `FieldValueForbidden`, `FieldValueTooLong`, `UnexpectedServerResponse`...
    pub reason: String,
    /// Human-readable message, e.g. `Required value` or `Invalid value: "Foo": a lowercase RFC 1123 ...`.
    pub message: String,
    /// JSON path of the field, e.g. `metadata.name` or `spec.template.spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause { reason: "FieldValueRequired".into(), message: "Required value".into(), field: field.into() }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {}: {}", render_value(value), detail.as_ref()),
            field: field.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: {}: supported values: {}", render_value(value), list.join(", ")),
            field: field.into(),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate".into(),
            message: format!("Duplicate value: {}", render_value(value)),
            field: field.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {}", detail.into()),
            field: field.into(),
        }
    }

    /// A field that may not change after creation (upstream wording).
    pub fn immutable(field: impl Into<String>, value: &Value) -> Self {
        Cause::invalid(field, value, "field is immutable")
    }

    /// The `<field>: <message>` form upstream uses when it joins causes into a message.
    pub fn display(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// An API error, rendered as a `metav1.Status` with HTTP code and reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds a client should wait before retrying (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl StatusError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        StatusError { code, reason: reason.into(), message: message.into(), details: None, retry_after: None }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        let mut d = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = Some(d);
        self
    }

    /// `<resource>.<group>` or just `<resource>` for the core group: how upstream names a resource in messages.
    fn qualified(group: &str, resource: &str) -> String {
        if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        }
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", Self::qualified(group, resource)))
            .with_details(group, resource, name)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", Self::qualified(group, resource)))
            .with_details(group, resource, name)
    }

    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {detail}", Self::qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 409 for a stale resourceVersion, with upstream's wording.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with field causes. `kind` is the Kind (e.g. `Deployment`).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let joined: Vec<String> = causes.iter().map(Cause::display).collect();
        let what = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let message = if joined.len() == 1 {
            format!("{what} \"{name}\" is invalid: {}", joined[0])
        } else {
            format!("{what} \"{name}\" is invalid: [{}]", joined.join(", "))
        };
        let mut d = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        d["causes"] = Value::Array(
            causes.iter().map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field })).collect(),
        );
        StatusError { code: 422, reason: "Invalid".into(), message, details: Some(d), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type:?}"))
    }

    pub fn too_large() -> Self {
        Self::new(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// The `metav1.Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if self.reason.is_empty() {
            s.as_object_mut().map(|m| m.remove("reason"));
        }
        s
    }
}

/// A success `Status` (delete of a non-pod object returns the object; some paths return this).
pub fn success(group: &str, kind: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": kind, "uid": uid });
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_upstream_shape() {
        let e = StatusError::invalid("apps", "Deployment", "web", vec![Cause::required("spec.selector")]);
        assert_eq!(e.code, 422);
        assert_eq!(e.message, "Deployment.apps \"web\" is invalid: spec.selector: Required value");
        let core = StatusError::invalid(
            "",
            "ConfigMap",
            "Bad_Name",
            vec![Cause::invalid("metadata.name", &json!("Bad_Name"), "x")],
        );
        assert_eq!(core.message, "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": x");
        assert_eq!(core.to_status()["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn not_found_names_the_resource() {
        let e = StatusError::not_found("apps", "deployments", "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["code"], 404);
    }
}
