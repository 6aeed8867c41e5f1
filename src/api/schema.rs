//! The upstream Kubernetes v1.33 API schema, shipped compressed in `data/openapi/` (see its
//! NOTICE). Drives OpenAPI documents and strategic merge patch (patch strategies, merge keys,
//! list types). Loaded on first use only, so an idle server does not pay for it.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Map, Value};

static DEFINITIONS_GZ: &[u8] = include_bytes!("../../data/openapi/kubernetes-v1.33.0-definitions.json.gz");

/// The definitions, keyed by upstream name (`io.k8s.api.apps.v1.Deployment`).
pub struct Schema {
    definitions: Map<String, Value>,
    by_gvk: HashMap<(String, String, String), String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("decompressing the shipped API schema: {0}")]
    Decompress(#[from] std::io::Error),
    #[error("parsing the shipped API schema: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the shipped API schema has no $defs")]
    Shape,
}

fn load() -> Result<Schema, SchemaError> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(DEFINITIONS_GZ).read_to_end(&mut raw)?;
    let mut doc: Value = serde_json::from_slice(&raw)?;
    let definitions = match doc.get_mut("$defs").map(Value::take) {
        Some(Value::Object(m)) => m,
        _ => return Err(SchemaError::Shape),
    };
    let mut by_gvk = HashMap::new();
    for (name, def) in &definitions {
        for gvk in def.get("x-kubernetes-group-version-kind").and_then(Value::as_array).into_iter().flatten() {
            let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            // The first definition named for a GVK wins (DeleteOptions and friends are listed under many).
            by_gvk.entry((s("group"), s("version"), s("kind"))).or_insert_with(|| name.clone());
        }
    }
    Ok(Schema { definitions, by_gvk })
}

/// The schema, loaded on first use.
pub fn get() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        load().unwrap_or_else(|e| {
            // The data is compiled in: failing here is a build defect, not an input error.
            tracing::error!(message = "the shipped API schema is unusable", error = %e);
            Schema { definitions: Map::new(), by_gvk: HashMap::new() }
        })
    })
}

/// Definitions of custom resources, from the CRDs (replaced as a whole on every CRD change).
struct Overlay {
    definitions: Map<String, Value>,
    by_gvk: HashMap<(String, String, String), String>,
}

static OVERLAY: std::sync::RwLock<Option<&'static Overlay>> = std::sync::RwLock::new(None);

fn overlay() -> Option<&'static Overlay> {
    OVERLAY.read().ok().and_then(|o| *o)
}

/// Replace the custom resources' definitions (each with its `x-kubernetes-group-version-kind`).
/// Kept for the life of the process, like the registry's custom resources: one copy per CRD change.
pub fn set_custom_definitions(definitions: Map<String, Value>) {
    let mut by_gvk = HashMap::new();
    for (name, def) in &definitions {
        for gvk in def.get("x-kubernetes-group-version-kind").and_then(Value::as_array).into_iter().flatten() {
            let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            by_gvk.insert((s("group"), s("version"), s("kind")), name.clone());
        }
    }
    let leaked: &'static Overlay = Box::leak(Box::new(Overlay { definitions, by_gvk }));
    if let Ok(mut o) = OVERLAY.write() {
        *o = Some(leaked);
    }
}

/// The definition name a `$ref` points at (`#/$defs/<name>` or `#/definitions/<name>`).
pub fn ref_name(v: &Value) -> Option<&str> {
    let r = v.get("$ref")?.as_str()?;
    r.strip_prefix("#/$defs/").or_else(|| r.strip_prefix("#/definitions/"))
}

impl Schema {
    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name).or_else(|| overlay()?.definitions.get(name))
    }

    pub fn definitions(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.definitions.iter()
    }

    /// The definition name of a kind.
    pub fn name_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        let key = (group.to_string(), version.to_string(), kind.to_string());
        self.by_gvk.get(&key).or_else(|| overlay()?.by_gvk.get(&key)).map(String::as_str)
    }

    /// The schema of a kind.
    pub fn for_kind(&self, group: &str, version: &str, kind: &str) -> Option<&Value> {
        self.name_for(group, version, kind).and_then(|n| self.definition(n))
    }

    /// Follow a `$ref` (if any) to the definition it names.
    pub fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match ref_name(v).and_then(|n| self.definition(n)) {
            Some(d) => d,
            None => v,
        }
    }

    /// The schema of a property of an object schema (refs resolved).
    pub fn property<'a>(&'a self, object: &'a Value, name: &str) -> Option<&'a Value> {
        self.resolve(object).get("properties")?.get(name)
    }

    /// The item schema of an array schema (refs resolved).
    pub fn items<'a>(&'a self, array: &'a Value) -> Option<&'a Value> {
        self.resolve(array).get("items").map(|i| self.resolve(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_finds_patch_metadata() {
        let s = get();
        let dep = s.for_kind("apps", "v1", "Deployment").expect("Deployment");
        let spec = s.property(dep, "spec").expect("spec");
        let template = s.property(spec, "template").expect("template");
        let pod_spec = s.property(template, "spec").expect("pod spec");
        let containers = s.property(pod_spec, "containers").expect("containers");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert!(s.items(containers).and_then(|c| c.get("properties")).is_some_and(|p| p.get("image").is_some()));
        assert_eq!(s.name_for("", "v1", "ConfigMap"), Some("io.k8s.api.core.v1.ConfigMap"));
        assert!(s.definitions().count() > 600);
    }
}
