//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to the JSON
//! object a client would have sent as JSON.
//!
//! The wire format is the magic `k8s\0` followed by a `runtime.Unknown` envelope whose `typeMeta`
//! names the object's apiVersion and kind and whose `raw` is the object's own protobuf encoding.
//! The object is decoded generically against the Kubernetes API schema (a FileDescriptorSet compiled
//! from the upstream `generated.proto` files, `data/protobuf/`), then mapped to JSON the way the
//! Kubernetes JSON serializer writes it: proto field names are the JSON names; `Quantity`,
//! `IntOrString`, `Time`, `MicroTime`, `Duration`, `RawExtension`, `FieldsV1` and the `items`
//! wrappers (`ExtraValue`, `Verbs`) take their JSON shapes; `bytes` are base64; the embedded
//! (`json:",inline"`) structs are flattened into their parent.
//!
//! Go's protobuf marshaller writes non-pointer fields even when they are zero, so an empty string
//! or a zero time on the wire is indistinguishable from an unset field; both are omitted here, as
//! the JSON serializer's `omitempty` would. Numbers and booleans are kept as sent (a zero there may
//! be an explicit pointer value, such as `replicas: 0`).

use std::io::Read;
use std::sync::OnceLock;

use base64::Engine;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage};
use serde_json::{Map, Value};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

static DESCRIPTOR_GZ: &[u8] = include_bytes!("../../data/protobuf/kubernetes.fds.gz");

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const QUANTITY_VALUE: &str = "k8s.io.apimachinery.pkg.api.resource.QuantityValue";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";

/// Fields that are Go structs embedded with `json:",inline"`, their fields appearing in the parent's JSON:
/// (proto field name, simple name of the field's message type), in any group and version.
const INLINE: &[(&str, &str)] = &[
    ("volumeSource", "VolumeSource"),
    ("persistentVolumeSource", "PersistentVolumeSource"),
    ("handler", "ProbeHandler"),
    ("ephemeralContainerCommon", "EphemeralContainerCommon"),
    ("localObjectReference", "LocalObjectReference"),
    ("ingressRuleValue", "IngressRuleValue"),
    ("ruleWithOperations", "RuleWithOperations"),
    ("rule", "Rule"),
    ("deviceConfiguration", "DeviceConfiguration"),
];

/// Non-pointer numbers and booleans tagged `omitempty`, which Go writes even when zero: a zero is
/// omitted, as the JSON serializer would (message simple name, field), in any group and version.
/// (Other zeros are kept: on the wire they may be explicit pointer values, such as `replicas: 0`.)
const ZERO_OMITTED: &[(&str, &str)] = &[
    ("ObjectMeta", "generation"),
    ("Container", "stdin"),
    ("Container", "stdinOnce"),
    ("Container", "tty"),
    ("EphemeralContainerCommon", "stdin"),
    ("EphemeralContainerCommon", "stdinOnce"),
    ("EphemeralContainerCommon", "tty"),
    ("ContainerPort", "hostPort"),
    ("ServicePort", "nodePort"),
    ("DeploymentSpec", "minReadySeconds"),
    ("DeploymentSpec", "paused"),
    ("ReplicaSetSpec", "minReadySeconds"),
    ("DaemonSetSpec", "minReadySeconds"),
    ("StatefulSetSpec", "minReadySeconds"),
    ("PodSpec", "hostNetwork"),
    ("PodSpec", "hostPID"),
    ("PodSpec", "hostIPC"),
    ("ServiceSpec", "healthCheckNodePort"),
    ("ServiceSpec", "publishNotReadyAddresses"),
    ("ServiceBackendPort", "number"),
    ("PriorityClass", "globalDefault"),
];

/// Whether a zero number or `false` is left out: the listed fields, and the counters of `…Status`
/// messages (observedGeneration, replicas, active: computed by the server, never set by a client).
fn zero_omitted(message: &MessageDescriptor, field: &FieldDescriptor) -> bool {
    let name = message.name();
    ZERO_OMITTED.contains(&(name, field.name())) || (name.ends_with("Status") && name != "SubjectAccessReviewStatus")
}

