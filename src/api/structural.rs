//! Structural OpenAPI v3 schemas of CustomResourceDefinitions, as upstream's apiextensions-apiserver
//! applies them: schema checks at CRD admission (`validate_schema`), pruning of unknown fields
//! (`prune`), defaulting (`apply_defaults`) and object validation (`validate`, kube-openapi's
//! validator plus `x-kubernetes-list-type` and embedded-resource checks).
//!
//! Schemas are the raw JSON of `spec.versions[i].schema.openAPIV3Schema`. Messages and field paths
//! follow upstream, including its quirks (e.g. errors of `anyOf`/`oneOf`/`allOf`/`not` carry the
//! field `<nil>`, as `field.Invalid(nil, ...)` renders upstream).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde_json::{Map, Value};

use crate::api::status::Cause;

// ---------------------------------------------------------------------------------------------
// Schema accessors
// ---------------------------------------------------------------------------------------------

fn s_str<'a>(s: &'a Value, k: &str) -> &'a str {
    s.get(k).and_then(Value::as_str).unwrap_or("")
}

fn s_flag(s: &Value, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn s_props(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

fn s_prop<'a>(s: &'a Value, k: &str) -> Option<&'a Value> {
    s_props(s).and_then(|p| p.get(k))
}

/// The schema under `items` (only the single-schema form is structural).
fn s_items(s: &Value) -> Option<&Value> {
    s.get("items").filter(|v| v.is_object())
}

/// `additionalProperties` as upstream's structural `AdditionalProperties`: `None` when absent,
/// `Some(None)` for a boolean, `Some(Some(schema))` for a schema.
fn s_additional(s: &Value) -> Option<Option<&Value>> {
    match s.get("additionalProperties") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(Some(v)),
        Some(_) => Some(None),
    }
}

/// A non-null `default`.
fn s_default(s: &Value) -> Option<&Value> {
    s.get("default").filter(|v| !v.is_null())
}

fn s_list<'a>(s: &'a Value, k: &str) -> Vec<&'a Value> {
    s.get(k).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut k: Vec<&String> = m.keys().collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------------------------
// Field paths and causes (apimachinery's field.Path / field.Error rendering)
// ---------------------------------------------------------------------------------------------

fn child(p: &str, c: &str) -> String {
    if p.is_empty() {
        c.to_string()
    } else {
        format!("{p}.{c}")
    }
}

fn key(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}

fn index(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// `%v` of a JSON number as upstream holds it (int64 or float64).
fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(0.0))
    }
}

/// JSON with sorted keys, as Go's `json.Marshal` of unstructured content.
fn go_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = sorted_keys(m)
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), go_json(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// How `field.Error.ErrorBody` renders a bad value.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        other => go_json(other),
    }
}

fn cause(reason: &str, field: impl Into<String>, message: String) -> Cause {
    Cause { reason: reason.into(), message, field: field.into() }
}

fn with_detail(body: String, detail: &str) -> String {
    if detail.is_empty() {
        body
    } else {
        format!("{body}: {detail}")
    }
}

fn c_required(field: impl Into<String>, detail: &str) -> Cause {
    cause("FieldValueRequired", field, with_detail("Required value".into(), detail))
}

fn c_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
    cause("FieldValueInvalid", field, with_detail(format!("Invalid value: {}", go_value(value)), detail))
}

fn c_type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
    cause("FieldValueTypeInvalid", field, with_detail(format!("Invalid value: {}", go_value(value)), detail))
}

fn c_forbidden(field: impl Into<String>, detail: &str) -> Cause {
    cause("FieldValueForbidden", field, with_detail("Forbidden".into(), detail))
}

fn c_not_supported(field: impl Into<String>, value: &Value, supported: &[String]) -> Cause {
    let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    let detail = if quoted.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
    cause("FieldValueNotSupported", field, with_detail(format!("Unsupported value: {}", go_value(value)), &detail))
}

fn c_duplicate(field: impl Into<String>, value: &Value) -> Cause {
    cause("FieldValueDuplicate", field, format!("Duplicate value: {}", go_value(value)))
}

fn c_too_long(field: impl Into<String>, max: i64) -> Cause {
    let detail = if max >= 0 {
        format!("may not be more than {max} {}", if max == 1 { "byte" } else { "bytes" })
    } else {
        "value is too long".into()
    };
    cause("FieldValueTooLong", field, format!("Too long: {detail}"))
}

fn c_too_many(field: impl Into<String>, actual: i64, max: i64) -> Cause {
    let detail = if max >= 0 {
        format!("must have at most {max} {}", if max == 1 { "item" } else { "items" })
    } else {
        "has too many items".into()
    };
    let body = if actual >= 0 { format!("Too many: {actual}") } else { "Too many".into() };
    cause("FieldValueTooMany", field, format!("{body}: {detail}"))
}

// ---------------------------------------------------------------------------------------------
// Regular expressions (Go RE2 and Rust's regex agree on the common syntax)
// ---------------------------------------------------------------------------------------------

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Result<Regex, String>>> = RefCell::new(HashMap::new());
}

fn compile(pattern: &str) -> Result<Regex, String> {
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 512 {
            c.clear();
        }
        c.entry(pattern.to_string()).or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string())).clone()
    })
}

// ---------------------------------------------------------------------------------------------
// validate_schema: what makes a CRD schema structural and valid
// ---------------------------------------------------------------------------------------------

const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Check that a CRD version's schema (`spec.versions[i].schema.openAPIV3Schema`) is structural
/// and valid, as upstream's CRD validation does; causes use field paths under `base` (e.g.
/// "spec.versions[0].schema.openAPIV3Schema").
pub fn validate_schema(schema: &Value, base: &str) -> Vec<Cause> {
    let mut all = Vec::new();
    if !schema.is_object() {
        all.push(c_invalid(base, schema, "must be an object"));
        return all;
    }
    if s_flag(schema, "nullable") {
        all.push(c_forbidden(child(base, "nullable"), "nullable cannot be true at the root"));
    }

    let mut structural = Vec::new();
    structural_invariants(schema, Level::Root, base, &mut structural);
    structural_completeness(schema, base, &mut structural);
    structural.sort_by_key(|c| format!("{}: {}", c.field, c.message));
    if structural.is_empty() {
        validate_defaults(schema, base, true, &mut all);
    } else {
        all.extend(structural);
    }

    openapi_schema(schema, base, true, &SchemaCtx::default(), &mut all);
    all
}

