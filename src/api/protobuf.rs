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

/// Fields that are Go structs embedded with `json:",inline"`: their fields appear in the parent's JSON.
/// Matched by the suffix `<package-dir>.<version>.<Message>.<field>` of the field's full name.
const INLINE: &[(&str, &str)] = &[
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    ("k8s.io.api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"),
    ("k8s.io.api.core.v1.Probe", "handler"),
    ("k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("k8s.io.api.networking.v1.IngressRule", "ingressRuleValue"),
    ("k8s.io.api.networking.v1beta1.IngressRule", "ingressRuleValue"),
    ("k8s.io.api.extensions.v1beta1.IngressRule", "ingressRuleValue"),
    ("k8s.io.api.resource.v1alpha3.DeviceClaimConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1alpha3.DeviceClassConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1alpha3.DeviceAllocationConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1beta1.DeviceClaimConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1beta1.DeviceClassConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1beta1.DeviceAllocationConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1beta2.DeviceClaimConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1beta2.DeviceClassConfiguration", "deviceConfiguration"),
    ("k8s.io.api.resource.v1beta2.DeviceAllocationConfiguration", "deviceConfiguration"),
];

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

fn is_inline(message: &MessageDescriptor, field: &FieldDescriptor) -> bool {
    INLINE.iter().any(|(m, f)| *m == message.full_name() && *f == field.name())
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
                ProtobufError::Malformed { kind: desc.full_name().into(), reason: format!("time {seconds}s out of range") }
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
        if omitted(&value) {
            continue;
        }
        match value {
            Value::Object(inner) if is_inline(&desc, &f) => object.extend(inner),
            value => {
                object.insert(f.name().to_string(), value);
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
    serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| field_error(field, format!("{f} is not a JSON number")))
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