/// Proto field names that are not the JSON name (go-to-protobuf derived them from the Go field name).
const RENAMED: &[(&str, &str)] = &[("uID", "uid"), ("aPIGroup", "apiGroup")];
/// Capitalised proto field names that are capitalised in JSON too (others are lower-cased: `Webhooks`).
const CAPITALISED: &[&str] = &["k8s.io.api.core.v1.DaemonEndpoint.Port"];

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic number \"k8s\\x00\"")]
    BadMagic,
    #[error("malformed protobuf envelope (runtime.Unknown): {0}")]
    Envelope(String),
    #[error("protobuf body has no {0} in its typeMeta")]
    MissingTypeMeta(&'static str),
    #[error("unsupported contentEncoding {0:?} in protobuf body")]
    ContentEncoding(String),
    #[error("unknown kind {kind:?} in version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("malformed protobuf {kind}: {reason}")]
    Malformed { kind: String, reason: String },
    #[error("malformed field {field}: {reason}")]
    Field { field: String, reason: String },
    #[error("the Kubernetes protobuf schema failed to load: {0}")]
    Schema(String),
}

/// The Kubernetes API protobuf schema (all of k8s.io/api and apimachinery), loaded once.
pub fn pool() -> Result<&'static DescriptorPool, ProtobufError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(DESCRIPTOR_GZ).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        DescriptorPool::decode(bytes.as_slice()).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| ProtobufError::Schema(e.clone()))
}

/// The protobuf message of a kind: `apps/v1` `Deployment` → `k8s.io.api.apps.v1.Deployment`.
pub fn message_for(api_version: &str, kind: &str) -> Result<MessageDescriptor, ProtobufError> {
    let unknown = || ProtobufError::UnknownKind { api_version: api_version.into(), kind: kind.into() };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid(version) || !valid(kind) {
        return Err(unknown());
    }
    let package = match group {
        "" => format!("k8s.io.api.core.{version}"),
        "meta.k8s.io" => format!("k8s.io.apimachinery.pkg.apis.meta.{version}"),
        "internal.apiserver.k8s.io" => format!("k8s.io.api.apiserverinternal.{version}"),
        g => format!("k8s.io.api.{}.{version}", g.split('.').next().unwrap_or_default()),
    };
    pool()?.get_message_by_name(&format!("{package}.{kind}")).ok_or_else(unknown)
}

/// Decode a Kubernetes protobuf request body into the JSON object kubectl would have sent as JSON
/// (apiVersion and kind set, field names and value shapes exactly as the JSON API: Quantity and
/// IntOrString as JSON string/int, Time as RFC 3339, MicroTime with microseconds, bytes (Secret data)
/// as base64 strings, maps as objects, absent optional fields omitted, RawExtension as embedded JSON).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC.as_slice()).ok_or(ProtobufError::BadMagic)?;
    let unknown_desc = pool()?.get_message_by_name(UNKNOWN).ok_or_else(|| ProtobufError::Schema(UNKNOWN.into()))?;
    let envelope = DynamicMessage::decode(unknown_desc, rest).map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let get_str = |msg: &DynamicMessage, name: &str| {
        msg.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    };
    let type_meta = envelope.get_field_by_name("typeMeta");
    let type_meta = type_meta.as_ref().and_then(|v| v.as_message());
    let api_version = type_meta.map(|m| get_str(m, "apiVersion")).unwrap_or_default();
    let kind = type_meta.map(|m| get_str(m, "kind")).unwrap_or_default();
    if api_version.is_empty() {
        return Err(ProtobufError::MissingTypeMeta("apiVersion"));
    }
    if kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta("kind"));
    }
    let encoding = get_str(&envelope, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let desc = message_for(&api_version, &kind)?;
    let raw = envelope.get_field_by_name("raw");
    let raw = raw.as_ref().and_then(|v| v.as_bytes()).map(|b| b.as_ref()).unwrap_or_default();
    let msg = DynamicMessage::decode(desc, raw)
        .map_err(|e| ProtobufError::Malformed { kind: format!("{api_version} {kind}"), reason: e.to_string() })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    match message_json(&msg)? {
        Value::Object(fields) => object.extend(fields),
        other => {
            return Err(ProtobufError::Malformed {
                kind: msg.descriptor().full_name().into(),
                reason: format!("not an object but {other}"),
            })
        }
    }
    Ok(Value::Object(object))
}

fn field_error(field: &FieldDescriptor, reason: impl Into<String>) -> ProtobufError {
    ProtobufError::Field { field: field.full_name().into(), reason: reason.into() }
}

fn is_inline(field: &FieldDescriptor) -> bool {
    let Kind::Message(m) = field.kind() else { return false };
    INLINE.iter().any(|(f, t)| *f == field.name() && *t == m.name())
}

/// The JSON name of a field: its proto name, but `Webhooks` → `webhooks`, `uID` → `uid`.
fn json_name(field: &FieldDescriptor) -> String {
    let name = field.name();
    if let Some((_, json)) = RENAMED.iter().find(|(proto, _)| *proto == name) {
        return json.to_string();
    }
    if CAPITALISED.contains(&field.full_name()) {
        return name.to_string();
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_uppercase() => first.to_ascii_lowercase().to_string() + chars.as_str(),
        _ => name.to_string(),
    }
}