fn structural_invariants(s: &Value, lvl: Level, p: &str, out: &mut Vec<Cause>) {
    let ty = s_str(s, "type");
    let preserve = s_flag(s, "x-kubernetes-preserve-unknown-fields");
    let int_or_string = s_flag(s, "x-kubernetes-int-or-string");
    let embedded = s_flag(s, "x-kubernetes-embedded-resource");

    if ty == "array" && s_items(s).is_none() {
        out.push(c_required(child(p, "items"), "must be specified"));
    }
    if let Some(items) = s_items(s) {
        structural_invariants(items, Level::Item, &child(p, "items"), out);
    }
    if let Some(props) = s_props(s) {
        for k in sorted_keys(props) {
            structural_invariants(&props[k.as_str()], Level::Field, &key(&child(p, "properties"), k), out);
        }
    }
    if let Some(ap) = s_additional(s) {
        if lvl == Level::Root {
            out.push(c_forbidden(child(p, "additionalProperties"), "must not be used at the root"));
        }
        if let Some(ap) = ap {
            structural_invariants(ap, Level::Field, &child(p, "additionalProperties"), out);
        }
    }

    if int_or_string && preserve {
        out.push(c_invalid(
            child(p, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        out.push(c_invalid(
            child(p, "x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    // value validations (the int-or-string anyOf patterns are allowed to carry types)
    let skip_any_of = is_int_or_string_any_of(s.get("anyOf"));
    let skip_first_all_of_any_of = s
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|first| is_int_or_string_any_of(first.get("anyOf")));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, p, out);

    let check_metadata = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        if ty.is_empty() {
            out.push(c_required(child(p, "type"), "must be object if x-kubernetes-embedded-resource is true"));
        } else {
            out.push(c_invalid(
                child(p, "type"),
                &Value::String(ty.into()),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(c_required(child(p, "type"), detail));
    }
    if embedded && s_additional(s).is_some() {
        out.push(c_forbidden(
            child(p, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(c_invalid(child(p, "type"), &Value::String(ty.into()), "must be object at the root"));
    }
    for f in ["kind", "apiVersion"] {
        if let Some(sub) = s_prop(s, f) {
            if check_metadata && s_str(sub, "type") != "string" {
                out.push(c_invalid(
                    child(&key(&child(p, "properties"), f), "type"),
                    &Value::String(s_str(sub, "type").into()),
                    "must be string",
                ));
            }
        }
    }
    if let Some(meta) = s_prop(s, "metadata") {
        let mp = key(&child(p, "properties"), "metadata");
        if check_metadata && s_str(meta, "type") != "object" {
            out.push(c_invalid(child(&mp, "type"), &Value::String(s_str(meta, "type").into()), "must be object"));
        }
        if lvl == Level::Root {
            // only name and generateName may be restricted; defaults are checked elsewhere
            let allowed_props = s_props(meta)
                .map(|m| !m.is_empty() && m.keys().all(|k| k == "name" || k == "generateName"))
                .unwrap_or(true);
            let other = meta
                .as_object()
                .map(|m| m.keys().any(|k| !matches!(k.as_str(), "type" | "default" | "properties")))
                .unwrap_or(false);
            if !allowed_props || other {
                out.push(c_forbidden(
                    mp,
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
    }
    if embedded && !preserve && s_props(s).is_none_or(|m| m.is_empty()) {
        out.push(c_required(
            child(p, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

fn is_int_or_string_any_of(any_of: Option<&Value>) -> bool {
    let Some(a) = any_of.and_then(Value::as_array) else { return false };
    a.len() == 2
        && a[0].as_object().is_some_and(|m| m.len() == 1)
        && s_str(&a[0], "type") == "integer"
        && a[1].as_object().is_some_and(|m| m.len() == 1)
        && s_str(&a[1], "type") == "string"
}

fn value_validation(s: &Value, skip_any_of: bool, skip_first_all_of_any_of: bool, p: &str, out: &mut Vec<Cause>) {
    if !skip_any_of {
        for (i, sub) in s_list(s, "anyOf").into_iter().enumerate() {
            nested_value_validation(sub, false, &index(&child(p, "anyOf"), i), out);
        }
    }
    for (i, sub) in s_list(s, "allOf").into_iter().enumerate() {
        nested_value_validation(sub, skip_first_all_of_any_of && i == 0, &index(&child(p, "allOf"), i), out);
    }
    for (i, sub) in s_list(s, "oneOf").into_iter().enumerate() {
        nested_value_validation(sub, false, &index(&child(p, "oneOf"), i), out);
    }
    if let Some(not) = s.get("not").filter(|v| v.is_object()) {
        nested_value_validation(not, false, &child(p, "not"), out);
    }
    let pattern = s_str(s, "pattern");
    if !pattern.is_empty() {
        if let Err(e) = compile(pattern) {
            out.push(c_invalid(
                child(p, "pattern"),
                &Value::String(pattern.into()),
                &format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
}

fn nested_value_validation(v: &Value, skip_any_of: bool, p: &str, out: &mut Vec<Cause>) {
    value_validation(v, skip_any_of, false, p, out);
    if let Some(items) = s_items(v) {
        nested_value_validation(items, false, &child(p, "items"), out);
    }
    if let Some(props) = s_props(v) {
        for k in sorted_keys(props) {
            nested_value_validation(&props[k.as_str()], false, &key(&child(p, "properties"), k), out);
        }
    }
    if !s_str(v, "type").is_empty() {
        out.push(c_forbidden(child(p, "type"), "must be empty to be structural"));
    }
    if s_additional(v).is_some() {
        out.push(c_forbidden(child(p, "additionalProperties"), "must be undefined to be structural"));
    }
    if s_default(v).is_some() {
        out.push(c_forbidden(child(p, "default"), "must be undefined to be structural"));
    }
    if !s_str(v, "title").is_empty() {
        out.push(c_forbidden(child(p, "title"), "must be empty to be structural"));
    }
    if !s_str(v, "description").is_empty() {
        out.push(c_forbidden(child(p, "description"), "must be empty to be structural"));
    }
    if s_flag(v, "nullable") {
        out.push(c_forbidden(child(p, "nullable"), "must be false to be structural"));
    }
    for (ext, detail) in [
        ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
    ] {
        if s_flag(v, ext) {
            out.push(c_forbidden(child(p, ext), detail));
        }
    }
    if !s_list(v, "x-kubernetes-list-map-keys").is_empty() {
        out.push(c_forbidden(child(p, "x-kubernetes-list-map-keys"), "must be empty to be structural"));
    }
    for ext in ["x-kubernetes-list-type", "x-kubernetes-map-type"] {
        if v.get(ext).is_some_and(|x| !x.is_null()) {
            out.push(c_forbidden(child(p, ext), "must be undefined to be structural"));
        }
    }
    if !s_list(v, "x-kubernetes-validations").is_empty() {
        out.push(c_forbidden(child(p, "x-kubernetes-validations"), "must be empty to be structural"));
    }
    if s_prop(v, "metadata").is_some() {
        out.push(c_forbidden(key(&child(p, "properties"), "metadata"), "must not be specified in a nested context"));
    }
}

/// Every field and array item named in value validations must be specified structurally.
fn structural_completeness(s: &Value, p: &str, out: &mut Vec<Cause>) {
    value_validation_completeness(s, Some(s), p, p, out);
    if let Some(items) = s_items(s) {
        structural_completeness(items, &child(p, "items"), out);
    }
    if let Some(props) = s_props(s) {
        for k in sorted_keys(props) {
            structural_completeness(&props[k.as_str()], &key(&child(p, "properties"), k), out);
        }
    }
    if let Some(Some(ap)) = s_additional(s) {
        structural_completeness(ap, &child(p, "additionalProperties"), out);
    }
}

fn value_validation_completeness(v: &Value, s: Option<&Value>, sp: &str, vp: &str, out: &mut Vec<Cause>) {
    if let Some(not) = v.get("not").filter(|x| x.is_object()) {
        nested_completeness(not, s, sp, &child(vp, "not"), out);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in s_list(v, junctor).into_iter().enumerate() {
            nested_completeness(sub, s, sp, &index(&child(vp, junctor), i), out);
        }
    }
}

fn nested_completeness(v: &Value, s: Option<&Value>, sp: &str, vp: &str, out: &mut Vec<Cause>) {
    let Some(s) = s else {
        out.push(c_required(sp, &format!("because it is defined in {vp}")));
        return;
    };
    value_validation_completeness(v, Some(s), sp, vp, out);
    if let Some(items) = s_items(v) {
        nested_completeness(items, s_items(s), &child(sp, "items"), &child(vp, "items"), out);
    }
    if let Some(props) = s_props(v) {
        for k in sorted_keys(props) {
            let sk = key(&child(sp, "properties"), k);
            let vk = key(&child(vp, "properties"), k);
            match s_prop(s, k) {
                Some(sf) => nested_completeness(&props[k.as_str()], Some(sf), &sk, &vk, out),
                None => out.push(c_required(sk, &format!("because it is defined in {vk}"))),
            }
        }
    }
}

/// Defaults must validate against their schema and be pruned (upstream `ValidateDefaults`).
fn validate_defaults(s: &Value, p: &str, root: bool, out: &mut Vec<Cause>) {
    if let Some(def) = s_default(s) {
        let dp = child(p, "default");
        let mut pruned = def.clone();
        let embedded = s_flag(s, "x-kubernetes-embedded-resource");
        prune_value(&mut pruned, Some(s), embedded, &mut Vec::new(), &mut Vec::new());
        if &pruned != def {
            out.push(c_invalid(&dp, def, "must not have unknown fields"));
        }
        let mut errs = Vec::new();
        validate_node(s, def, "", &mut errs);
        out.extend(errs.into_iter().map(|e| e.into_cause(Some(&dp))));
    }
    if let Some(items) = s_items(s) {
        validate_defaults(items, &child(p, "items"), false, out);
    }
    if let Some(props) = s_props(s) {
        for k in sorted_keys(props) {
            if root && META_FIELDS.contains(&k.as_str()) {
                continue; // forbidden there; reported by the OpenAPI checks
            }
            validate_defaults(&props[k.as_str()], &key(&child(p, "properties"), k), false, out);
        }
    }
}

#[derive(Clone, Default)]
struct SchemaCtx {
    /// Why defaults are forbidden here, if they are.
    forbid_defaults: Option<String>,
    inside_resource_meta: bool,
}

fn openapi_schema(s: &Value, p: &str, is_root: bool, ctx: &SchemaCtx, out: &mut Vec<Cause>) {
    let Some(obj) = s.as_object() else {
        out.push(c_invalid(p, s, "must be an object"));
        return;
    };
    let ty = s_str(s, "type");

    // specStandardValidatorV3
    if !ty.is_empty() && !OPENAPI_V3_TYPES.contains(&ty) {
        let list: Vec<String> = OPENAPI_V3_TYPES.iter().map(|t| t.to_string()).collect();
        out.push(c_not_supported(child(p, "type"), &Value::String(ty.into()), &list));
    }
    if let (Some(_), Some(reason)) = (s_default(s), &ctx.forbid_defaults) {
        out.push(c_forbidden(child(p, "default"), &format!("must not be set {reason}")));
    }
    if !s_str(s, "id").is_empty() {
        out.push(c_forbidden(child(p, "id"), "id is not supported"));
    }
    if obj.get("additionalItems").is_some_and(|v| !v.is_null()) {
        out.push(c_forbidden(child(p, "additionalItems"), "additionalItems is not supported"));
    }
    for (k, msg) in
        [("patternProperties", "patternProperties is not supported"), ("definitions", "definitions is not supported")]
    {
        if obj.get(k).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
            out.push(c_forbidden(child(p, k), msg));
        }
    }
    if obj.get("dependencies").is_some_and(|v| !v.is_null()) {
        out.push(c_forbidden(child(p, "dependencies"), "dependencies is not supported"));
    }
    if obj.get("$ref").is_some_and(|v| !v.is_null()) {
        out.push(c_forbidden(child(p, "$ref"), "$ref is not supported"));
    }
    if ty == "null" {
        out.push(c_forbidden(child(p, "type"), "type cannot be set to null, use nullable as an alternative"));
    }
    if obj.get("items").is_some_and(Value::is_array) {
        out.push(c_forbidden(child(p, "items"), "items must be a schema object and not an array"));
    }
    if ctx.inside_resource_meta && s_flag(s, "x-kubernetes-embedded-resource") {
        out.push(c_forbidden(child(p, "x-kubernetes-embedded-resource"), "must not be used inside of resource meta"));
    }

    if s_flag(s, "uniqueItems") {
        out.push(c_forbidden(
            child(p, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }

    if let Some(ap) = obj.get("additionalProperties").filter(|v| !v.is_null()) {
        if s_props(s).is_some_and(|m| !m.is_empty()) && (ap.as_bool() == Some(false) || ap.is_object()) {
            out.push(c_forbidden(
                child(p, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if ap.is_object() {
            let mut sub = ctx.clone();
            if ctx.inside_resource_meta {
                sub.forbid_defaults = Some("inside additionalProperties applying to object metadata".into());
            }
            openapi_schema(ap, &child(p, "additionalProperties"), false, &sub, out);
        }
    }
    if let Some(props) = s_props(s) {
        let embedded = s_flag(s, "x-kubernetes-embedded-resource");
        for k in sorted_keys(props) {
            let mut sub = ctx.clone();
            if (is_root || embedded) && META_FIELDS.contains(&k.as_str()) {
                sub.inside_resource_meta = true;
                if is_root {
                    sub.forbid_defaults = Some(format!("in top-level {k}"));
                }
            }
            openapi_schema(&props[k.as_str()], &key(&child(p, "properties"), k), false, &sub, out);
        }
    }
    if let Some(not) = obj.get("not").filter(|v| !v.is_null()) {
        openapi_schema(not, &child(p, "not"), false, ctx, out);
    }
    for junctor in ["allOf", "oneOf", "anyOf"] {
        for (i, sub) in s_list(s, junctor).into_iter().enumerate() {
            openapi_schema(sub, &index(&child(p, junctor), i), false, ctx, out);
        }
    }
    if let Some(items) = s_items(s) {
        openapi_schema(items, &child(p, "items"), false, ctx, out);
    }

    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(c_invalid(
            child(p, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }

    let map_type = obj.get("x-kubernetes-map-type").and_then(Value::as_str);
    if let Some(mt) = map_type {
        if ty != "object" {
            if ty.is_empty() {
                out.push(c_required(child(p, "type"), "must be object if x-kubernetes-map-type is specified"));
            } else {
                out.push(c_invalid(
                    child(p, "type"),
                    &Value::String(ty.into()),
                    "must be object if x-kubernetes-map-type is specified",
                ));
            }
        }
        if mt != "atomic" && mt != "granular" {
            out.push(c_not_supported(
                child(p, "x-kubernetes-map-type"),
                &Value::String(mt.into()),
                &["atomic".into(), "granular".into()],
            ));
        }
    }

    let list_type = obj.get("x-kubernetes-list-type").and_then(Value::as_str);
    let items = s_items(s);
    if let Some(lt) = list_type {
        if ty != "array" {
            if ty.is_empty() {
                out.push(c_required(child(p, "type"), "must be array if x-kubernetes-list-type is specified"));
            } else {
                out.push(c_invalid(
                    child(p, "type"),
                    &Value::String(ty.into()),
                    "must be array if x-kubernetes-list-type is specified",
                ));
            }
        } else if lt == "set" {
            if let Some(is) = items {
                let item_list_type = is.get("x-kubernetes-list-type").and_then(Value::as_str);
                let item_map_type = is.get("x-kubernetes-map-type").and_then(Value::as_str);
                match s_str(is, "type") {
                    "array" if item_list_type.is_some_and(|t| t != "atomic") => {
                        out.push(c_invalid(
                            child(&child(p, "items"), "x-kubernetes-list-type"),
                            &Value::String(item_list_type.unwrap_or_default().into()),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                    "object" if item_map_type != Some("atomic") => {
                        out.push(c_invalid(
                            child(&child(p, "items"), "x-kubernetes-map-type"),
                            is.get("x-kubernetes-list-type").unwrap_or(&Value::Null),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ));
                    }
                    _ => {}
                }
            }
        }
        if lt != "atomic" && lt != "set" && lt != "map" {
            out.push(c_not_supported(
                child(p, "x-kubernetes-list-type"),
                &Value::String(lt.into()),
                &["atomic".into(), "set".into(), "map".into()],
            ));
        }
    }

    let map_keys: Vec<&str> = s_list(s, "x-kubernetes-list-map-keys").into_iter().filter_map(Value::as_str).collect();
    if !map_keys.is_empty() {
        match list_type {
            None => out.push(c_required(
                child(p, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(lt) if lt != "map" => out.push(c_invalid(
                child(p, "x-kubernetes-list-type"),
                &Value::String(lt.into()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            _ => {}
        }
    }
    let keys_value = obj.get("x-kubernetes-list-map-keys").cloned().unwrap_or(Value::Null);
    if list_type == Some("map") {
        if map_keys.is_empty() {
            out.push(c_required(
                child(p, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match obj.get("items") {
            None | Some(Value::Null) => {
                out.push(c_required(child(p, "items"), "must have a schema if x-kubernetes-list-type is map"))
            }
            Some(v @ Value::Array(_)) => out.push(c_invalid(
                child(p, "items"),
                v,
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            Some(is) => {
                let ity = s_str(is, "type");
                if ity != "object" {
                    out.push(c_invalid(
                        child(&child(p, "items"), "type"),
                        &Value::String(ity.into()),
                        "must be object if parent array's x-kubernetes-list-type is map",
                    ));
                } else {
                    let mut seen = HashSet::new();
                    for k in &map_keys {
                        match s_prop(is, k) {
                            Some(ks) => {
                                let kt = s_str(ks, "type");
                                if kt == "array" || kt == "object" {
                                    out.push(c_invalid(
                                        child(&key(&child(&child(p, "items"), "properties"), k), "type"),
                                        &Value::String(ity.into()),
                                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                    ));
                                }
                            }
                            None => out.push(c_invalid(
                                child(p, "x-kubernetes-list-map-keys"),
                                &keys_value,
                                "entries must all be names of item properties",
                            )),
                        }
                        if !seen.insert(*k) {
                            out.push(c_invalid(
                                child(p, "x-kubernetes-list-map-keys"),
                                &keys_value,
                                "must not contain duplicate entries",
                            ));
                        }
                    }
                }
            }
        }
    }

    // validateMapListKeysMapSet
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, items) {
        if s_flag(is, "nullable") {
            out.push(c_forbidden(
                child(&child(p, "items"), "nullable"),
                &format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let required: Vec<&str> = s_list(is, "required").into_iter().filter_map(Value::as_str).collect();
            for k in &map_keys {
                let Some(ks) = s_prop(is, k) else { continue };
                let kp = key(&child(&child(p, "items"), "properties"), k);
                if !required.contains(k) && s_default(ks).is_none() {
                    out.push(c_required(
                        child(&kp, "default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if s_flag(ks, "nullable") {
                    out.push(c_forbidden(
                        child(&kp, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------------------------

/// Drop fields the schema does not define (unless `x-kubernetes-preserve-unknown-fields: true`,
/// and never apiVersion/kind/metadata at the root; `metadata` is pruned to ObjectMeta's fields by
/// the caller), as upstream pruning does. Returns the pruned paths (for fieldValidation warnings).
///
/// Like upstream's decoder, this also drops `null` values of non-nullable fields without a default.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_value(obj, Some(schema), true, &mut Vec::new(), &mut pruned);
    pruned.sort();
    prune_nulls(obj, Some(schema));
    pruned
}

fn path_string(parts: &[String]) -> String {
    parts.concat()
}

fn push_key(parts: &mut Vec<String>, k: &str) {
    if !parts.is_empty() {
        parts.push(".".into());
    }
    parts.push(k.into());
}

fn record_pruned(parts: &mut Vec<String>, k: &str, out: &mut Vec<String>) {
    let l = parts.len();
    push_key(parts, k);
    out.push(path_string(parts));
    parts.truncate(l);
}

/// `embedded_override` treats `s` as an embedded resource (the resource root).
fn prune_value(
    x: &mut Value,
    s: Option<&Value>,
    embedded_override: bool,
    path: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    if let Some(sch) = s {
        if s_flag(sch, "x-kubernetes-preserve-unknown-fields") {
            skip_prune(x, sch, embedded_override, path, out);
            return;
        }
    }
    let orig = path.len();
    match x {
        Value::Object(m) => {
            let Some(sch) = s else {
                for k in sorted_keys(m).into_iter().cloned().collect::<Vec<_>>() {
                    record_pruned(path, &k, out);
                    m.remove(&k);
                }
                return;
            };
            let embedded = embedded_override || s_flag(sch, "x-kubernetes-embedded-resource");
            for k in sorted_keys(m).into_iter().cloned().collect::<Vec<_>>() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = s_prop(sch, &k) {
                    push_key(path, &k);
                    prune_value(m.get_mut(&k).unwrap(), Some(prop), false, path, out);
                    path.truncate(orig);
                } else if let Some(ap) = s_additional(sch) {
                    push_key(path, &k);
                    prune_value(m.get_mut(&k).unwrap(), ap, false, path, out);
                    path.truncate(orig);
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                        record_pruned(path, &k, out);
                    }
                    m.remove(&k);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(s_items);
            for (i, v) in a.iter_mut().enumerate() {
                path.extend(["[".to_string(), i.to_string(), "]".to_string()]);
                prune_value(v, items, false, path, out);
                path.truncate(orig);
            }
        }
        _ => {}
    }
}

fn skip_prune(x: &mut Value, s: &Value, embedded_override: bool, path: &mut Vec<String>, out: &mut Vec<String>) {
    let orig = path.len();
    match x {
        Value::Object(m) => {
            let embedded = embedded_override || s_flag(s, "x-kubernetes-embedded-resource");
            for k in sorted_keys(m).into_iter().cloned().collect::<Vec<_>>() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = s_prop(s, &k) {
                    push_key(path, &k);
                    prune_value(m.get_mut(&k).unwrap(), Some(prop), false, path, out);
                    path.truncate(orig);
                } else if let Some(ap) = s_additional(s) {
                    push_key(path, &k);
                    prune_value(m.get_mut(&k).unwrap(), ap, false, path, out);
                    path.truncate(orig);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s_items(s) {
                for (i, v) in a.iter_mut().enumerate() {
                    path.extend(["[".to_string(), i.to_string(), "]".to_string()]);
                    skip_prune(v, items, false, path, out);
                    path.truncate(orig);
                }
            }
        }
        _ => {}
    }
}

/// Upstream `PruneNonNullableNullsWithoutDefaults`.
fn prune_nulls(x: &mut Value, s: Option<&Value>) {
    match x {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let fs = s.and_then(|s| s_prop(s, &k).or_else(|| s_additional(s).flatten()));
                let v = m.get_mut(&k).unwrap();
                if v.is_null() && fs.is_some_and(|fs| !s_flag(fs, "nullable") && s_default(fs).is_none()) {
                    m.remove(&k);
                } else {
                    prune_nulls(v, fs);
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(s_items);
            for v in a {
                prune_nulls(v, items);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------

/// Apply `default` values (including nested ones in newly defaulted objects) as upstream does.
///
/// A `null` in a non-nullable field with a default is replaced by the default; a `null` in a
/// non-nullable field without a default is dropped first (as upstream's decoder does).
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    prune_nulls(obj, Some(schema));
    default_value(obj, Some(schema));
}

fn is_non_nullable_null(x: &Value, s: Option<&Value>) -> bool {
    x.is_null() && s.is_some_and(|s| !s_flag(s, "nullable"))
}

fn default_value(x: &mut Value, s: Option<&Value>) {
    let Some(s) = s else { return };
    match x {
        Value::Object(m) => {
            if let Some(props) = s_props(s) {
                for k in sorted_keys(props) {
                    let prop = &props[k.as_str()];
                    let Some(def) = s_default(prop) else { continue };
                    let missing = m.get(k.as_str()).is_none_or(|v| is_non_nullable_null(v, Some(prop)));
                    if missing {
                        m.insert(k.clone(), def.clone());
                    }
                }
            }
            let ap = s_additional(s);
            for (k, v) in m.iter_mut() {
                if let Some(prop) = s_prop(s, k) {
                    default_value(v, Some(prop));
                } else if let Some(ap) = ap {
                    if is_non_nullable_null(v, ap) {
                        *v = ap.and_then(s_default).cloned().unwrap_or(Value::Null);
                    }
                    default_value(v, ap);
                }
            }
        }
        Value::Array(a) => {
            let items = s_items(s);
            for v in a.iter_mut() {
                if is_non_nullable_null(v, items) {
                    *v = items.and_then(s_default).cloned().unwrap_or(Value::Null);
                }
                default_value(v, items);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (kube-openapi's SchemaValidator, mapped to field errors as apiextensions does)
// ---------------------------------------------------------------------------------------------

/// kube-openapi error codes that apiextensions maps specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    InvalidType,
    Required,
    TooLong,
    Enum,
    MaxItems,
    TooManyProperties,
    /// any other `*errors.Validation`
    Other,
    /// not an `*errors.Validation` (the anyOf/oneOf/allOf/not messages)
    Composite,
}

#[derive(Debug, Clone)]
struct VErr {
    code: Code,
    name: String,
    value: Option<Value>,
    valid: i64,
    values: Vec<Value>,
    message: String,
}

impl VErr {
    fn new(code: Code, name: &str, value: Option<Value>, message: String) -> Self {
        VErr { code, name: name.into(), value, valid: -1, values: Vec::new(), message }
    }

    fn composite(message: String) -> Self {
        VErr::new(Code::Composite, "", None, message)
    }

    /// `kubeOpenAPIResultToFieldErrors`, with `prefix` as its `fldPath` (None for nil).
    fn into_cause(self, prefix: Option<&str>) -> Cause {
        let nil = || prefix.map(str::to_string).unwrap_or_else(|| "<nil>".into());
        if self.code == Code::Composite {
            return c_invalid(nil(), &Value::String(String::new()), &self.message);
        }
        let field = if !self.name.is_empty() && self.name != "." {
            let n = self.name.strip_prefix('.').unwrap_or(&self.name);
            match prefix {
                Some(p) => format!("{p}.{n}"),
                None => n.to_string(),
            }
        } else {
            nil()
        };
        let value = self.value.clone().unwrap_or(Value::String(String::new()));
        match self.code {
            Code::Required => c_required(field, ""),
            Code::Enum => {
                let values: Vec<String> = self
                    .values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => go_json(other),
                    })
                    .collect();
                c_not_supported(field, self.value.as_ref().unwrap_or(&Value::Null), &values)
            }
            Code::TooLong => c_too_long(field, self.valid),
            Code::MaxItems | Code::TooManyProperties => {
                c_too_many(field, self.value.as_ref().and_then(Value::as_i64).unwrap_or(-1), self.valid)
            }
            Code::InvalidType => c_type_invalid(field, &value, &self.message),
            Code::Other | Code::Composite => c_invalid(field, &value, &self.message),
        }
    }
}

/// `<name> in body <rest>`
fn in_body(name: &str, rest: &str) -> String {
    format!("{name} in body {rest}")
}

fn invalid_type(name: &str, type_name: &str, value: &str) -> VErr {
    VErr::new(
        Code::InvalidType,
        name,
        Some(Value::String(value.into())),
        in_body(name, &format!("must be of type {type_name}: {value:?}")),
    )
}

/// Validate an object against the schema: type, required, enum, minimum/maximum/exclusive*,
/// minLength/maxLength/pattern, minItems/maxItems/uniqueItems, minProperties/maxProperties,
/// format, nullable, x-kubernetes-int-or-string, x-kubernetes-embedded-resource,
/// additionalProperties, items, allOf/anyOf/oneOf/not, and x-kubernetes-list-type set/map
/// uniqueness, with upstream's field paths and messages.
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    validate_node(schema, obj, "", &mut errs);
    let mut out: Vec<Cause> = errs.into_iter().map(|e| e.into_cause(None)).collect();
    list_sets_and_maps(schema, obj, "", &mut out);
    embedded_resources(schema, obj, "", true, &mut out);
    out
}

/// Formats apiextensions keeps (others are stripped and not validated), normalized without `-`.
const SUPPORTED_FORMATS: [&str; 24] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

fn effective_format(s: &Value) -> &str {
    let f = s_str(s, "format");
    if f.is_empty() || !SUPPORTED_FORMATS.contains(&f.replace('-', "").as_str()) {
        ""
    } else {
        f
    }
}

/// JSON type and Go "format" kube-openapi infers for a decoded value.
fn schema_info(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
        Value::Null => ("null", ""),
    }
}

fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0
}

fn validate_node(s: &Value, data: &Value, path: &str, out: &mut Vec<VErr>) {
    let int_or_string = s_flag(s, "x-kubernetes-int-or-string");
    let types: Vec<&str> = if int_or_string {
        vec!["integer", "string"]
    } else {
        let t = s_str(s, "type");
        if t.is_empty() {
            vec![]
        } else {
            vec![t]
        }
    };
    let format = effective_format(s);
    let nullable = s_flag(s, "nullable");

    if data.is_null() {
        if !types.is_empty() && !types.contains(&"null") && !nullable {
            out.push(invalid_type(path, &types.join(","), "null"));
        }
        validate_enum(s, data, path, out);
        return;
    }

    // type
    if !types.is_empty() || !format.is_empty() {
        type_check(&types, format, data, path, out);
    }
    // allOf / anyOf / oneOf / not
    schema_props(s, data, path, out);
    // string
    if let Value::String(text) = data {
        string_check(s, text, path, out);
        if !format.is_empty() && !check_format(format, text) {
            out.push(invalid_type(path, format, text));
        }
    }
    // number
    if let Value::Number(n) = data {
        number_check(s, n, path, out);
    }
    // array
    if let Value::Array(a) = data {
        slice_check(s, a, path, out);
    }
    validate_enum(s, data, path, out);
    // object
    if let Value::Object(m) = data {
        object_check(s, m, path, out);
    }
}

fn type_check(types: &[&str], format: &str, data: &Value, path: &str, out: &mut Vec<VErr>) {
    let (sch_type, go_format) = schema_info(data);
    let contains = |t: &str| types.contains(&t);
    let is_float_int = sch_type == "number" && data.as_f64().is_some_and(is_json_integer) && contains("integer");
    let is_int_float = sch_type == "integer" && contains("number");
    let is_string_or_slice = matches!(data, Value::String(_) | Value::Array(_));
    let type_matches = contains(sch_type) || is_float_int || is_int_float;
    // a format mismatch on a non-string value is reported as a format error
    let format_applies = !is_string_or_slice && !format.is_empty();
    if format_applies && !type_matches && go_format != format {
        out.push(invalid_type(path, format, go_format));
        return;
    }
    let numeric = contains("number") || contains("integer");
    if !numeric && !format.is_empty() && is_string_or_slice {
        return;
    }
    if !type_matches {
        out.push(invalid_type(path, &types.join(","), sch_type));
    }
}

fn schema_props(s: &Value, data: &Value, path: &str, out: &mut Vec<VErr>) {
    let run = |sub: &Value| {
        let mut e = Vec::new();
        validate_node(sub, data, path, &mut e);
        e
    };
    let any_of = s_list(s, "anyOf");
    if !any_of.is_empty() {
        let mut best: Option<Vec<VErr>> = None;
        let mut ok = false;
        for sub in any_of {
            let e = run(sub);
            if e.is_empty() {
                ok = true;
                best = None;
                break;
            }
            if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                best = Some(e);
            }
        }
        if !ok {
            out.push(VErr::composite(format!("{path:?} must validate at least one schema (anyOf)")));
        }
        if let Some(b) = best {
            out.extend(b);
        }
    }
    let one_of = s_list(s, "oneOf");
    if !one_of.is_empty() {
        let mut best: Option<Vec<VErr>> = None;
        let mut validated = 0;
        for sub in one_of {
            let e = run(sub);
            if e.is_empty() {
                validated += 1;
                best = None;
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| e.len() < b.len()) {
                best = Some(e);
            }
        }
        if validated != 1 {
            let extra = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            out.push(VErr::composite(format!("{path:?} must validate one and only one schema (oneOf). {extra}")));
            if let Some(b) = best {
                out.extend(b);
            }
        }
    }
    let all_of = s_list(s, "allOf");
    if !all_of.is_empty() {
        let mut validated = 0;
        let n = all_of.len();
        for sub in all_of {
            let e = run(sub);
            if e.is_empty() {
                validated += 1;
            }
            out.extend(e);
        }
        if validated != n {
            let extra = if validated == 0 { ". None validated" } else { "" };
            out.push(VErr::composite(format!("{path:?} must validate all the schemas (allOf){extra}")));
        }
    }
    if let Some(not) = s.get("not").filter(|v| v.is_object()) {
        if run(not).is_empty() {
            out.push(VErr::composite(format!("{path:?} must not validate the schema (not)")));
        }
    }
}

fn string_check(s: &Value, text: &str, path: &str, out: &mut Vec<VErr>) {
    let len = text.chars().count() as i64;
    let value = || Some(Value::String(text.into()));
    if let Some(max) = s.get("maxLength").and_then(Value::as_i64) {
        if len > max {
            let mut e =
                VErr::new(Code::TooLong, path, value(), in_body(path, &format!("should be at most {max} chars long")));
            e.valid = max;
            out.push(e);
            return;
        }
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_i64) {
        if len < min {
            out.push(VErr::new(
                Code::Other,
                path,
                value(),
                in_body(path, &format!("should be at least {min} chars long")),
            ));
            return;
        }
    }
    let pattern = s_str(s, "pattern");
    if !pattern.is_empty() {
        match compile(pattern) {
            Ok(re) => {
                if !re.is_match(text) {
                    out.push(VErr::new(
                        Code::Other,
                        path,
                        value(),
                        in_body(path, &format!("should match '{pattern}'")),
                    ));
                }
            }
            Err(e) => out.push(VErr::new(
                Code::Other,
                path,
                value(),
                in_body(path, &format!("should match '{pattern}, but pattern is invalid: {e}'")),
            )),
        }
    }
}

fn number_check(s: &Value, n: &serde_json::Number, path: &str, out: &mut Vec<VErr>) {
    let value = Some(Value::Number(n.clone()));
    let int = n.as_i64();
    let data = n.as_f64().unwrap_or(0.0);

    if let Some(factor) = s.get("multipleOf").and_then(Value::as_f64) {
        let msg = |f: String| in_body(path, &format!("should be a multiple of {f}"));
        if factor <= 0.0 && (int.is_some() || factor < 0.0) {
            let f = match int {
                Some(_) => (factor as i64).to_string(),
                None => go_float(factor),
            };
            out.push(VErr::new(
                Code::Other,
                path,
                Some(s["multipleOf"].clone()),
                format!("factor MultipleOf declared for {path} must be positive: {f}"),
            ));
        } else {
            match int {
                Some(i) if factor.fract() == 0.0 => {
                    let f = factor as i64;
                    if f != 0 && i % f != 0 {
                        out.push(VErr::new(Code::Other, path, value.clone(), msg(f.to_string())));
                    }
                }
                _ => {
                    if !is_json_integer(data / factor) {
                        out.push(VErr::new(Code::Other, path, value.clone(), msg(go_float(factor))));
                    }
                }
            }
        }
    }

    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    let mut min_err = None;
    if let Some(min) = bound("minimum") {
        let excl = s_flag(s, "exclusiveMinimum");
        let (fails, shown) = match int {
            Some(i) => {
                let m = min as i64;
                ((!excl && i < m) || (excl && i <= m), m.to_string())
            }
            None => ((!excl && data < min) || (excl && data <= min), go_float(min)),
        };
        if fails {
            let rel = if excl { "greater than" } else { "greater than or equal to" };
            min_err =
                Some(VErr::new(Code::Other, path, value.clone(), in_body(path, &format!("should be {rel} {shown}"))));
        }
    }
    let mut max_err = None;
    if let Some(max) = bound("maximum") {
        let excl = s_flag(s, "exclusiveMaximum");
        let (fails, shown) = match int {
            Some(i) => {
                let m = max as i64;
                ((!excl && i > m) || (excl && i >= m), m.to_string())
            }
            None => ((!excl && data > max) || (excl && data >= max), go_float(max)),
        };
        if fails {
            let rel = if excl { "less than" } else { "less than or equal to" };
            max_err =
                Some(VErr::new(Code::Other, path, value.clone(), in_body(path, &format!("should be {rel} {shown}"))));
        }
    }
    out.extend(min_err);
    out.extend(max_err);
}

fn slice_check(s: &Value, a: &[Value], path: &str, out: &mut Vec<VErr>) {
    if let Some(items) = s_items(s) {
        for (i, v) in a.iter().enumerate() {
            validate_node(items, v, &index(path, i), out);
        }
    }
    let size = a.len() as i64;
    if let Some(min) = s.get("minItems").and_then(Value::as_i64) {
        if size < min {
            out.push(VErr::new(
                Code::Other,
                path,
                Some(size.into()),
                in_body(path, &format!("should have at least {min} items")),
            ));
        }
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_i64) {
        if size > max {
            let mut e = VErr::new(
                Code::MaxItems,
                path,
                Some(size.into()),
                in_body(path, &format!("should have at most {max} items")),
            );
            e.valid = max;
            out.push(e);
        }
    }
    if s_flag(s, "uniqueItems") {
        let mut seen: Vec<&Value> = Vec::new();
        for v in a {
            if seen.iter().any(|u| json_equal(u, v)) {
                out.push(VErr::new(Code::Other, path, None, in_body(path, "shouldn't contain duplicates")));
                break;
            }
            seen.push(v);
        }
    }
}

/// Go `reflect.DeepEqual` on unstructured JSON (int64 and float64 differ).
fn json_equal(a: &Value, b: &Value) -> bool {
    a == b
}

fn validate_enum(s: &Value, data: &Value, path: &str, out: &mut Vec<VErr>) {
    let values = s_list(s, "enum");
    if values.is_empty() {
        return;
    }
    let matches = |e: &Value| -> bool {
        match (e, data) {
            (_, Value::Null) | (Value::Null, _) => false,
            // Go converts the value to the enum value's type before comparing
            (Value::Number(en), Value::Number(dn)) => {
                if en.is_i64() || en.is_u64() {
                    dn.as_f64().map(|f| f.trunc()) == en.as_f64()
                } else {
                    dn.as_f64() == en.as_f64()
                }
            }
            (e, d) => e == d,
        }
    };
    if !values.iter().any(|e| matches(e)) {
        let mut e = VErr::new(
            Code::Enum,
            path,
            Some(data.clone()),
            in_body(
                path,
                &format!("should be one of [{}]", values.iter().map(|v| go_value(v)).collect::<Vec<_>>().join(" ")),
            ),
        );
        e.values = values.into_iter().cloned().collect();
        out.push(e);
    }
}

fn object_check(s: &Value, m: &Map<String, Value>, path: &str, out: &mut Vec<VErr>) {
    let size = m.len() as i64;
    if let Some(min) = s.get("minProperties").and_then(Value::as_i64) {
        if size < min {
            let mut e = VErr::new(
                Code::Other,
                path,
                Some(size.into()),
                in_body(path, &format!("should have at least {min} properties")),
            );
            e.valid = min;
            out.push(e);
        }
    }
    if let Some(max) = s.get("maxProperties").and_then(Value::as_i64) {
        if size > max {
            let mut e = VErr::new(
                Code::TooManyProperties,
                path,
                Some(size.into()),
                in_body(path, &format!("should have at most {max} properties")),
            );
            e.valid = max;
            out.push(e);
        }
    }
    let props = s_props(s);
    let is_prop = |k: &str| props.is_some_and(|p| p.contains_key(k));
    let keys = sorted_keys(m);
    match s.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            for k in &keys {
                if !is_prop(k) {
                    out.push(VErr::new(
                        Code::Other,
                        path,
                        Some(Value::String((*k).clone())),
                        format!("{path}.{k} in body is a forbidden property"),
                    ));
                }
            }
        }
        Some(ap @ Value::Object(_)) => {
            for k in &keys {
                if !is_prop(k) {
                    validate_node(ap, &m[k.as_str()], &format!("{path}.{k}"), out);
                }
            }
        }
        _ => {}
    }
    if let Some(props) = props {
        for k in sorted_keys(props) {
            if let Some(v) = m.get(k.as_str()) {
                validate_node(&props[k.as_str()], v, &child(path, k), out);
            }
        }
    }
    for r in s_list(s, "required").into_iter().filter_map(Value::as_str) {
        if !m.contains_key(r) {
            out.push(VErr::new(
                Code::Required,
                &format!("{path}.{r}"),
                None,
                in_body(&format!("{path}.{r}"), "is required"),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Formats (kube-openapi strfmt)
// ---------------------------------------------------------------------------------------------

fn check_format(format: &str, s: &str) -> bool {
    match format.replace('-', "").as_str() {
        "datetime" => is_date_time(s),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10,
        "byte" => is_base64(s),
        "password" => true,
        "uuid" => re_match(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", s),
        "uuid3" => re_match(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$", s),
        "uuid4" => re_match(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$", s),
        "uuid5" => re_match(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$", s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.parse::<ipnet::IpNet>().is_ok(),
        "mac" => re_match(
            r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{2}[:-]){7}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{2}[:-]){19}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}([0-9A-Fa-f]{4})$",
            s,
        ),
        "hostname" => is_hostname(s),
        "email" => re_match(r"^[^@\s<>]+@[^@\s<>]+$", s),
        "uri" => re_match(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|/)\S*$", s),
        "duration" => is_duration(s),
        "hexcolor" => re_match(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", s),
        "rgbcolor" => re_match(
            r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
            s,
        ),
        "bsonobjectid" => re_match(r"^[0-9a-fA-F]{24}$", s),
        "ssn" => re_match(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$", s),
        // isbn, creditcard: accepted without a check
        _ => true,
    }
}

fn re_match(pattern: &str, s: &str) -> bool {
    compile(pattern).map(|r| r.is_match(s)).unwrap_or(true)
}

/// strfmt `IsDateTime`: a date, a `t`/`T`, and `hh:mm:ss[.frac](z|±hh:mm)`.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || chrono::NaiveDate::parse_from_str(parts[0], "%Y-%m-%d").is_err() {
        return false;
    }
    let Ok(re) = compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$") else {
        return false;
    };
    match re.captures(parts[1]) {
        Some(c) => &c[1] <= "23" && &c[2] <= "59" && &c[3] <= "59",
        None => false,
    }
}

fn is_base64(s: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

fn is_hostname(s: &str) -> bool {
    re_match(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
        s,
    ) && s.len() <= 255
        && s.split('.').all(|p| p.len() <= 63)
}

/// strfmt `IsDuration`: Go `time.ParseDuration` or `<n> <unit>` with d/w and long unit names.
fn is_duration(s: &str) -> bool {
    if re_match(r"^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$", s) || s == "0" {
        return true;
    }
    re_match(
        r"^[-+]?[0-9]+\s*(ns|nanos?|nanoseconds?|us|µs|micros?|microseconds?|ms|millis?|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)$",
        &s.trim().to_lowercase(),
    )
}

// ---------------------------------------------------------------------------------------------
// x-kubernetes-list-type and embedded resources
// ---------------------------------------------------------------------------------------------

fn list_sets_and_maps(s: &Value, x: &Value, path: &str, out: &mut Vec<Cause>) {
    match x {
        Value::Object(m) => {
            for k in sorted_keys(m) {
                let v = &m[k.as_str()];
                if let Some(prop) = s_prop(s, k) {
                    list_sets_and_maps(prop, v, &child(path, k), out);
                } else if let Some(Some(ap)) = s_additional(s) {
                    list_sets_and_maps(ap, v, &key(path, k), out);
                }
            }
        }
        Value::Array(a) => {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for i in non_unique(a) {
                        out.push(c_duplicate(index(path, i), &a[i]));
                    }
                }
                Some("map") => list_map(s, a, path, out),
                _ => {}
            }
            if let Some(items) = s_items(s) {
                for (i, v) in a.iter().enumerate() {
                    list_sets_and_maps(items, v, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Canonical identity of a list element: scalars by Go value (int64 and float64 differ),
/// compounds by their JSON.
fn identity(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("f:{}", n),
        Value::Number(n) => format!("i:{}", n),
        Value::Object(_) | Value::Array(_) => format!("c:{}", go_json(v)),
        other => format!("s:{other}"),
    }
}

/// Indices of the second occurrence of each repeated element.
fn non_unique(a: &[Value]) -> Vec<usize> {
    let ids: Vec<String> = a.iter().map(identity).collect();
    non_unique_ids(&ids)
}

fn non_unique_ids(ids: &[String]) -> Vec<usize> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let n = seen.entry(id.as_str()).or_insert(0);
        *n += 1;
        if *n == 2 {
            out.push(i);
        }
    }
    out
}

fn list_map(s: &Value, a: &[Value], path: &str, out: &mut Vec<Cause>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(c_invalid(index(path, i), x, "must be an object for an array of list-type map"));
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    let keys: Vec<&str> = s_list(s, "x-kubernetes-list-map-keys").into_iter().filter_map(Value::as_str).collect();
    let key_objs: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut k = Map::new();
            for f in &keys {
                if let Some(v) = x.get(f) {
                    k.insert(f.to_string(), v.clone());
                }
            }
            Value::Object(k)
        })
        .collect();
    let ids: Vec<String> = if keys.len() == 1 {
        key_objs.iter().map(|k| k.get(keys[0]).map(identity).unwrap_or_else(|| "unspecified".into())).collect()
    } else {
        key_objs.iter().map(identity).collect()
    };
    for i in non_unique_ids(&ids) {
        out.push(c_duplicate(index(path, i), &key_objs[i]));
    }
}

/// Embedded resources must carry apiVersion and kind (upstream `objectmeta.Validate`).
fn embedded_resources(s: &Value, x: &Value, path: &str, root: bool, out: &mut Vec<Cause>) {
    match x {
        Value::Object(m) => {
            if !root && s_flag(s, "x-kubernetes-embedded-resource") {
                for f in ["apiVersion", "kind"] {
                    match m.get(f) {
                        None => out.push(c_required(child(path, f), "must not be empty")),
                        Some(Value::String(v)) if v.is_empty() => {
                            out.push(c_invalid(child(path, f), &Value::String(String::new()), "must not be empty"))
                        }
                        Some(Value::String(_)) => {}
                        Some(other) => out.push(c_invalid(child(path, f), other, "must be a string")),
                    }
                }
            }
            for k in sorted_keys(m) {
                let v = &m[k.as_str()];
                if let Some(prop) = s_prop(s, k) {
                    embedded_resources(prop, v, &child(path, k), false, out);
                } else if let Some(Some(ap)) = s_additional(s) {
                    embedded_resources(ap, v, &key(path, k), false, out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s_items(s) {
                for (i, v) in a.iter().enumerate() {
                    embedded_resources(items, v, &index(path, i), false, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "spec.versions[0].schema.openAPIV3Schema";
    const CRON: &str = r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$";

    fn crontab() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["cronSpec", "image"],
                    "properties": {
                        "cronSpec": {"type": "string", "pattern": CRON},
                        "image": {"type": "string"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    fn spec_schema(props: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
    }

    fn msgs(c: &[Cause]) -> Vec<(String, String, String)> {
        c.iter().map(|c| (c.field.clone(), c.reason.clone(), c.message.clone())).collect()
    }

    fn one(c: Vec<Cause>) -> (String, String, String) {
        assert_eq!(c.len(), 1, "{:#?}", c);
        msgs(&c).remove(0)
    }

    fn t(field: &str, reason: &str, message: &str) -> (String, String, String) {
        (field.into(), reason.into(), message.into())
    }

    // ---- validate_schema ------------------------------------------------------------------

    #[test]
    fn crontab_schema_is_structural() {
        assert_eq!(validate_schema(&crontab(), BASE), vec![]);
    }

    #[test]
    fn schema_missing_types() {
        let s = json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "array"}}}}});
        assert_eq!(
            msgs(&validate_schema(&s, BASE)),
            vec![
                t(
                    &format!("{BASE}.properties[spec].properties[a].items"),
                    "FieldValueRequired",
                    "Required value: must be specified"
                ),
                t(
                    &format!("{BASE}.properties[spec].type"),
                    "FieldValueRequired",
                    "Required value: must not be empty for specified object fields"
                ),
            ]
        );
        let root = json!({"properties": {}});
        assert_eq!(
            one(validate_schema(&root, BASE)),
            t(&format!("{BASE}.type"), "FieldValueRequired", "Required value: must not be empty at the root")
        );
        let not_object = json!({"type": "string"});
        assert_eq!(
            one(validate_schema(&not_object, BASE)),
            t(&format!("{BASE}.type"), "FieldValueInvalid", "Invalid value: \"string\": must be object at the root")
        );
        let items = json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}});
        assert_eq!(
            one(validate_schema(&items, BASE)),
            t(
                &format!("{BASE}.properties[l].items.type"),
                "FieldValueRequired",
                "Required value: must not be empty for specified array items"
            )
        );
    }

    #[test]
    fn schema_non_structural_junctors() {
        let s = spec_schema(json!({
            "a": {"type": "string", "allOf": [{"type": "string", "description": "x", "nullable": true}]},
            "b": {"type": "object", "properties": {"x": {"type": "string"}}, "anyOf": [{"properties": {"y": {"minLength": 1}}}]}
        }));
        let p = format!("{BASE}.properties[spec].properties");
        assert_eq!(
            msgs(&validate_schema(&s, BASE)),
            vec![
                t(
                    &format!("{p}[a].allOf[0].description"),
                    "FieldValueForbidden",
                    "Forbidden: must be empty to be structural"
                ),
                t(
                    &format!("{p}[a].allOf[0].nullable"),
                    "FieldValueForbidden",
                    "Forbidden: must be false to be structural"
                ),
                t(&format!("{p}[a].allOf[0].type"), "FieldValueForbidden", "Forbidden: must be empty to be structural"),
                t(
                    &format!("{p}[b].properties[y]"),
                    "FieldValueRequired",
                    &format!("Required value: because it is defined in {p}[b].anyOf[0].properties[y]")
                ),
            ]
        );
    }

    #[test]
    fn schema_int_or_string_patterns_are_structural() {
        let s = spec_schema(json!({
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "other": {"x-kubernetes-int-or-string": true,
                      "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+%?$"}]}
        }));
        assert_eq!(validate_schema(&s, BASE), vec![]);
        let bad = spec_schema(
            json!({"p": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}}),
        );
        assert_eq!(
            one(validate_schema(&bad, BASE)),
            t(
                &format!("{BASE}.properties[spec].properties[p].x-kubernetes-preserve-unknown-fields"),
                "FieldValueInvalid",
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            )
        );
    }

    #[test]
    fn schema_preserve_unknown_fields_rules() {
        // preserve-unknown-fields allows a missing type
        let ok = spec_schema(json!({"free": {"x-kubernetes-preserve-unknown-fields": true}}));
        assert_eq!(validate_schema(&ok, BASE), vec![]);
        let f = spec_schema(json!({"x": {"type": "object", "x-kubernetes-preserve-unknown-fields": false}}));
        assert_eq!(
            one(validate_schema(&f, BASE)),
            t(
                &format!("{BASE}.properties[spec].properties[x].x-kubernetes-preserve-unknown-fields"),
                "FieldValueInvalid",
                "Invalid value: false: must be true or undefined"
            )
        );
        let nested =
            spec_schema(json!({"x": {"type": "object", "not": {"x-kubernetes-preserve-unknown-fields": true}}}));
        assert_eq!(
            one(validate_schema(&nested, BASE)),
            t(
                &format!("{BASE}.properties[spec].properties[x].not.x-kubernetes-preserve-unknown-fields"),
                "FieldValueForbidden",
                "Forbidden: must be false to be structural"
            )
        );
    }

    #[test]
    fn schema_embedded_resource_rules() {
        let s = spec_schema(json!({"t": {"x-kubernetes-embedded-resource": true}}));
        let p = format!("{BASE}.properties[spec].properties[t]");
        assert_eq!(
            msgs(&validate_schema(&s, BASE)),
            vec![
                t(
                    &format!("{p}.properties"),
                    "FieldValueRequired",
                    "Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
                ),
                t(
                    &format!("{p}.type"),
                    "FieldValueRequired",
                    "Required value: must be object if x-kubernetes-embedded-resource is true"
                ),
            ]
        );
        let ok = spec_schema(json!({"t": {"type": "object", "x-kubernetes-embedded-resource": true,
                                          "x-kubernetes-preserve-unknown-fields": true}}));
        assert_eq!(validate_schema(&ok, BASE), vec![]);
    }

    #[test]
    fn schema_openapi_restrictions() {
        let s = json!({
            "type": "object",
            "additionalProperties": {"type": "string"},
            "properties": {
                "metadata": {"type": "object", "default": {}},
                "l": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "m": {"type": "object", "$ref": "#/x"},
                "n": {"type": "null"}
            }
        });
        let got = msgs(&validate_schema(&s, BASE));
        let want = [
            t(
                &format!("{BASE}.additionalProperties"),
                "FieldValueForbidden",
                "Forbidden: must not be used at the root",
            ),
            t(
                &format!("{BASE}.additionalProperties"),
                "FieldValueForbidden",
                "Forbidden: additionalProperties and properties are mutual exclusive",
            ),
            t(
                &format!("{BASE}.properties[metadata].default"),
                "FieldValueForbidden",
                "Forbidden: must not be set in top-level metadata",
            ),
            t(
                &format!("{BASE}.properties[l].uniqueItems"),
                "FieldValueForbidden",
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ),
            t(&format!("{BASE}.properties[m].$ref"), "FieldValueForbidden", "Forbidden: $ref is not supported"),
            t(
                &format!("{BASE}.properties[n].type"),
                "FieldValueForbidden",
                "Forbidden: type cannot be set to null, use nullable as an alternative",
            ),
        ];
        for w in want {
            assert!(got.contains(&w), "missing {w:?} in {got:#?}");
        }
        let meta = json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"name": {"type": "string"}, "labels": {"type": "object"}}}}});
        assert_eq!(
            one(validate_schema(&meta, BASE)),
            t(
                &format!("{BASE}.properties[metadata]"),
                "FieldValueForbidden",
                "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )
        );
        let name_only = json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"name": {"type": "string", "maxLength": 10}}}}});
        assert_eq!(validate_schema(&name_only, BASE), vec![]);
    }

    #[test]
    fn schema_list_types() {
        let s = spec_schema(json!({
            "a": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"},
            "b": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                  "x-kubernetes-list-type": "map"},
            "c": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                  "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"]}
        }));
        let p = format!("{BASE}.properties[spec].properties");
        assert_eq!(
            msgs(&validate_schema(&s, BASE)),
            vec![
                t(
                    &format!("{p}[a].x-kubernetes-list-type"),
                    "FieldValueNotSupported",
                    "Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""
                ),
                t(
                    &format!("{p}[b].x-kubernetes-list-map-keys"),
                    "FieldValueRequired",
                    "Required value: must not be empty if x-kubernetes-list-type is map"
                ),
                t(
                    &format!("{p}[c].items.properties[k].default"),
                    "FieldValueRequired",
                    "Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
                ),
            ]
        );
    }

    #[test]
    fn schema_defaults_are_validated() {
        let s = spec_schema(json!({
            "replicas": {"type": "integer", "default": "one"},
            "size": {"type": "integer", "maximum": 5, "default": 7},
            "obj": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}}
        }));
        let p = format!("{BASE}.properties[spec].properties");
        assert_eq!(
            msgs(&validate_schema(&s, BASE)),
            vec![
                t(
                    &format!("{p}[obj].default"),
                    "FieldValueInvalid",
                    "Invalid value: {\"a\":\"x\",\"b\":1}: must not have unknown fields"
                ),
                t(
                    &format!("{p}[replicas].default"),
                    "FieldValueTypeInvalid",
                    "Invalid value: \"string\":  in body must be of type integer: \"string\""
                ),
                t(
                    &format!("{p}[size].default"),
                    "FieldValueInvalid",
                    "Invalid value: 7:  in body should be less than or equal to 5"
                ),
            ]
        );
    }

    #[test]
    fn schema_invalid_pattern() {
        let s = spec_schema(json!({"a": {"type": "string", "pattern": "(("}}));
        let c = one(validate_schema(&s, BASE));
        assert_eq!(c.0, format!("{BASE}.properties[spec].properties[a].pattern"));
        assert!(c.2.starts_with("Invalid value: \"((\": must be a valid regular expression, but isn't: "), "{}", c.2);
    }

    // ---- prune ----------------------------------------------------------------------------

    #[test]
    fn prune_nested_and_root_meta() {
        let mut obj = json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "whatever": 1},
            "spec": {"cronSpec": "* * * * */5", "image": "i", "junk": {"deep": 1}, "replicas": 2},
            "status": {"anything": {"goes": true}},
            "extra": [1, 2]
        });
        let pruned = prune(&crontab(), &mut obj);
        assert_eq!(pruned, vec!["extra".to_string(), "spec.junk".to_string()]);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "stable.example.com/v1", "kind": "CronTab",
                "metadata": {"name": "x", "whatever": 1},
                "spec": {"cronSpec": "* * * * */5", "image": "i", "replicas": 2},
                "status": {"anything": {"goes": true}}
            })
        );
    }

    #[test]
    fn prune_preserve_unknown_fields_still_prunes_known_children() {
        let s = spec_schema(json!({
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}}
        }));
        let mut obj = json!({"spec": {"free": {"other": {"x": 1}, "known": {"a": "1", "b": 2}}}});
        assert_eq!(prune(&s, &mut obj), vec!["spec.free.known.b".to_string()]);
        assert_eq!(obj, json!({"spec": {"free": {"other": {"x": 1}, "known": {"a": "1"}}}}));
    }

    #[test]
    fn prune_embedded_resources() {
        let s = spec_schema(json!({
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}}
        }));
        let mut obj = json!({"spec": {"template": {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"n": 1, "m": 2}, "status": {}
        }}});
        assert_eq!(prune(&s, &mut obj), vec!["spec.template.spec.m".to_string(), "spec.template.status".to_string()]);
        assert_eq!(
            obj,
            json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"n": 1}}}})
        );
        // below the root and outside embedded resources, metadata is an ordinary field
        let mut obj = json!({"spec": {"metadata": {"a": 1}}});
        assert_eq!(prune(&s, &mut obj), vec!["spec.metadata".to_string()]);
    }

    #[test]
    fn prune_additional_properties_and_arrays() {
        let s = spec_schema(json!({
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }));
        let mut obj = json!({"spec": {
            "map": {"a": {"v": "1", "junk": 1}, "b": {}},
            "list": [{"name": "x"}, {"name": "y", "junk": true}]
        }});
        assert_eq!(prune(&s, &mut obj), vec!["spec.list[1].junk".to_string(), "spec.map.a.junk".to_string()]);
        assert_eq!(obj, json!({"spec": {"map": {"a": {"v": "1"}, "b": {}}, "list": [{"name": "x"}, {"name": "y"}]}}));
    }

    #[test]
    fn prune_drops_non_nullable_nulls_without_default() {
        let s = spec_schema(json!({
            "a": {"type": "string"}, "b": {"type": "string", "nullable": true}, "c": {"type": "string", "default": "d"}
        }));
        let mut obj = json!({"spec": {"a": null, "b": null, "c": null}});
        assert_eq!(prune(&s, &mut obj), Vec::<String>::new());
        assert_eq!(obj, json!({"spec": {"b": null, "c": null}}));
    }

    // ---- apply_defaults -------------------------------------------------------------------

    #[test]
    fn defaults_crontab_replicas() {
        let mut obj = json!({"spec": {"cronSpec": "* * * * */5", "image": "i"}});
        apply_defaults(&crontab(), &mut obj);
        assert_eq!(obj["spec"]["replicas"], json!(1));
        let mut obj = json!({"spec": {"replicas": 3}});
        apply_defaults(&crontab(), &mut obj);
        assert_eq!(obj["spec"]["replicas"], json!(3));
    }

    #[test]
    fn defaults_nested_in_defaulted_objects() {
        let s = spec_schema(json!({
            "strategy": {"type": "object", "default": {},
                         "properties": {"type": {"type": "string", "default": "Rolling"},
                                        "rolling": {"type": "object", "default": {"max": 2},
                                                    "properties": {"max": {"type": "integer"},
                                                                   "surge": {"type": "integer", "default": 1}}}}}
        }));
        let mut obj = json!({"spec": {}});
        apply_defaults(&s, &mut obj);
        assert_eq!(obj, json!({"spec": {"strategy": {"type": "Rolling", "rolling": {"max": 2, "surge": 1}}}}));
    }

    #[test]
    fn defaults_arrays_of_objects_and_maps() {
        let s = spec_schema(json!({
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
            "limits": {"type": "object", "additionalProperties": {"type": "string", "default": "1"}}
        }));
        let mut obj =
            json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}], "limits": {"cpu": null}}});
        apply_defaults(&s, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                            "limits": {"cpu": "1"}}})
        );
    }

    #[test]
    fn defaults_and_nullable() {
        let s = spec_schema(json!({
            "a": {"type": "string", "default": "x"},
            "b": {"type": "string", "nullable": true, "default": "y"},
            "c": {"type": "string"},
            "items": {"type": "array", "items": {"type": "integer", "default": 0}}
        }));
        let mut obj = json!({"spec": {"a": null, "b": null, "c": null, "items": [1, null]}});
        apply_defaults(&s, &mut obj);
        assert_eq!(obj, json!({"spec": {"a": "x", "b": null, "items": [1, 0]}}));
    }

    // ---- validate -------------------------------------------------------------------------

    fn cron_obj(spec: Value) -> Value {
        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"}, "spec": spec})
    }

    #[test]
    fn validate_crontab() {
        let s = crontab();
        assert_eq!(validate(&s, &cron_obj(json!({"cronSpec": "* * * * */5", "image": "i", "replicas": 3}))), vec![]);
        assert_eq!(
            one(validate(&s, &cron_obj(json!({"cronSpec": "* * * * */5", "image": "i", "replicas": "string"})))),
            t(
                "spec.replicas",
                "FieldValueTypeInvalid",
                "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
            )
        );
        assert_eq!(
            one(validate(&s, &cron_obj(json!({"cronSpec": "* * * * */5", "image": "i", "replicas": 11})))),
            t(
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: 11: spec.replicas in body should be less than or equal to 10"
            )
        );
        assert_eq!(
            one(validate(&s, &cron_obj(json!({"cronSpec": "* * * * */5", "image": "i", "replicas": 0})))),
            t(
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
            )
        );
        assert_eq!(
            msgs(&validate(&s, &cron_obj(json!({"cronSpec": "bad", "replicas": 1.5})))),
            vec![
                t(
                    "spec.cronSpec",
                    "FieldValueInvalid",
                    &format!("Invalid value: \"bad\": spec.cronSpec in body should match '{CRON}'")
                ),
                t(
                    "spec.replicas",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\""
                ),
                t("spec.image", "FieldValueRequired", "Required value"),
            ]
        );
        // a whole-number float is an integer
        assert_eq!(validate(&s, &cron_obj(json!({"cronSpec": "* * * * */5", "image": "i", "replicas": 2.0}))), vec![]);
    }

    #[test]
    fn validate_root_required_and_enum() {
        let s = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["a", "b"]},
            "level": {"type": "integer", "enum": [1, 2]}
        }}}});
        assert_eq!(one(validate(&s, &json!({}))), t("spec", "FieldValueRequired", "Required value"));
        assert_eq!(
            msgs(&validate(&s, &json!({"spec": {"mode": "x", "level": 3}}))),
            vec![
                t("spec.level", "FieldValueNotSupported", "Unsupported value: 3: supported values: \"1\", \"2\""),
                t("spec.mode", "FieldValueNotSupported", "Unsupported value: \"x\": supported values: \"a\", \"b\""),
            ]
        );
    }

    #[test]
    fn validate_string_keywords() {
        let s = spec_schema(json!({
            "short": {"type": "string", "maxLength": 3},
            "long": {"type": "string", "minLength": 2},
            "one": {"type": "string", "maxLength": 1},
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"},
            "custom": {"type": "string", "format": "my-own-format"}
        }));
        assert_eq!(
            msgs(&validate(
                &s,
                &json!({"spec": {"short": "abcd", "long": "a", "one": "ab", "when": "yesterday", "day": "2024-02-30",
                                 "id": "nope", "custom": "anything"}})
            )),
            vec![
                t(
                    "spec.day",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"2024-02-30\": spec.day in body must be of type date: \"2024-02-30\""
                ),
                t(
                    "spec.id",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"nope\": spec.id in body must be of type uuid: \"nope\""
                ),
                t(
                    "spec.long",
                    "FieldValueInvalid",
                    "Invalid value: \"a\": spec.long in body should be at least 2 chars long"
                ),
                t("spec.one", "FieldValueTooLong", "Too long: may not be more than 1 byte"),
                t("spec.short", "FieldValueTooLong", "Too long: may not be more than 3 bytes"),
                t(
                    "spec.when",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\""
                ),
            ]
        );
        let ok = json!({"spec": {"when": "2024-01-02T03:04:05.123Z", "day": "2024-02-29",
                                 "id": "8a1f3c2e-0b7d-4c55-9d2e-1f2a3b4c5d6e"}});
        assert_eq!(validate(&s, &ok), vec![]);
        assert_eq!(validate(&s, &json!({"spec": {"when": "2024-01-02t03:04:05+02:00"}})), vec![]);
    }

    #[test]
    fn validate_number_keywords() {
        let s = spec_schema(json!({
            "excl": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 5, "exclusiveMaximum": true},
            "ratio": {"type": "number", "maximum": 1.5},
            "step": {"type": "integer", "multipleOf": 5},
            "i32": {"type": "integer", "format": "int32"},
            "i64": {"type": "integer", "format": "int64"}
        }));
        assert_eq!(
            msgs(&validate(
                &s,
                &json!({"spec": {"excl": 1, "ratio": 2.5, "step": 7, "i32": 99999999999i64, "i64": 1}})
            )),
            vec![
                t("spec.excl", "FieldValueInvalid", "Invalid value: 1: spec.excl in body should be greater than 1"),
                t(
                    "spec.ratio",
                    "FieldValueInvalid",
                    "Invalid value: 2.5: spec.ratio in body should be less than or equal to 1.5"
                ),
                t("spec.step", "FieldValueInvalid", "Invalid value: 7: spec.step in body should be a multiple of 5"),
            ]
        );
        assert_eq!(
            one(validate(&s, &json!({"spec": {"excl": 5}}))),
            t("spec.excl", "FieldValueInvalid", "Invalid value: 5: spec.excl in body should be less than 5")
        );
        // int32/int64 formats are stripped by apiextensions, so only the type is checked
        assert_eq!(
            one(validate(&s, &json!({"spec": {"i32": "x"}}))),
            t(
                "spec.i32",
                "FieldValueTypeInvalid",
                "Invalid value: \"string\": spec.i32 in body must be of type integer: \"string\""
            )
        );
    }

    #[test]
    fn validate_array_keywords_and_item_paths() {
        let s = spec_schema(json!({
            "few": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "many": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            "uniq": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "items": {"type": "array", "items": {"type": "object", "required": ["name"],
                      "properties": {"name": {"type": "string"}}}}
        }));
        let obj = json!({"spec": {"few": [], "many": ["a", "b", "c"], "uniq": ["a", "a"],
                                  "items": [{"name": "a"}, {"name": "b"}, {"name": 3}, {}]}});
        assert_eq!(
            msgs(&validate(&s, &obj)),
            vec![
                t("spec.few", "FieldValueInvalid", "Invalid value: 0: spec.few in body should have at least 1 items"),
                t(
                    "spec.items[2].name",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"integer\": spec.items[2].name in body must be of type string: \"integer\""
                ),
                t("spec.items[3].name", "FieldValueRequired", "Required value"),
                t("spec.many", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
                t(
                    "spec.uniq",
                    "FieldValueInvalid",
                    "Invalid value: \"\": spec.uniq in body shouldn't contain duplicates"
                ),
            ]
        );
    }

    #[test]
    fn validate_object_keywords() {
        let s = spec_schema(json!({
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
            "strict": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false},
            "some": {"type": "object", "minProperties": 1, "x-kubernetes-preserve-unknown-fields": true}
        }));
        let obj = json!({"spec": {"labels": {"a": "1", "b": 2, "c": "3"}, "strict": {"a": "x", "bar": 1}, "some": {}}});
        assert_eq!(
            msgs(&validate(&s, &obj)),
            vec![
                t("spec.labels", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
                t(
                    "spec.labels.b",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\""
                ),
                t(
                    "spec.some",
                    "FieldValueInvalid",
                    "Invalid value: 0: spec.some in body should have at least 1 properties"
                ),
                t(
                    "spec.strict",
                    "FieldValueInvalid",
                    "Invalid value: \"bar\": spec.strict.bar in body is a forbidden property"
                ),
            ]
        );
    }

    #[test]
    fn validate_nullable_and_int_or_string() {
        let s = spec_schema(json!({
            "n": {"type": "string", "nullable": true},
            "m": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        }));
        assert_eq!(validate(&s, &json!({"spec": {"n": null, "port": 8080}})), vec![]);
        assert_eq!(validate(&s, &json!({"spec": {"port": "http"}})), vec![]);
        assert_eq!(
            one(validate(&s, &json!({"spec": {"m": null}}))),
            t(
                "spec.m",
                "FieldValueTypeInvalid",
                "Invalid value: \"null\": spec.m in body must be of type string: \"null\""
            )
        );
        assert_eq!(
            msgs(&validate(&s, &json!({"spec": {"port": true}}))),
            vec![
                t(
                    "spec.port",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
                ),
                t(
                    "<nil>",
                    "FieldValueInvalid",
                    "Invalid value: \"\": \"spec.port\" must validate at least one schema (anyOf)"
                ),
                t(
                    "spec.port",
                    "FieldValueTypeInvalid",
                    "Invalid value: \"boolean\": spec.port in body must be of type integer: \"boolean\""
                ),
            ]
        );
    }

    #[test]
    fn validate_junctors() {
        let s = spec_schema(json!({
            "one": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]},
            "all": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 3}]},
            "not": {"type": "string", "not": {"enum": ["forbidden"]}}
        }));
        assert_eq!(validate(&s, &json!({"spec": {"one": "ax", "all": 2, "not": "fine"}})), vec![]);
        assert_eq!(
            msgs(&validate(&s, &json!({"spec": {"one": "ab", "all": 5, "not": "forbidden"}}))),
            vec![
                t("spec.all", "FieldValueInvalid", "Invalid value: 5: spec.all in body should be less than or equal to 3"),
                t("<nil>", "FieldValueInvalid", "Invalid value: \"\": \"spec.all\" must validate all the schemas (allOf)"),
                t("<nil>", "FieldValueInvalid", "Invalid value: \"\": \"spec.not\" must not validate the schema (not)"),
                t(
                    "<nil>",
                    "FieldValueInvalid",
                    "Invalid value: \"\": \"spec.one\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
                ),
            ]
        );
    }

    #[test]
    fn validate_list_type_set_and_map() {
        let s = spec_schema(json!({
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
            "pairs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "b"],
                      "items": {"type": "object", "required": ["a", "b"],
                                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}
        }));
        let obj = json!({"spec": {
            "tags": ["a", "b", "a", "a"],
            "ports": [{"name": "http"}, {"name": "http"}],
            "pairs": [{"a": "x", "b": 1}, {"a": "x", "b": 2}, {"a": "x", "b": 1}]
        }});
        assert_eq!(
            msgs(&validate(&s, &obj)),
            vec![
                t("spec.pairs[2]", "FieldValueDuplicate", "Duplicate value: {\"a\":\"x\",\"b\":1}"),
                t("spec.ports[1]", "FieldValueDuplicate", "Duplicate value: {\"name\":\"http\"}"),
                t("spec.tags[2]", "FieldValueDuplicate", "Duplicate value: \"a\""),
            ]
        );
    }

    #[test]
    fn validate_embedded_resource() {
        let s = spec_schema(json!({
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "x-kubernetes-preserve-unknown-fields": true}
        }));
        assert_eq!(validate(&s, &json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})), vec![]);
        assert_eq!(
            msgs(&validate(&s, &json!({"spec": {"template": {"apiVersion": 1}}}))),
            vec![
                t("spec.template.apiVersion", "FieldValueInvalid", "Invalid value: 1: must be a string"),
                t("spec.template.kind", "FieldValueRequired", "Required value: must not be empty"),
            ]
        );
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.00001), "1e-05");
    }
}