/// A message whose Go type is a named slice (`ExtraValue`, `Verbs`): one repeated field `items`.
fn is_items_wrapper(desc: &MessageDescriptor) -> bool {
    let mut fields = desc.fields();
    matches!((fields.next(), fields.next()), (Some(f), None) if f.name() == "items" && f.is_list())
}

/// The JSON of a message; `Value::Null` stands for "unset" (a zero time, an empty RawExtension).
fn message_json(msg: &DynamicMessage) -> Result<Value, ProtobufError> {
    let desc = msg.descriptor();
    let field = |name: &str| msg.get_field_by_name(name);
    match desc.full_name() {
        QUANTITY | QUANTITY_VALUE => {
            let s = field("string").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            return Ok(Value::String(if s.is_empty() { "0".into() } else { s }));
        }
        INT_OR_STRING => {
            let is_string = field("type").and_then(|v| v.as_i64()) == Some(1);
            return Ok(if is_string {
                Value::String(field("strVal").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
            } else {
                Value::from(field("intVal").and_then(|v| v.as_i32()).unwrap_or_default())
            });
        }
        TIME | MICRO_TIME => {
            if !desc.fields().any(|f| msg.has_field(&f)) {
                return Ok(Value::Null);
            }
            let seconds = field("seconds").and_then(|v| v.as_i64()).unwrap_or_default();
            let nanos = field("nanos").and_then(|v| v.as_i32()).unwrap_or_default();
            let t = chrono::DateTime::from_timestamp(seconds, nanos.clamp(0, 999_999_999) as u32).ok_or_else(|| {
                ProtobufError::Malformed {
                    kind: desc.full_name().into(),
                    reason: format!("time {seconds}s out of range"),
                }
            })?;
            let format = if desc.full_name() == TIME { "%Y-%m-%dT%H:%M:%SZ" } else { "%Y-%m-%dT%H:%M:%S%.6fZ" };
            return Ok(Value::String(t.format(format).to_string()));
        }
        DURATION => {
            return Ok(Value::String(go_duration(field("duration").and_then(|v| v.as_i64()).unwrap_or_default())))
        }
        RAW_EXTENSION | FIELDS_V1 => {
            let name = if desc.full_name() == RAW_EXTENSION { "raw" } else { "Raw" };
            let raw = field(name);
            let raw = raw.as_ref().and_then(|v| v.as_bytes()).map(|b| b.as_ref()).unwrap_or_default();
            return embedded(raw).map_err(|reason| ProtobufError::Malformed { kind: desc.full_name().into(), reason });
        }
        _ => {}
    }
    if is_items_wrapper(&desc) {
        let items = desc.fields().next().expect("one field");
        return field_json(&items, &msg.get_field(&items));
    }
    let mut object = Map::new();
    for f in desc.fields() {
        if !msg.has_field(&f) {
            continue;
        }
        let value = field_json(&f, &msg.get_field(&f))?;
        if omitted(&value) || (is_zero(&value) && zero_omitted(&desc, &f)) {
            continue;
        }
        match value {
            Value::Object(inner) if is_inline(&f) => object.extend(inner),
            value => {
                object.insert(json_name(&f), value);
            }
        }
    }
    Ok(Value::Object(object))
}

/// What the JSON serializer leaves out: unset values and empty strings, lists and maps.
fn omitted(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn is_zero(v: &Value) -> bool {
    v == &Value::Bool(false) || v.as_f64() == Some(0.0)
}

/// A RawExtension's bytes: embedded JSON, or a nested Kubernetes protobuf object.
fn embedded(raw: &[u8]) -> Result<Value, String> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(MAGIC) {
        return decode(raw).map_err(|e| e.to_string());
    }
    serde_json::from_slice(raw).map_err(|e| format!("raw is neither JSON nor Kubernetes protobuf: {e}"))
}

fn field_json(field: &FieldDescriptor, value: &prost_reflect::Value) -> Result<Value, ProtobufError> {
    use prost_reflect::Value as P;
    Ok(match value {
        P::List(items) => Value::Array(items.iter().map(|v| field_json_single(field, v)).collect::<Result<_, _>>()?),
        P::Map(entries) => {
            let value_field = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field(),
                _ => return Err(field_error(field, "map without entry message")),
            };
            let mut object = Map::new();
            for (k, v) in entries {
                let key = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(i) => i.to_string(),
                    MapKey::U64(i) => i.to_string(),
                };
                object.insert(key, field_json_single(&value_field, v)?);
            }
            Value::Object(object)
        }
        single => field_json_single(field, single)?,
    })
}

fn field_json_single(field: &FieldDescriptor, value: &prost_reflect::Value) -> Result<Value, ProtobufError> {
    use prost_reflect::Value as P;
    Ok(match value {
        P::Bool(b) => Value::Bool(*b),
        P::I32(i) => Value::from(*i),
        P::I64(i) => Value::from(*i),
        P::U32(i) => Value::from(*i),
        P::U64(i) => Value::from(*i),
        P::F32(f) => float(field, f64::from(*f))?,
        P::F64(f) => float(field, *f)?,
        P::String(s) => Value::String(s.clone()),
        P::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        P::EnumNumber(n) => Value::from(*n),
        P::Message(m) => message_json(m)?,
        P::List(_) | P::Map(_) => return Err(field_error(field, "nested list or map")),
    })
}

fn float(field: &FieldDescriptor, f: f64) -> Result<Value, ProtobufError> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| field_error(field, format!("{f} is not a JSON number")))
}

/// A duration in nanoseconds as Go's `time.Duration.String()` writes it: `1h0m0s`, `1.5s`, `100ms`.
pub fn go_duration(nanos: i64) -> String {
    fn with_fraction(value: u64, unit: u64) -> String {
        let (whole, rest) = (value / unit, value % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let fraction = format!("{rest:0digits$}");
        format!("{whole}.{}", fraction.trim_end_matches('0'))
    }
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", with_fraction(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", with_fraction(u, 1_000_000))
    } else {
        let secs = u / 1_000_000_000;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let seconds = with_fraction(s * 1_000_000_000 + u % 1_000_000_000, 1_000_000_000);
        match (h, m) {
            (0, 0) => format!("{seconds}s"),
            (0, m) => format!("{m}m{seconds}s"),
            (h, m) => format!("{h}h{m}m{seconds}s"),
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::authorization::v1 as authz;
    use k8s_pb::api::batch::v1 as batch;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::api::networking::v1 as net;
    use k8s_pb::api::policy::v1 as policy;
    use k8s_pb::api::rbac::v1 as rbac;
    use k8s_pb::api::scheduling::v1 as scheduling;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message;
    use serde_json::json;

    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn decoded(api_version: &str, kind: &str, object: &impl Message) -> Value {
        decode(&envelope(api_version, kind, object.encode_to_vec())).expect("decodes")
    }

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    /// ObjectMeta as Go's marshaller writes it: every non-pointer field present, even empty.
    fn meta(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: s(name),
            generate_name: s(""),
            namespace: s(namespace),
            self_link: s(""),
            uid: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        })
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs.iter().map(|(k, v)| (k.to_string(), Quantity { string: s(v) })).collect()
    }

    fn int(i: i32) -> Option<IntOrString> {
        Some(IntOrString { r#type: Some(0), int_val: Some(i), str_val: s("") })
    }

    fn string(v: &str) -> Option<IntOrString> {
        Some(IntOrString { r#type: Some(1), int_val: Some(0), str_val: s(v) })
    }

    #[test]
    fn configmap_with_data_and_binary_data() {
        let cm = core::ConfigMap {
            metadata: meta("cfg", "default"),
            data: labels(&[("a", "1"), ("empty", "")]),
            binary_data: [("bin".to_string(), vec![0u8, 1, 2, 255])].into(),
            immutable: None,
        };
        assert_eq!(
            decoded("v1", "ConfigMap", &cm),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cfg", "namespace": "default"},
                "data": {"a": "1", "empty": ""}, "binaryData": {"bin": "AAEC/w=="}})
        );
    }

    #[test]
    fn secret_bytes_are_base64() {
        let secret = core::Secret {
            metadata: meta("s", ""),
            data: [("password".to_string(), b"hunter2".to_vec())].into(),
            r#type: s("Opaque"),
            ..Default::default()
        };
        let v = decoded("v1", "Secret", &secret);
        assert_eq!(v["data"], json!({"password": "aHVudGVyMg=="}));
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["metadata"], json!({"name": "s"}));
        assert!(v.get("stringData").is_none() && v.get("immutable").is_none());
    }

    #[test]
    fn deployment_with_template_resources_and_intstr() {
        let container = core::Container {
            name: s("web"),
            image: s("nginx:1.27"),
            ports: vec![core::ContainerPort { container_port: Some(80), protocol: s("TCP"), ..Default::default() }],
            resources: Some(core::ResourceRequirements {
                limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
                requests: quantities(&[("cpu", "100m")]),
                claims: vec![],
            }),
            termination_message_path: s(""),
            image_pull_policy: s(""),
            stdin: Some(false),
            ..Default::default()
        };
        let d = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                labels: labels(&[("app", "web")]),
                creation_timestamp: Some(meta::Time { seconds: Some(1_700_000_000), nanos: Some(0) }),
                ..meta("web", "").unwrap()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: labels(&[("app", "web")]),
                    match_expressions: vec![],
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta { labels: labels(&[("app", "web")]), ..Default::default() }),
                    spec: Some(core::PodSpec { containers: vec![container], ..Default::default() }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: int(0),
                        max_surge: string("25%"),
                    }),
                }),
                min_ready_seconds: Some(0),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        assert_eq!(
            decoded("apps/v1", "Deployment", &d),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "creationTimestamp": "2023-11-14T22:13:20Z",
                    "labels": {"app": "web"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                        "name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                        }]}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
                    },
                "status": {}})
        );
    }

    #[test]
    fn service_ports() {
        let svc = core::Service {
            metadata: meta("web", ""),
            spec: Some(core::ServiceSpec {
                ports: vec![
                    core::ServicePort {
                        name: s("80-8080"),
                        protocol: s("TCP"),
                        port: Some(80),
                        target_port: int(8080),
                        ..Default::default()
                    },
                    core::ServicePort {
                        name: s("dns"),
                        port: Some(53),
                        target_port: string("dns"),
                        ..Default::default()
                    },
                ],
                selector: labels(&[("app", "web")]),
                r#type: s("ClusterIP"),
                ..Default::default()
            }),
            status: Some(core::ServiceStatus::default()),
        };
        let v = decoded("v1", "Service", &svc);
        assert_eq!(
            v["spec"],
            json!({"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "dns", "port": 53, "targetPort": "dns"}],
                "selector": {"app": "web"}, "type": "ClusterIP"})
        );
    }

    #[test]
    fn job_and_cronjob() {
        let template = core::PodTemplateSpec {
            metadata: Some(meta::ObjectMeta::default()),
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: s("pi"),
                    image: s("perl"),
                    command: vec!["perl".into(), "-e".into(), "print 1".into()],
                    ..Default::default()
                }],
                restart_policy: s("Never"),
                ..Default::default()
            }),
        };
        let job_spec = batch::JobSpec { template: Some(template), backoff_limit: Some(4), ..Default::default() };
        let job = batch::Job { metadata: meta("pi", ""), spec: Some(job_spec.clone()), status: None };
        let v = decoded("batch/v1", "Job", &job);
        assert_eq!(v["spec"]["backoffLimit"], 4);
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["command"], json!(["perl", "-e", "print 1"]));
        assert_eq!(v["spec"]["template"]["metadata"], json!({}));
        assert!(v.get("status").is_none());

        let cron = batch::CronJob {
            metadata: meta("tick", ""),
            spec: Some(batch::CronJobSpec {
                schedule: s("*/5 * * * *"),
                job_template: Some(batch::JobTemplateSpec { metadata: meta("tick", ""), spec: Some(job_spec) }),
                suspend: Some(false),
                ..Default::default()
            }),
            status: Some(batch::CronJobStatus::default()),
        };
        let v = decoded("batch/v1", "CronJob", &cron);
        assert_eq!(v["kind"], "CronJob");
        assert_eq!(v["spec"]["schedule"], "*/5 * * * *");
        assert_eq!(v["spec"]["suspend"], false);
        assert_eq!(v["spec"]["jobTemplate"]["metadata"]["name"], "tick");
        assert_eq!(v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"], "perl");
    }

    #[test]
    fn rbac_kinds() {
        let rule = rbac::PolicyRule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            ..Default::default()
        };
        let role = rbac::Role { metadata: meta("reader", "ns"), rules: vec![rule.clone()] };
        assert_eq!(
            decoded("rbac.authorization.k8s.io/v1", "Role", &role)["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
        );
        let binding = rbac::RoleBinding {
            metadata: meta("rb", "ns"),
            subjects: vec![rbac::Subject {
                kind: s("User"),
                api_group: s("rbac.authorization.k8s.io"),
                name: s("alice"),
                namespace: s(""),
            }],
            role_ref: Some(rbac::RoleRef {
                api_group: s("rbac.authorization.k8s.io"),
                kind: s("Role"),
                name: s("reader"),
            }),
        };
        let v = decoded("rbac.authorization.k8s.io/v1", "RoleBinding", &binding);
        assert_eq!(v["subjects"], json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]));
        assert_eq!(v["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}));
        let cluster_role = rbac::ClusterRole {
            metadata: meta("agg", ""),
            rules: vec![],
            aggregation_rule: Some(rbac::AggregationRule {
                cluster_role_selectors: vec![meta::LabelSelector {
                    match_labels: labels(&[("x", "y")]),
                    match_expressions: vec![],
                }],
            }),
        };
        let v = decoded("rbac.authorization.k8s.io/v1", "ClusterRole", &cluster_role);
        assert_eq!(v["aggregationRule"], json!({"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}));
        assert!(v.get("rules").is_none());
    }

    #[test]
    fn quota_pdb_priorityclass_namespace_serviceaccount() {
        let quota = core::ResourceQuota {
            metadata: meta("q", ""),
            spec: Some(core::ResourceQuotaSpec {
                hard: quantities(&[("pods", "10"), ("requests.cpu", "2"), ("requests.memory", "1Gi")]),
                scopes: vec!["BestEffort".into()],
                scope_selector: None,
            }),
            status: Some(core::ResourceQuotaStatus::default()),
        };
        let v = decoded("v1", "ResourceQuota", &quota);
        assert_eq!(
            v["spec"],
            json!({"hard": {"pods": "10", "requests.cpu": "2", "requests.memory": "1Gi"}, "scopes": ["BestEffort"]})
        );
        assert_eq!(v["status"], json!({}));

        let pdb = policy::PodDisruptionBudget {
            metadata: meta("pdb", ""),
            spec: Some(policy::PodDisruptionBudgetSpec {
                min_available: int(2),
                selector: Some(meta::LabelSelector {
                    match_labels: BTreeMap::new(),
                    match_expressions: vec![meta::LabelSelectorRequirement {
                        key: s("app"),
                        operator: s("In"),
                        values: vec!["web".into()],
                    }],
                }),
                ..Default::default()
            }),
            status: None,
        };
        let v = decoded("policy/v1", "PodDisruptionBudget", &pdb);
        assert_eq!(
            v["spec"],
            json!({"minAvailable": 2, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}})
        );

        let pc = scheduling::PriorityClass {
            metadata: meta("high", ""),
            value: Some(0),
            global_default: Some(false),
            description: s("d"),
            preemption_policy: s("Never"),
        };
        assert_eq!(
            decoded("scheduling.k8s.io/v1", "PriorityClass", &pc),
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "high"},
                "value": 0, "description": "d", "preemptionPolicy": "Never"})
        );

        let ns = core::Namespace { metadata: meta("team", ""), spec: Some(Default::default()), status: None };
        assert_eq!(
            decoded("v1", "Namespace", &ns),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "spec": {}})
        );

        let sa = core::ServiceAccount {
            metadata: meta("bot", "ns"),
            secrets: vec![],
            image_pull_secrets: vec![core::LocalObjectReference { name: s("regcred") }],
            automount_service_account_token: Some(true),
        };
        let v = decoded("v1", "ServiceAccount", &sa);
        assert_eq!(v["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(v["automountServiceAccountToken"], true);
        assert!(v.get("secrets").is_none());
    }

    #[test]
    fn ingress_rule_value_is_inline() {
        let ingress = net::Ingress {
            metadata: meta("ing", ""),
            spec: Some(net::IngressSpec {
                ingress_class_name: s("nginx"),
                rules: vec![net::IngressRule {
                    host: s("foo.com"),
                    ingress_rule_value: Some(net::IngressRuleValue {
                        http: Some(net::HttpIngressRuleValue {
                            paths: vec![net::HttpIngressPath {
                                path: s("/bar"),
                                path_type: s("Exact"),
                                backend: Some(net::IngressBackend {
                                    service: Some(net::IngressServiceBackend {
                                        name: s("svc1"),
                                        port: Some(net::ServiceBackendPort { name: s(""), number: Some(8080) }),
                                    }),
                                    resource: None,
                                }),
                            }],
                        }),
                    }),
                }],
                tls: vec![net::IngressTls { hosts: vec!["foo.com".into()], secret_name: s("tls") }],
                default_backend: None,
            }),
            status: Some(net::IngressStatus::default()),
        };
        let v = decoded("networking.k8s.io/v1", "Ingress", &ingress);
        assert_eq!(
            v["spec"],
            json!({"ingressClassName": "nginx",
                "rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Exact",
                    "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}],
                "tls": [{"hosts": ["foo.com"], "secretName": "tls"}]})
        );
    }

    #[test]
    fn token_request_and_access_reviews() {
        let tr = authn::TokenRequest {
            metadata: meta("bot", "ns"),
            spec: Some(authn::TokenRequestSpec {
                audiences: vec!["https://kubernetes.default.svc".into()],
                expiration_seconds: Some(3600),
                bound_object_ref: None,
            }),
            status: Some(authn::TokenRequestStatus { token: s(""), expiration_timestamp: Some(meta::Time::default()) }),
        };
        let v = decoded("authentication.k8s.io/v1", "TokenRequest", &tr);
        assert_eq!(v["spec"], json!({"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}));
        assert_eq!(v["status"], json!({}));

        let ssar = authz::SelfSubjectAccessReview {
            metadata: Some(meta::ObjectMeta { creation_timestamp: Some(meta::Time::default()), ..Default::default() }),
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    namespace: s("default"),
                    verb: s("create"),
                    group: s(""),
                    version: s(""),
                    resource: s("deployments"),
                    subresource: s(""),
                    name: s(""),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: Some(authz::SubjectAccessReviewStatus { allowed: Some(false), ..Default::default() }),
        };
        assert_eq!(
            decoded("authorization.k8s.io/v1", "SelfSubjectAccessReview", &ssar),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "deployments"}},
                "status": {"allowed": false}})
        );

        // ExtraValue is a named []string in Go: a JSON array.
        let sar = authz::SubjectAccessReview {
            metadata: meta("", ""),
            spec: Some(authz::SubjectAccessReviewSpec {
                user: s("alice"),
                extra: [("scopes".to_string(), authz::ExtraValue { items: vec!["a".into(), "b".into()] })].into(),
                ..Default::default()
            }),
            status: None,
        };
        let v = decoded("authorization.k8s.io/v1", "SubjectAccessReview", &sar);
        assert_eq!(v["spec"], json!({"user": "alice", "extra": {"scopes": ["a", "b"]}}));
    }

    #[test]
    fn micro_time_raw_extension_and_duration() {
        let event = k8s_pb::api::events::v1::Event {
            metadata: meta("e", "default"),
            event_time: Some(meta::MicroTime { seconds: Some(1_700_000_000), nanos: Some(123_456_789) }),
            reason: s("Started"),
            ..Default::default()
        };
        let v = decoded("events.k8s.io/v1", "Event", &event);
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123456Z");

        let revision = apps::ControllerRevision {
            metadata: meta("rev", ""),
            data: Some(RawExtension { raw: Some(br#"{"spec":{"x":[1,2]}}"#.to_vec()) }),
            revision: Some(3),
        };
        let v = decoded("apps/v1", "ControllerRevision", &revision);
        assert_eq!(v["data"], json!({"spec": {"x": [1, 2]}}));
        assert_eq!(v["revision"], 3);

        // A RawExtension holding a nested protobuf object.
        let nested = envelope(
            "v1",
            "Namespace",
            core::Namespace { metadata: meta("n", ""), ..Default::default() }.encode_to_vec(),
        );
        let revision = apps::ControllerRevision { data: Some(RawExtension { raw: Some(nested) }), ..revision };
        let v = decoded("apps/v1", "ControllerRevision", &revision);
        assert_eq!(v["data"], json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}));

        for (nanos, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(go_duration(nanos), want);
        }
    }

    #[test]
    fn inline_embeddings_and_capitalised_proto_names() {
        use k8s_pb::api::admissionregistration::v1 as admission;
        let config = admission::ValidatingWebhookConfiguration {
            metadata: meta("hook", ""),
            webhooks: vec![admission::ValidatingWebhook {
                name: s("v.example.com"),
                rules: vec![admission::RuleWithOperations {
                    operations: vec!["CREATE".into()],
                    rule: Some(admission::Rule {
                        api_groups: vec!["apps".into()],
                        api_versions: vec!["v1".into()],
                        resources: vec!["deployments".into()],
                        scope: s("*"),
                    }),
                }],
                ..Default::default()
            }],
        };
        let v = decoded("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", &config);
        assert_eq!(
            v["webhooks"],
            json!([{"name": "v.example.com", "rules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                "apiVersions": ["v1"], "resources": ["deployments"], "scope": "*"}]}])
        );

        let pod = core::Pod {
            metadata: meta("p", ""),
            spec: Some(core::PodSpec {
                volumes: vec![core::Volume {
                    name: s("cfg"),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference { name: s("cm") }),
                            default_mode: Some(0o644),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                }],
                containers: vec![core::Container {
                    name: s("c"),
                    liveness_probe: Some(core::Probe {
                        handler: Some(core::ProbeHandler {
                            http_get: Some(core::HttpGetAction {
                                path: s("/healthz"),
                                port: int(8080),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        period_seconds: Some(10),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        };
        let v = decoded("v1", "Pod", &pod);
        assert_eq!(v["spec"]["volumes"], json!([{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}}]));
        assert_eq!(
            v["spec"]["containers"][0]["livenessProbe"],
            json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10})
        );
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let err = decode(b"{\"kind\":\"ConfigMap\"}").unwrap_err();
        assert!(matches!(err, ProtobufError::BadMagic), "{err}");
        assert!(err.to_string().contains("magic"));

        let cm =
            core::ConfigMap { metadata: meta("cfg", "default"), data: labels(&[("a", "1")]), ..Default::default() };
        let body = envelope("v1", "ConfigMap", cm.encode_to_vec());
        for cut in [body.len() - 3, 12, 6] {
            let err = decode(&body[..cut]).unwrap_err();
            assert!(matches!(err, ProtobufError::Envelope(_)), "cut at {cut}: {err}");
        }

        // An object whose own bytes are truncated: the envelope is intact.
        let mut raw = cm.encode_to_vec();
        raw.truncate(raw.len() - 2);
        let err = decode(&envelope("v1", "ConfigMap", raw)).unwrap_err();
        assert!(matches!(err, ProtobufError::Malformed { .. }), "{err}");
        assert!(err.to_string().starts_with("malformed protobuf v1 ConfigMap"), "{err}");

        let err = decode(&envelope("v1", "Frobnicator", vec![])).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown kind "Frobnicator" in version "v1""#);
        let err = decode(&envelope("nosuch.example.com/v1", "Widget", vec![])).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown kind "Widget" in version "nosuch.example.com/v1""#);
        let err = decode(&envelope("v1", "", vec![])).unwrap_err();
        assert!(matches!(err, ProtobufError::MissingTypeMeta("kind")), "{err}");

        let bad_json = apps::ControllerRevision {
            data: Some(RawExtension { raw: Some(b"not json".to_vec()) }),
            ..Default::default()
        };
        let err = decode(&envelope("apps/v1", "ControllerRevision", bad_json.encode_to_vec())).unwrap_err();
        assert!(err.to_string().contains("RawExtension"), "{err}");
    }

    /// Every kind in the upstream OpenAPI schema of k8s.io/api has a protobuf message, and every proto
    /// field's name is a JSON property of its definition (or is one of the inline embeddings).
    #[test]
    fn descriptor_agrees_with_openapi_schema() {
        let schema = crate::api::schema::get();
        let pool = pool().expect("pool");
        let mut problems = Vec::new();
        let mut kinds = 0;
        for (name, def) in schema.definitions() {
            if !name.starts_with("io.k8s.api.") {
                continue;
            }
            for gvk in def.get("x-kubernetes-group-version-kind").and_then(Value::as_array).into_iter().flatten() {
                let (g, v, k) =
                    (gvk["group"].as_str().unwrap(), gvk["version"].as_str().unwrap(), gvk["kind"].as_str().unwrap());
                let api_version = if g.is_empty() { v.to_string() } else { format!("{g}/{v}") };
                match message_for(&api_version, k) {
                    Ok(m) if format!("io.{}", m.full_name().replacen("k8s.io.", "k8s.", 1)) == *name => kinds += 1,
                    Ok(m) => problems.push(format!("{api_version} {k} -> {} (schema: {name})", m.full_name())),
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        assert!(kinds > 150, "only {kinds} kinds");
        for message in pool.all_messages() {
            let def_name = format!("io.{}", message.full_name().replacen("k8s.io.", "k8s.", 1));
            let Some(props) = schema.definition(&def_name).and_then(|d| d.get("properties")).and_then(Value::as_object)
            else {
                continue;
            };
            for field in message.fields() {
                if is_inline(&field) {
                    let Kind::Message(inner) = field.kind() else {
                        panic!("inline {} is not a message", field.full_name())
                    };
                    if props.contains_key(&json_name(&field)) {
                        problems.push(format!("{} is a property of {def_name}, not inline", field.full_name()));
                    }
                    // Inline fields may nest (NamedRuleWithOperations > RuleWithOperations > Rule).
                    let mut fields: Vec<_> = inner.fields().collect();
                    while let Some(f) = fields.pop() {
                        if is_inline(&f) {
                            let Kind::Message(m) = f.kind() else { unreachable!() };
                            fields.extend(m.fields());
                        } else if !props.contains_key(&json_name(&f)) {
                            problems.push(format!("inline {} has {} not in {def_name}", field.full_name(), f.name()));
                        }
                    }
                } else if !props.contains_key(&json_name(&field)) {
                    problems.push(format!("{} is not a property of {def_name}", field.full_name()));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
