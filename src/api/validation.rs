//! Validation of built-in objects, reimplementing upstream Kubernetes 1.33
//! (`pkg/apis/*/validation`, apimachinery `pkg/util/validation` and `pkg/api/validation`)
//! on `serde_json::Value` objects in their v1 wire form, after defaulting.
//!
//! Causes carry upstream's field paths (`spec.template.spec.containers[0].image`) and messages
//! (`Required value`, `Invalid value: "Foo": a lowercase RFC 1123 ...`). Values inside messages
//! are rendered the way Go's `%q` / `%#v` print them for the common cases (strings, integers,
//! label maps, label selectors, RBAC role refs).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::api::status::Cause;

// =============================================================================================
// apimachinery pkg/util/validation: format checks and their exact messages

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const WILDCARD_SUBDOMAIN_FMT: &str = "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const WILDCARD_SUBDOMAIN_ERR: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR: &str = "a valid percent string must be a numeric string followed by an ending '%'";
const HTTP_HEADER_FMT: &str = "[-A-Za-z0-9]+";
const HTTP_HEADER_ERR: &str = "a valid HTTP header must consist of alphanumeric characters or '-'";
const RELAXED_ENV_ERR: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";

const IS_NEGATIVE: &str = "must be greater than or equal to 0";
const IMMUTABLE: &str = "field is immutable";
const FILE_MODE_ERR: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const MAX_INT32: i64 = i32::MAX as i64;

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", ex.join(" or "))
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(matches_dns1123_label)
}

fn matches_dns1035_label(s: &str) -> bool {
    matches_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

/// Tests for a string that conforms to the definition of a label in DNS (RFC 1123).
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(s) {
        if matches_dns1123_subdomain(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// Tests for a string that conforms to the definition of a subdomain in DNS (RFC 1123).
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// Tests for a string that conforms to the definition of a label in DNS (RFC 1035).
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1035_label(s) {
        errs.push(regex_error(DNS1035_LABEL_ERR, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    errs
}

/// What Kubernetes calls a "qualified name" (label keys, annotation keys, finalizers...).
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.len() {
        1 => parts[0],
        2 => {
            let prefix = parts[0];
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for m in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {m}"));
                }
            }
            parts[1]
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// Tests whether the value passed is a valid label value.
pub fn is_valid_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !matches_qualified_name_part(s) {
        errs.push(regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

fn is_wildcard_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = s.strip_prefix("*.").is_some_and(matches_dns1123_subdomain);
    if !ok {
        errs.push(regex_error(WILDCARD_SUBDOMAIN_ERR, WILDCARD_SUBDOMAIN_FMT, &["*.example.com"]));
    }
    errs
}

fn is_valid_port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

fn is_valid_port_name(p: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if p.len() > 15 {
        errs.push(max_len_error(15));
    }
    if p.is_empty() || !p.bytes().all(|c| is_alnum_lower(c) || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !p.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if p.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if p.starts_with('-') || p.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

fn has_chdir_prefix(s: &str) -> Vec<String> {
    if s == "." {
        vec!["must not be '.'".to_string()]
    } else if s == ".." {
        vec!["must not be '..'".to_string()]
    } else if s.starts_with("..") {
        vec!["must not start with '..'".to_string()]
    } else {
        Vec::new()
    }
}

fn is_config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_') {
        errs.push(regex_error(CONFIG_MAP_KEY_ERR, CONFIG_MAP_KEY_FMT, &["key.name", "KEY_NAME", "key-name"]));
    }
    errs.extend(has_chdir_prefix(s));
    errs
}

fn is_relaxed_env_var_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if s.chars().any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=') {
        errs.push(RELAXED_ENV_ERR.to_string());
    }
    errs
}

fn is_valid_percent(s: &str) -> Vec<String> {
    let ok = s.len() > 1 && s.ends_with('%') && s[..s.len() - 1].bytes().all(|c| c.is_ascii_digit());
    if ok {
        Vec::new()
    } else {
        vec![regex_error(PERCENT_ERR, PERCENT_FMT, &["1%", "93%"])]
    }
}

fn is_http_header_name(s: &str) -> Vec<String> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        Vec::new()
    } else {
        vec![regex_error(HTTP_HEADER_ERR, HTTP_HEADER_FMT, &["X-Header-Name"])]
    }
}

fn is_valid_path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    is_valid_path_segment_prefix(s)
}

fn is_valid_path_segment_prefix(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Upstream's `IsValidIP` (strict parsing, canonical form).
fn ip_errors(s: &str) -> Vec<String> {
    match s.parse::<std::net::IpAddr>() {
        Err(_) => vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()],
        Ok(ip) => {
            if let std::net::IpAddr::V6(v6) = ip {
                if v6.to_ipv4_mapped().is_some() {
                    return vec!["must not be an IPv4-mapped IPv6 address".to_string()];
                }
            }
            let canonical = ip.to_string();
            if canonical != s {
                vec![format!("must be in canonical form ({})", q(&canonical))]
            } else {
                Vec::new()
            }
        }
    }
}

fn cidr_errors(s: &str) -> Vec<String> {
    let bad = || vec!["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".to_string()];
    let Some((ip, bits)) = s.split_once('/') else {
        return bad();
    };
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return bad();
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return bad();
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return bad();
    }
    Vec::new()
}

// =============================================================================================
// Names per kind

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        ("apps", "StatefulSet") => NameRule::Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("flowcontrol.apiserver.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        // upstream replaces the last two bytes with "a"
        let cut = name.len() - 2;
        if name.is_char_boundary(cut) {
            return format!("{}a", &name[..cut]);
        }
    }
    name.to_string()
}

fn check_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    if rule == NameRule::PathSegment {
        return if prefix { is_valid_path_segment_prefix(name) } else { is_valid_path_segment_name(name) };
    }
    let n = if prefix { mask_trailing_dash(name) } else { name.to_string() };
    match rule {
        NameRule::Subdomain => is_dns1123_subdomain(&n),
        NameRule::Label => is_dns1123_label(&n),
        NameRule::Dns1035 => is_dns1035_label(&n),
        NameRule::PathSegment => unreachable!(),
    }
}

/// Name validation per kind: DNS-1123 subdomain for most kinds, DNS-1123 label for namespaces and
/// statefulsets, DNS-1035 label for services, path-segment names for RBAC roles/bindings and
/// API priority and fairness objects. Returns upstream's messages.
pub fn validate_name(group: &str, kind: &str, name: &str) -> Vec<String> {
    check_name(name_rule(group, kind), name, false)
}

const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("resource.k8s.io", "DeviceClass"),
];

const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "coordination.k8s.io",
    "events.k8s.io",
    "discovery.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
];

/// Scope of a kind: `Some(true)` namespaced, `Some(false)` cluster-scoped, `None` unknown (a
/// custom resource: the namespace is then only checked when present).
fn namespaced(group: &str, kind: &str) -> Option<bool> {
    if CLUSTER_SCOPED.iter().any(|(g, k)| *g == group && *k == kind) {
        Some(false)
    } else if BUILT_IN_GROUPS.contains(&group) {
        Some(true)
    } else {
        None
    }
}

// =============================================================================================
// Resource quantities (apimachinery pkg/api/resource)

/// How a quantity was written, which decides how it is printed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityFormat {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed quantity, exact to the nano unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    pub nanos: i128,
    pub format: QuantityFormat,
}

impl Quantity {
    /// Round up to milli precision, as upstream's ResourceList defaulting does.
    pub fn round_up_milli(&mut self) {
        let m = 1_000_000i128;
        let r = self.nanos.rem_euclid(m);
        if r != 0 {
            self.nanos += m - r;
        }
    }

    fn milli(&self) -> i128 {
        self.nanos.div_euclid(1_000_000)
    }
}

const NANOS_CAP: i128 = 1i128 << 120;

fn pow10(e: u32) -> i128 {
    10i128.checked_pow(e).unwrap_or(NANOS_CAP)
}

/// Parse a Kubernetes quantity (`100m`, `1.5Gi`, `2e3`, `-1`). `None` when it does not parse.
pub fn parse_quantity(s: &str) -> Option<Quantity> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (neg, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    // (multiplier numerator as power of 10, power of 2)
    let (format, exp10, exp2): (QuantityFormat, i32, u32) = match suffix {
        "" => (QuantityFormat::DecimalSi, 0, 0),
        "n" => (QuantityFormat::DecimalSi, -9, 0),
        "u" => (QuantityFormat::DecimalSi, -6, 0),
        "m" => (QuantityFormat::DecimalSi, -3, 0),
        "k" => (QuantityFormat::DecimalSi, 3, 0),
        "M" => (QuantityFormat::DecimalSi, 6, 0),
        "G" => (QuantityFormat::DecimalSi, 9, 0),
        "T" => (QuantityFormat::DecimalSi, 12, 0),
        "P" => (QuantityFormat::DecimalSi, 15, 0),
        "E" => (QuantityFormat::DecimalSi, 18, 0),
        "Ki" => (QuantityFormat::BinarySi, 0, 10),
        "Mi" => (QuantityFormat::BinarySi, 0, 20),
        "Gi" => (QuantityFormat::BinarySi, 0, 30),
        "Ti" => (QuantityFormat::BinarySi, 0, 40),
        "Pi" => (QuantityFormat::BinarySi, 0, 50),
        "Ei" => (QuantityFormat::BinarySi, 0, 60),
        other => {
            let e = other.strip_prefix('e').or_else(|| other.strip_prefix('E'))?;
            let v: i32 = e.parse().ok()?;
            if !(-40..=40).contains(&v) {
                return None;
            }
            (QuantityFormat::DecimalExponent, v, 0)
        }
    };
    // digits as an integer, scaled by 10^-frac_len
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mantissa: i128 = if digits.is_empty() {
        0
    } else if digits.len() > 36 {
        NANOS_CAP
    } else {
        digits.parse().ok()?
    };
    // nanos = mantissa * 10^(exp10 + 9 - frac_len) * 2^exp2, rounded up
    let e = exp10 + 9 - frac_part.len() as i32;
    let mut nanos = mantissa.saturating_mul(1i128 << exp2);
    if e >= 0 {
        nanos = nanos.saturating_mul(pow10(e as u32));
    } else {
        let d = pow10((-e) as u32);
        nanos = if d >= NANOS_CAP { i128::from(nanos != 0) } else { (nanos + d - 1) / d };
    }
    let nanos = nanos.min(NANOS_CAP);
    Some(Quantity { nanos: if neg { -nanos } else { nanos }, format })
}

/// Upstream's canonical string form of a quantity (`Quantity.String()`).
pub fn canonical_quantity(q: &Quantity) -> String {
    if q.nanos == 0 {
        return "0".to_string();
    }
    let sign = if q.nanos < 0 { "-" } else { "" };
    let abs = q.nanos.abs();
    let mut format = q.format;
    if format == QuantityFormat::BinarySi {
        let units_exact = abs % 1_000_000_000 == 0;
        if abs < 1024 * 1_000_000_000 || !units_exact {
            format = QuantityFormat::DecimalSi;
        }
    }
    match format {
        QuantityFormat::BinarySi => {
            let mut u = abs / 1_000_000_000;
            let mut k = 0;
            while k < 6 && u % 1024 == 0 {
                u /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            format!("{sign}{u}{suffix}")
        }
        _ => {
            let mut m = abs;
            let mut e: i32 = -9;
            while m % 1000 == 0 && e < 18 {
                m /= 1000;
                e += 3;
            }
            let suffix = if format == QuantityFormat::DecimalExponent {
                if e == 0 {
                    String::new()
                } else {
                    format!("e{e}")
                }
            } else {
                match e {
                    -9 => "n",
                    -6 => "u",
                    -3 => "m",
                    0 => "",
                    3 => "k",
                    6 => "M",
                    9 => "G",
                    12 => "T",
                    15 => "P",
                    _ => "E",
                }
                .to_string()
            };
            format!("{sign}{m}{suffix}")
        }
    }
}

// =============================================================================================
// Rendering values like Go's %q / %#v

/// Go's `%q` of a string (one implementation, shared with the selectors).
fn q(s: &str) -> String {
    crate::api::selector::go_quote(s)
}

/// `%#v` of a `map[string]string`.
fn go_map(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(m)) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", q(k), q(m[k.as_str()].as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
        _ => "map[string]string(nil)".to_string(),
    }
}

/// `%#v` of a `[]string`.
fn go_strings(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(a)) => {
            let parts: Vec<String> = a.iter().map(|s| q(s.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", parts.join(", "))
        }
        _ => "[]string(nil)".to_string(),
    }
}

fn go_string_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[]string{{{}}}", parts.join(", "))
}

/// `%#v` of a `metav1.LabelSelector` (the pointer is dereferenced by the error printer; a nil
/// selector prints as `null`).
fn go_label_selector(v: Option<&Value>) -> String {
    let Some(sel) = v.filter(|v| v.is_object()) else {
        return "null".to_string();
    };
    let exprs = match sel.get("matchExpressions") {
        Some(Value::Array(a)) => {
            let parts: Vec<String> = a
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        q(gs(r, "key")),
                        q(gs(r, "operator")),
                        go_strings(r.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", parts.join(", "))
        }
        _ => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}", go_map(sel.get("matchLabels")), exprs)
}

/// Fallback rendering of a structured value: compact JSON.
fn go_json(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".to_string(),
        Some(v) => v.to_string(),
    }
}

// =============================================================================================
// Error list

#[derive(Default)]
struct Errs(Vec<Cause>);

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause { reason: reason.to_string(), message, field: field.to_string() }
}

impl Errs {
    fn push(&mut self, c: Cause) {
        self.0.push(c);
    }

    fn required(&mut self, field: &str, detail: &str) {
        let msg = if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        self.push(cause("FieldValueRequired", field, msg));
    }

    /// `Invalid value: <rendered>: <detail>`; `rendered` is already Go-formatted.
    fn invalid(&mut self, field: &str, rendered: String, detail: &str) {
        let msg = if detail.is_empty() {
            format!("Invalid value: {rendered}")
        } else {
            format!("Invalid value: {rendered}: {detail}")
        };
        self.push(cause("FieldValueInvalid", field, msg));
    }

    fn invalid_str(&mut self, field: &str, value: &str, detail: &str) {
        self.invalid(field, q(value), detail);
    }

    fn invalid_int(&mut self, field: &str, value: i64, detail: &str) {
        self.invalid(field, value.to_string(), detail);
    }

    fn not_supported(&mut self, field: &str, rendered: String, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| q(s)).collect();
        let msg = if list.is_empty() {
            format!("Unsupported value: {rendered}")
        } else {
            format!("Unsupported value: {rendered}: supported values: {}", list.join(", "))
        };
        self.push(cause("FieldValueNotSupported", field, msg));
    }

    fn not_supported_str(&mut self, field: &str, value: &str, supported: &[&str]) {
        self.not_supported(field, q(value), supported);
    }

    fn duplicate(&mut self, field: &str, rendered: String) {
        self.push(cause("FieldValueDuplicate", field, format!("Duplicate value: {rendered}")));
    }

    fn forbidden(&mut self, field: &str, detail: &str) {
        let msg = if detail.is_empty() { "Forbidden".to_string() } else { format!("Forbidden: {detail}") };
        self.push(cause("FieldValueForbidden", field, msg));
    }

    fn not_found(&mut self, field: &str, rendered: String) {
        self.push(cause("FieldValueNotFound", field, format!("Not found: {rendered}")));
    }

    fn too_long(&mut self, field: &str, max: usize) {
        self.push(cause("FieldValueTooLong", field, format!("Too long: may not be more than {max} bytes")));
    }

    fn too_many(&mut self, field: &str, actual: usize, max: usize) {
        self.push(cause("FieldValueTooMany", field, format!("Too many: {actual}: must have at most {max} items")));
    }

    fn nonnegative(&mut self, field: &str, v: Option<i64>) {
        if let Some(v) = v {
            if v < 0 {
                self.invalid_int(field, v, IS_NEGATIVE);
            }
        }
    }

    fn finish(self) -> Vec<Cause> {
        // Upstream's aggregate drops errors whose rendered text repeats.
        let mut seen = BTreeSet::new();
        self.0.into_iter().filter(|c| seen.insert((c.field.clone(), c.message.clone()))).collect()
    }
}

// =============================================================================================
// JSON access and paths

fn gs<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn gi(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn gb(v: &Value, k: &str) -> Option<bool> {
    v.get(k).and_then(Value::as_bool)
}

fn ga<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn gm<'a>(v: &'a Value, k: &str) -> Option<&'a Map<String, Value>> {
    v.get(k).and_then(Value::as_object)
}

fn present(v: &Value, k: &str) -> bool {
    !matches!(v.get(k), None | Some(Value::Null))
}

fn child(p: &str, c: &str) -> String {
    if p.is_empty() {
        c.to_string()
    } else {
        format!("{p}.{c}")
    }
}

fn idx(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

fn key(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}

fn sorted_entries(m: Option<&Map<String, Value>>) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = m.map(|m| m.iter().collect()).unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

// =============================================================================================
// Object metadata (apimachinery pkg/api/validation/objectmeta.go + core's finalizer checks)

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn validate_labels(labels: Option<&Value>, path: &str, e: &mut Errs) {
    for (k, v) in sorted_entries(labels.and_then(Value::as_object)) {
        validate_label_name(k, path, e);
        let val = v.as_str().unwrap_or("");
        for m in is_valid_label_value(val) {
            e.invalid_str(path, val, &m);
        }
    }
}

fn validate_label_name(k: &str, path: &str, e: &mut Errs) {
    for m in is_qualified_name(k) {
        e.invalid_str(path, k, &m);
    }
}

fn validate_qualified_name(v: &str, path: &str, e: &mut Errs) {
    for m in is_qualified_name(v) {
        e.invalid_str(path, v, &m);
    }
}

fn validate_dns1123_label(v: &str, path: &str, e: &mut Errs) {
    for m in is_dns1123_label(v) {
        e.invalid_str(path, v, &m);
    }
}

fn validate_dns1123_subdomain(v: &str, path: &str, e: &mut Errs) {
    for m in is_dns1123_subdomain(v) {
        e.invalid_str(path, v, &m);
    }
}

fn validate_annotations(ann: Option<&Value>, path: &str, e: &mut Errs) {
    let entries = sorted_entries(ann.and_then(Value::as_object));
    let mut total = 0usize;
    for (k, v) in &entries {
        for m in is_qualified_name(&k.to_lowercase()) {
            e.invalid_str(path, k, &m);
        }
        total += k.len() + v.as_str().map(str::len).unwrap_or(0);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        e.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT);
    }
}

fn validate_owner_references(refs: &[Value], path: &str, e: &mut Errs) {
    let mut first_controller = String::new();
    for r in refs {
        let api_version = gs(r, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            e.invalid_str(&child(path, "apiVersion"), api_version, "version must not be empty");
        }
        if gs(r, "kind").is_empty() {
            e.invalid_str(&child(path, "kind"), "", "kind must not be empty");
        }
        if gs(r, "name").is_empty() {
            e.invalid_str(&child(path, "name"), "", "name must not be empty");
        }
        if gs(r, "uid").is_empty() {
            e.invalid_str(&child(path, "uid"), "", "uid must not be empty");
        }
        if (api_version == "v1") && gs(r, "kind") == "Event" {
            e.invalid(path, go_json(Some(r)), "/v1, Kind=Event is disallowed from being an owner");
        }
        if gb(r, "controller") == Some(true) {
            let cur = format!("{}/{}", gs(r, "kind"), gs(r, "name"));
            if !first_controller.is_empty() {
                e.invalid(
                    path,
                    go_json(Some(&Value::Array(refs.to_vec()))),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {cur}"
                    ),
                );
            } else {
                first_controller = cur;
            }
        }
    }
}

fn is_standard_finalizer(f: &str) -> bool {
    matches!(f, "kubernetes" | "orphan" | "foregroundDeletion")
}

fn validate_finalizers(fins: &[Value], path: &str, e: &mut Errs) {
    let names: Vec<&str> = fins.iter().map(|f| f.as_str().unwrap_or("")).collect();
    for f in &names {
        validate_qualified_name(f, path, e);
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        let list: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        e.invalid(path, go_string_list(&list), "finalizer orphan and foregroundDeletion cannot be both set");
    }
}

fn validate_object_meta(obj: &Value, group: &str, kind: &str, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let meta = obj.get("metadata").unwrap_or(&empty);
    let rule = name_rule(group, kind);
    let gen_name = gs(meta, "generateName");
    if !gen_name.is_empty() {
        for m in check_name(rule, gen_name, true) {
            e.invalid_str("metadata.generateName", gen_name, &m);
        }
    }
    let name = gs(meta, "name");
    if name.is_empty() {
        e.required("metadata.name", "name or generateName is required");
    } else {
        for m in check_name(rule, name, false) {
            e.invalid_str("metadata.name", name, &m);
        }
    }
    let ns = gs(meta, "namespace");
    match namespaced(group, kind) {
        Some(false) => {
            if !ns.is_empty() {
                e.forbidden("metadata.namespace", "not allowed on this type");
            }
        }
        scope => {
            if ns.is_empty() {
                if scope == Some(true) {
                    e.required("metadata.namespace", "");
                }
            } else {
                for m in check_name(NameRule::Label, ns, false) {
                    e.invalid_str("metadata.namespace", ns, &m);
                }
            }
        }
    }
    e.nonnegative("metadata.generation", gi(meta, "generation"));
    validate_labels(meta.get("labels"), "metadata.labels", e);
    validate_annotations(meta.get("annotations"), "metadata.annotations", e);
    validate_owner_references(ga(meta, "ownerReferences"), "metadata.ownerReferences", e);
    validate_finalizers(ga(meta, "finalizers"), "metadata.finalizers", e);
}

fn validate_object_meta_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let meta = obj.get("metadata").unwrap_or(&empty);
    let old_meta = old.get("metadata").unwrap_or(&empty);
    if present(old_meta, "deletionTimestamp") {
        let old_f: BTreeSet<&str> = ga(old_meta, "finalizers").iter().filter_map(Value::as_str).collect();
        let extra: BTreeSet<&str> =
            ga(meta, "finalizers").iter().filter_map(Value::as_str).filter(|f| !old_f.contains(f)).collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            e.forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_list(&list)
                ),
            );
        }
    }
    for f in ["name", "namespace", "uid"] {
        let new_v = gs(meta, f);
        let old_v = gs(old_meta, f);
        if !new_v.is_empty() && new_v != old_v {
            e.invalid_str(&format!("metadata.{f}"), new_v, IMMUTABLE);
        }
    }
    validate_labels(meta.get("labels"), "metadata.labels", e);
    validate_annotations(meta.get("annotations"), "metadata.annotations", e);
    validate_owner_references(ga(meta, "ownerReferences"), "metadata.ownerReferences", e);
}

// =============================================================================================
// Label selectors

fn validate_label_selector(sel: Option<&Value>, path: &str, e: &mut Errs) {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return;
    };
    validate_labels(sel.get("matchLabels"), &child(path, "matchLabels"), e);
    for (i, r) in ga(sel, "matchExpressions").iter().enumerate() {
        let rp = idx(&child(path, "matchExpressions"), i);
        let values = ga(r, "values");
        match gs(r, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    e.required(&child(&rp, "values"), "must be specified when `operator` is 'In' or 'NotIn'");
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    e.forbidden(
                        &child(&rp, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            op => e.invalid_str(&child(&rp, "operator"), op, "not a valid selector operator"),
        }
        validate_label_name(gs(r, "key"), &child(&rp, "key"), e);
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for m in is_valid_label_value(v) {
                e.invalid_str(&idx(&child(&rp, "values"), j), v, &m);
            }
        }
    }
}

/// A parsed label selector: `None` means "nothing" (nil selector), otherwise the requirements.
enum Selector {
    Nothing,
    Reqs(Vec<(String, String, Vec<String>)>),
}

impl Selector {
    /// `metav1.LabelSelectorAsSelector`; `Err` for an invalid operator.
    fn from(sel: Option<&Value>) -> Result<Selector, ()> {
        let Some(sel) = sel.filter(|s| s.is_object()) else {
            return Ok(Selector::Nothing);
        };
        let mut reqs = Vec::new();
        for (k, v) in sorted_entries(gm(sel, "matchLabels")) {
            reqs.push((k.clone(), "In".to_string(), vec![v.as_str().unwrap_or("").to_string()]));
        }
        for r in ga(sel, "matchExpressions") {
            let op = gs(r, "operator");
            if !matches!(op, "In" | "NotIn" | "Exists" | "DoesNotExist") {
                return Err(());
            }
            let vals = ga(r, "values").iter().map(|v| v.as_str().unwrap_or("").to_string()).collect();
            reqs.push((gs(r, "key").to_string(), op.to_string(), vals));
        }
        Ok(Selector::Reqs(reqs))
    }

    fn is_empty(&self) -> bool {
        matches!(self, Selector::Reqs(r) if r.is_empty())
    }

    fn matches(&self, labels: Option<&Value>) -> bool {
        let Selector::Reqs(reqs) = self else {
            return false;
        };
        let labels = labels.and_then(Value::as_object);
        reqs.iter().all(|(k, op, vals)| {
            let have = labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            match op.as_str() {
                "In" => have.is_some_and(|h| vals.iter().any(|v| v == h)),
                "NotIn" => have.is_none_or(|h| !vals.iter().any(|v| v == h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
    }
}

fn selector_is_empty_value(sel: &Value) -> bool {
    gm(sel, "matchLabels").is_none_or(Map::is_empty) && ga(sel, "matchExpressions").is_empty()
}

// =============================================================================================
// Pod specs (pkg/apis/core/validation: ValidatePodSpec and friends)

#[derive(Clone, Copy, Default)]
struct PodOpts {
    /// The spec belongs to a Pod (not a template embedded in another object).
    resource_is_pod: bool,
}

const SUPPORTED_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn validate_pod_spec(spec: &Value, pod_name: Option<&str>, path: &str, opts: PodOpts, e: &mut Errs) {
    if !present(spec, "terminationGracePeriodSeconds") {
        e.required(&child(path, "terminationGracePeriodSeconds"), "");
    }
    let grace = gi(spec, "terminationGracePeriodSeconds");
    let restart = gs(spec, "restartPolicy");
    let vols = validate_volumes(ga(spec, "volumes"), pod_name, &child(path, "volumes"), e);
    let claim_names: BTreeSet<String> =
        ga(spec, "resourceClaims").iter().map(|c| gs(c, "name").to_string()).filter(|n| !n.is_empty()).collect();
    validate_pod_resource_claims(ga(spec, "resourceClaims"), &child(path, "resourceClaims"), e);
    validate_containers(ga(spec, "containers"), &vols, &claim_names, grace, &child(path, "containers"), restart, e);
    validate_init_containers(
        ga(spec, "initContainers"),
        ga(spec, "containers"),
        &vols,
        &claim_names,
        grace,
        &child(path, "initContainers"),
        restart,
        e,
    );
    validate_ephemeral_containers(spec, &vols, &claim_names, &child(path, "ephemeralContainers"), restart, e);
    if let Some(res) = spec.get("resources").filter(|r| r.is_object()) {
        validate_pod_level_resources(res, &child(path, "resources"), e);
    }
    // validatePodHostNetworkDeps
    if gb(spec, "hostNetwork") == Some(true) {
        let cpath = child(path, "containers");
        for (i, c) in ga(spec, "containers").iter().enumerate() {
            for (j, p) in ga(c, "ports").iter().enumerate() {
                let hp = gi(p, "hostPort").unwrap_or(0);
                let cp = gi(p, "containerPort").unwrap_or(0);
                if (opts.resource_is_pod || hp != 0) && hp != cp {
                    e.invalid_int(
                        &child(&idx(&child(&idx(&cpath, i), "ports"), j), "hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    );
                }
            }
        }
    }
    match restart {
        "Always" | "OnFailure" | "Never" => {}
        "" => e.required(&child(path, "restartPolicy"), ""),
        other => e.not_supported_str(&child(path, "restartPolicy"), other, &["Always", "OnFailure", "Never"]),
    }
    let dns_policy = gs(spec, "dnsPolicy");
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => e.required(&child(path, "dnsPolicy"), ""),
        other => e.not_supported_str(
            &child(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ),
    }
    validate_labels(spec.get("nodeSelector"), &child(path, "nodeSelector"), e);
    validate_pod_security_context(spec, &child(path, "securityContext"), path, e);
    validate_affinity(spec.get("affinity"), &child(path, "affinity"), e);
    validate_dns_config(spec.get("dnsConfig"), dns_policy, &child(path, "dnsConfig"), e);
    for (i, g) in ga(spec, "readinessGates").iter().enumerate() {
        validate_qualified_name(
            gs(g, "conditionType"),
            &child(&idx(&child(path, "readinessGates"), i), "conditionType"),
            e,
        );
    }
    let mut seen_gates = BTreeSet::new();
    for (i, g) in ga(spec, "schedulingGates").iter().enumerate() {
        let p = idx(&child(path, "schedulingGates"), i);
        let n = gs(g, "name");
        validate_qualified_name(n, &p, e);
        if !seen_gates.insert(n.to_string()) {
            e.duplicate(&p, q(n));
        }
    }
    validate_topology_spread(ga(spec, "topologySpreadConstraints"), &child(path, "topologySpreadConstraints"), e);
    let san = gs(spec, "serviceAccountName");
    if !san.is_empty() {
        for m in is_dns1123_subdomain(san) {
            e.invalid_str(&child(path, "serviceAccountName"), san, &m);
        }
    }
    let node_name = gs(spec, "nodeName");
    if !node_name.is_empty() {
        for m in is_dns1123_subdomain(node_name) {
            e.invalid_str(&child(path, "nodeName"), node_name, &m);
        }
    }
    if let Some(ads) = gi(spec, "activeDeadlineSeconds") {
        if !(1..=MAX_INT32).contains(&ads) {
            e.invalid_int(&child(path, "activeDeadlineSeconds"), ads, &inclusive_range_error(1, MAX_INT32));
        }
    }
    for f in ["hostname", "subdomain"] {
        let v = gs(spec, f);
        if !v.is_empty() {
            validate_dns1123_label(v, &child(path, f), e);
        }
    }
    validate_tolerations(ga(spec, "tolerations"), &child(path, "tolerations"), e);
    for (i, ha) in ga(spec, "hostAliases").iter().enumerate() {
        let hp = idx(&child(path, "hostAliases"), i);
        let ip = gs(ha, "ip");
        for m in ip_errors(ip) {
            e.invalid_str(&child(&hp, "ip"), ip, &m);
        }
        for (j, h) in ga(ha, "hostnames").iter().enumerate() {
            validate_dns1123_subdomain(h.as_str().unwrap_or(""), &idx(&child(&hp, "hostnames"), j), e);
        }
    }
    let pcn = gs(spec, "priorityClassName");
    if !pcn.is_empty() {
        for m in is_dns1123_subdomain(pcn) {
            e.invalid_str(&child(path, "priorityClassName"), pcn, &m);
        }
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(Value::as_str) {
        validate_dns1123_subdomain(rc, &child(path, "runtimeClassName"), e);
    }
    if let Some(pp) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => e.required(&child(path, "preemptionPolicy"), ""),
            other => e.not_supported_str(&child(path, "preemptionPolicy"), other, &["PreemptLowerPriority", "Never"]),
        }
    }
    if let Some(oh) = spec.get("overhead").filter(|o| o.is_object()) {
        let req = serde_json::json!({ "limits": oh });
        validate_resource_requirements(&req, &BTreeSet::new(), &child(path, "overhead"), ResourceKind::Container, e);
    }
    if let Some(os) = spec.get("os").filter(|o| o.is_object()) {
        let n = gs(os, "name");
        if n.is_empty() {
            e.required(&child(&child(path, "os"), "name"), "");
        } else if n != "linux" && n != "windows" {
            e.not_supported_str(&child(&child(path, "os"), "name"), n, &["linux", "windows"]);
        }
    }
}

fn validate_pod_resource_claims(claims: &[Value], path: &str, e: &mut Errs) {
    let mut names = BTreeSet::new();
    for (i, c) in claims.iter().enumerate() {
        let p = idx(path, i);
        let n = gs(c, "name");
        if n.is_empty() {
            e.required(&child(&p, "name"), "");
        } else if !names.insert(n.to_string()) {
            e.duplicate(&child(&p, "name"), q(n));
        } else {
            validate_dns1123_label(n, &child(&p, "name"), e);
        }
        let has_claim = present(c, "resourceClaimName");
        let has_tmpl = present(c, "resourceClaimTemplateName");
        if has_claim && has_tmpl {
            e.invalid(
                &p,
                go_json(Some(c)),
                "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified",
            );
        }
        if !has_claim && !has_tmpl {
            e.invalid(&p, go_json(Some(c)), "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`");
        }
    }
}

// ---- volumes

const SUPPORTED_HOST_PATH_TYPES: &[&str] =
    &["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"];

/// Volume source field names, with the path segment upstream uses for the "more than 1 volume
/// type" error.
const VOLUME_SOURCE_FIELDS: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// Returns the valid volumes by name.
fn validate_volumes<'a>(
    vols: &'a [Value],
    pod_name: Option<&str>,
    path: &str,
    e: &mut Errs,
) -> BTreeMap<String, &'a Value> {
    let mut out = BTreeMap::new();
    let created_pvcs: BTreeSet<String> = match pod_name {
        Some(n) if !n.is_empty() => {
            vols.iter().filter(|v| present(v, "ephemeral")).map(|v| format!("{n}-{}", gs(v, "name"))).collect()
        }
        _ => BTreeSet::new(),
    };
    for (i, v) in vols.iter().enumerate() {
        let p = idx(path, i);
        let name = gs(v, "name");
        let mut el = Errs::default();
        validate_volume_source(v, &p, name, pod_name, &mut el);
        if name.is_empty() {
            el.required(&child(&p, "name"), "");
        } else {
            validate_dns1123_label(name, &child(&p, "name"), &mut el);
        }
        if out.contains_key(name) {
            el.duplicate(&child(&p, "name"), q(name));
        }
        if el.0.is_empty() {
            out.insert(name.to_string(), v);
        } else {
            e.0.extend(el.0);
        }
        if let Some(pvc) = v.get("persistentVolumeClaim") {
            let cn = gs(pvc, "claimName");
            if created_pvcs.contains(cn) {
                e.invalid_str(
                    &child(&child(&p, "persistentVolumeClaim"), "claimName"),
                    cn,
                    "must not reference a PVC that gets created for an ephemeral volume",
                );
            }
        }
    }
    out
}

fn validate_volume_source(v: &Value, path: &str, vol_name: &str, pod_name: Option<&str>, e: &mut Errs) {
    let mut num = 0;
    for (field, err_seg) in VOLUME_SOURCE_FIELDS {
        let Some(src) = v.get(*field).filter(|s| !s.is_null()) else {
            continue;
        };
        if num > 0 {
            e.forbidden(&child(path, err_seg), "may not specify more than 1 volume type");
            continue;
        }
        num += 1;
        let sp = child(path, field);
        match *field {
            "emptyDir" => {
                if let Some(q) = src.get("sizeLimit").and_then(Value::as_str).and_then(parse_quantity) {
                    if q.nanos < 0 {
                        e.forbidden(&child(&sp, "sizeLimit"), "SizeLimit field must be a valid resource quantity");
                    }
                }
            }
            "hostPath" => validate_host_path(src, &sp, e),
            "secret" => {
                if gs(src, "secretName").is_empty() {
                    e.required(&child(&sp, "secretName"), "");
                }
                validate_file_mode(src.get("defaultMode"), &child(&sp, "defaultMode"), e);
                for (j, kp) in ga(src, "items").iter().enumerate() {
                    validate_key_to_path(kp, &idx(&child(&sp, "items"), j), e);
                }
            }
            "configMap" => {
                if gs(src, "name").is_empty() {
                    e.required(&child(&sp, "name"), "");
                }
                validate_file_mode(src.get("defaultMode"), &child(&sp, "defaultMode"), e);
                for (j, kp) in ga(src, "items").iter().enumerate() {
                    validate_key_to_path(kp, &idx(&child(&sp, "items"), j), e);
                }
            }
            "persistentVolumeClaim" if gs(src, "claimName").is_empty() => {
                e.required(&child(&sp, "claimName"), "");
            }
            "nfs" => {
                if gs(src, "server").is_empty() {
                    e.required(&child(&sp, "server"), "");
                }
                let p = gs(src, "path");
                if p.is_empty() {
                    e.required(&child(&sp, "path"), "");
                }
                if !p.starts_with('/') {
                    e.invalid_str(&child(&sp, "path"), p, "must be an absolute path");
                }
            }
            "downwardAPI" => {
                validate_file_mode(src.get("defaultMode"), &child(&sp, "defaultMode"), e);
                for item in ga(src, "items") {
                    validate_downward_api_file(item, &sp, e);
                }
            }
            "projected" => validate_projected(src, &sp, e),
            "csi" => {
                let d = gs(src, "driver");
                if d.is_empty() {
                    e.required(&child(&sp, "driver"), "");
                }
            }
            "ephemeral" => {
                match src.get("volumeClaimTemplate").filter(|t| t.is_object()) {
                    None => e.required(&child(&sp, "volumeClaimTemplate"), ""),
                    Some(t) => {
                        let spec = t.get("spec").cloned().unwrap_or(Value::Object(Map::new()));
                        validate_pvc_spec(&spec, &child(&child(&sp, "volumeClaimTemplate"), "spec"), e);
                    }
                }
                if let Some(pn) = pod_name.filter(|n| !n.is_empty()) {
                    if !vol_name.is_empty() {
                        let pvc_name = format!("{pn}-{vol_name}");
                        for m in is_dns1123_subdomain(&pvc_name) {
                            e.invalid_str(&child(path, "name"), vol_name, &format!("PVC name {}: {m}", q(&pvc_name)));
                        }
                    }
                }
            }
            "image" => {
                if gs(src, "reference").is_empty() {
                    e.required(&child(&sp, "reference"), "");
                }
                let pp = gs(src, "pullPolicy");
                match pp {
                    "Always" | "IfNotPresent" | "Never" => {}
                    "" => e.required(&child(&sp, "pullPolicy"), ""),
                    other => {
                        e.not_supported_str(&child(&sp, "pullPolicy"), other, &["Always", "IfNotPresent", "Never"])
                    }
                }
            }
            "gitRepo" if gs(src, "repository").is_empty() => {
                e.required(&child(&sp, "repository"), "");
            }
            _ => {}
        }
    }
    if num == 0 {
        e.required(path, "must specify a volume type");
    }
}

fn validate_host_path(src: &Value, sp: &str, e: &mut Errs) {
    let p = gs(src, "path");
    if p.is_empty() {
        e.required(&child(sp, "path"), "");
        return;
    }
    validate_path_no_backsteps(p, &child(sp, "path"), e);
    if let Some(t) = src.get("type").and_then(Value::as_str) {
        if !SUPPORTED_HOST_PATH_TYPES.contains(&t) {
            e.not_supported_str(&child(sp, "type"), t, SUPPORTED_HOST_PATH_TYPES);
        }
    }
}

fn validate_file_mode(mode: Option<&Value>, path: &str, e: &mut Errs) {
    if let Some(m) = mode.and_then(Value::as_i64) {
        if !(0..=0o777).contains(&m) {
            e.invalid_int(path, m, FILE_MODE_ERR);
        }
    }
}

fn validate_path_no_backsteps(p: &str, path: &str, e: &mut Errs) {
    if p.replace('\\', "/").split('/').any(|s| s == "..") {
        e.invalid_str(path, p, "must not contain '..'");
    }
}

fn validate_local_descending_path(p: &str, path: &str, e: &mut Errs) {
    if p.starts_with('/') {
        e.invalid_str(path, p, "must be a relative path");
    }
    validate_path_no_backsteps(p, path, e);
}

fn validate_local_non_reserved_path(p: &str, path: &str, e: &mut Errs) {
    validate_local_descending_path(p, path, e);
    if p.starts_with("..") && !p.starts_with("../") {
        e.invalid_str(path, p, "must not start with '..'");
    }
}

fn validate_key_to_path(kp: &Value, path: &str, e: &mut Errs) {
    if gs(kp, "key").is_empty() {
        e.required(&child(path, "key"), "");
    }
    let p = gs(kp, "path");
    if p.is_empty() {
        e.required(&child(path, "path"), "");
    }
    validate_local_non_reserved_path(p, &child(path, "path"), e);
    validate_file_mode(kp.get("mode"), &child(path, "mode"), e);
}

const VOLUME_FIELD_PATHS: &[&str] =
    &["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const CONTAINER_RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn validate_downward_api_file(item: &Value, path: &str, e: &mut Errs) {
    let p = gs(item, "path");
    if p.is_empty() {
        e.required(&child(path, "path"), "");
    }
    validate_local_non_reserved_path(p, &child(path, "path"), e);
    if let Some(fr) = item.get("fieldRef").filter(|f| f.is_object()) {
        validate_object_field_selector(fr, VOLUME_FIELD_PATHS, &child(path, "fieldRef"), e);
        if present(item, "resourceFieldRef") {
            e.invalid_str(path, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously");
        }
    } else if let Some(rf) = item.get("resourceFieldRef").filter(|f| f.is_object()) {
        validate_resource_field_selector(rf, &child(path, "resourceFieldRef"), true, e);
    } else {
        e.required(path, "one of fieldRef and resourceFieldRef is required");
    }
    validate_file_mode(item.get("mode"), &child(path, "mode"), e);
}

fn validate_projected(src: &Value, sp: &str, e: &mut Errs) {
    validate_file_mode(src.get("defaultMode"), &child(sp, "defaultMode"), e);
    let mut all_paths = BTreeSet::new();
    for (i, s) in ga(src, "sources").iter().enumerate() {
        let srcp = idx(&child(sp, "sources"), i);
        let mut n = 0;
        for kind in ["secret", "configMap"] {
            if let Some(x) = s.get(kind).filter(|x| x.is_object()) {
                n += 1;
                let pp = child(&srcp, kind);
                if gs(x, "name").is_empty() {
                    e.required(&child(&pp, "name"), "");
                }
                for (j, kp) in ga(x, "items").iter().enumerate() {
                    validate_key_to_path(kp, &idx(&child(&pp, "items"), j), e);
                    let p = gs(kp, "path");
                    if !p.is_empty() && !all_paths.insert(p.to_string()) {
                        e.invalid_str(sp, gs(x, "name"), "conflicting duplicate paths");
                    }
                }
            }
        }
        if let Some(d) = s.get("downwardAPI").filter(|x| x.is_object()) {
            n += 1;
            let pp = child(&srcp, "downwardAPI");
            for item in ga(d, "items") {
                validate_downward_api_file(item, &pp, e);
                let p = gs(item, "path");
                if !p.is_empty() && !all_paths.insert(p.to_string()) {
                    e.invalid_str(sp, p, "conflicting duplicate paths");
                }
            }
        }
        if let Some(t) = s.get("serviceAccountToken").filter(|x| x.is_object()) {
            n += 1;
            let pp = child(&srcp, "serviceAccountToken");
            let exp = gi(t, "expirationSeconds").unwrap_or(0);
            if exp < 600 {
                e.invalid_int(&child(&pp, "expirationSeconds"), exp, "may not specify a duration less than 10 minutes");
            }
            if exp > 1i64 << 32 {
                e.invalid_int(
                    &child(&pp, "expirationSeconds"),
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                );
            }
            let p = gs(t, "path");
            if p.is_empty() {
                e.required(&child(sp, "path"), "");
            } else {
                validate_local_non_reserved_path(p, &child(sp, "path"), e);
            }
        }
        if s.get("clusterTrustBundle").is_some_and(Value::is_object) {
            n += 1;
        }
        if n > 1 {
            e.forbidden(&srcp, "may not specify more than 1 volume type per source");
        }
    }
}

fn validate_object_field_selector(fs: &Value, allowed: &[&str], path: &str, e: &mut Errs) {
    let api_version = gs(fs, "apiVersion");
    if api_version.is_empty() {
        e.required(&child(path, "apiVersion"), "");
        return;
    }
    let fp = gs(fs, "fieldPath");
    if fp.is_empty() {
        e.required(&child(path, "fieldPath"), "");
        return;
    }
    if api_version != "v1" {
        e.invalid_str(
            &child(path, "fieldPath"),
            fp,
            &format!("error converting fieldPath: unsupported pod version: {api_version}"),
        );
        return;
    }
    // fieldpath.SplitMaybeSubscriptedPath: `path['subscript']`
    let subscripted =
        fp.strip_suffix("']").and_then(|s| s.split_once("['")).map(|(p, sub)| (p.to_string(), sub.to_string()));
    if let Some((p, sub)) = subscripted {
        match p.as_str() {
            "metadata.annotations" => validate_qualified_name(&sub.to_lowercase(), path, e),
            "metadata.labels" => validate_qualified_name(&sub, path, e),
            _ => e.invalid_str(
                &child(path, "fieldPath"),
                fp,
                &format!("error converting fieldPath: field label does not support subscript: {fp}"),
            ),
        }
        return;
    }
    const CONVERTIBLE: &[&str] = &[
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
        "spec.host",
    ];
    if !CONVERTIBLE.contains(&fp) {
        e.invalid_str(
            &child(path, "fieldPath"),
            fp,
            &format!("error converting fieldPath: field label not supported: {fp}"),
        );
        return;
    }
    let internal = if fp == "spec.host" { "spec.nodeName" } else { fp };
    if !allowed.contains(&internal) {
        e.not_supported_str(&child(path, "fieldPath"), internal, allowed);
    }
}

fn validate_resource_field_selector(rf: &Value, path: &str, volume: bool, e: &mut Errs) {
    let res = gs(rf, "resource");
    if volume && gs(rf, "containerName").is_empty() {
        e.required(&child(path, "containerName"), "");
    } else if res.is_empty() {
        e.required(&child(path, "resource"), "");
    } else if !CONTAINER_RESOURCE_FIELD_PATHS.contains(&res)
        && !res.starts_with("requests.hugepages-")
        && !res.starts_with("limits.hugepages-")
    {
        e.not_supported_str(&child(path, "resource"), res, CONTAINER_RESOURCE_FIELD_PATHS);
    }
    let divisor = rf.get("divisor").and_then(Value::as_str).and_then(parse_quantity);
    if let Some(d) = divisor.filter(|d| d.nanos != 0) {
        let ds = canonical_quantity(&d);
        let mem_ok = ["1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"];
        let dp = child(path, "divisor");
        match res {
            "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&ds.as_str()) => {
                e.invalid_str(&dp, res, "only divisor's values 1m and 1 are supported with the cpu resource")
            }
            "limits.memory" | "requests.memory" if !mem_ok.contains(&ds.as_str()) => e.invalid_str(
                &dp,
                res,
                "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
            ),
            "limits.ephemeral-storage" | "requests.ephemeral-storage" if !mem_ok.contains(&ds.as_str()) => e.invalid_str(
                &dp,
                res,
                "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource",
            ),
            _ => {}
        }
    }
}

// ---- containers

#[allow(clippy::too_many_arguments)]
fn validate_containers(
    containers: &[Value],
    vols: &BTreeMap<String, &Value>,
    claims: &BTreeSet<String>,
    grace: Option<i64>,
    path: &str,
    restart: &str,
    e: &mut Errs,
) {
    if containers.is_empty() {
        e.required(path, "");
        return;
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = idx(path, i);
        validate_container_common(c, vols, claims, &p, restart, e);
        let n = gs(c, "name");
        if !names.insert(n.to_string()) {
            e.duplicate(&child(&p, "name"), q(n));
        }
        if let Some(lc) = c.get("lifecycle").filter(|l| l.is_object()) {
            validate_lifecycle(lc, grace, &child(&p, "lifecycle"), e);
        }
        validate_probe_kind(c.get("livenessProbe"), grace, &child(&p, "livenessProbe"), ProbeKind::Liveness, e);
        validate_probe_kind(c.get("readinessProbe"), grace, &child(&p, "readinessProbe"), ProbeKind::Readiness, e);
        validate_probe_kind(c.get("startupProbe"), grace, &child(&p, "startupProbe"), ProbeKind::Startup, e);
        if present(c, "restartPolicy") {
            e.forbidden(&child(&p, "restartPolicy"), "may not be set for non-init containers");
        }
    }
    check_host_port_conflicts(containers, path, e);
}

fn check_host_port_conflicts(containers: &[Value], path: &str, e: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, p) in ga(c, "ports").iter().enumerate() {
            let hp = gi(p, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let s = format!("{}/{}/{}", gs(p, "protocol"), gs(p, "hostIP"), hp);
            if !seen.insert(s.clone()) {
                e.duplicate(&child(&idx(&child(&idx(path, ci), "ports"), pi), "hostPort"), q(&s));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn validate_init_containers(
    inits: &[Value],
    regular: &[Value],
    vols: &BTreeMap<String, &Value>,
    claims: &BTreeSet<String>,
    grace: Option<i64>,
    path: &str,
    restart: &str,
    e: &mut Errs,
) {
    let mut names: BTreeSet<String> = regular.iter().map(|c| gs(c, "name").to_string()).collect();
    for (i, c) in inits.iter().enumerate() {
        let p = idx(path, i);
        validate_container_common(c, vols, claims, &p, restart, e);
        let mut restart_always = false;
        if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
            if rp != "Always" {
                e.not_supported_str(&child(&p, "restartPolicy"), rp, &["Always"]);
            }
            restart_always = rp == "Always";
        }
        let n = gs(c, "name");
        if names.contains(n) {
            e.duplicate(&child(&p, "name"), q(n));
        } else if !n.is_empty() {
            names.insert(n.to_string());
        }
        check_host_port_conflicts(std::slice::from_ref(c), path, e);
        if restart_always {
            if let Some(lc) = c.get("lifecycle").filter(|l| l.is_object()) {
                validate_lifecycle(lc, grace, &child(&p, "lifecycle"), e);
            }
            validate_probe_kind(c.get("livenessProbe"), grace, &child(&p, "livenessProbe"), ProbeKind::Liveness, e);
            validate_probe_kind(c.get("readinessProbe"), grace, &child(&p, "readinessProbe"), ProbeKind::Readiness, e);
            validate_probe_kind(c.get("startupProbe"), grace, &child(&p, "startupProbe"), ProbeKind::Startup, e);
        } else {
            for f in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if present(c, f) {
                    e.forbidden(&child(&p, f), "may not be set for init containers without restartPolicy=Always");
                }
            }
        }
    }
}

const EPHEMERAL_ALLOWED: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "envFrom",
    "env",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];

fn validate_ephemeral_containers(
    spec: &Value,
    vols: &BTreeMap<String, &Value>,
    claims: &BTreeSet<String>,
    path: &str,
    restart: &str,
    e: &mut Errs,
) {
    let ecs = ga(spec, "ephemeralContainers");
    if ecs.is_empty() {
        return;
    }
    let mut other: BTreeSet<String> = BTreeSet::new();
    for k in ["containers", "initContainers"] {
        for c in ga(spec, k) {
            other.insert(gs(c, "name").to_string());
        }
    }
    let mut all = other.clone();
    for (i, c) in ecs.iter().enumerate() {
        let p = idx(path, i);
        validate_container_common(c, vols, claims, &p, restart, e);
        let image = gs(c, "image");
        if image.trim() != image {
            e.invalid_str(&child(&p, "image"), image, "must not have leading or trailing whitespace");
        }
        let n = gs(c, "name");
        if !all.insert(n.to_string()) {
            e.duplicate(&child(&p, "name"), q(n));
        }
        let target = gs(c, "targetContainerName");
        if !target.is_empty() && !other.contains(target) {
            e.not_found(&child(&p, "targetContainerName"), q(target));
        }
        if let Some(m) = c.as_object() {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                let v = &m[k.as_str()];
                let is_zero = match v {
                    Value::Null => true,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    Value::String(s) => s.is_empty(),
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                };
                if !EPHEMERAL_ALLOWED.contains(&k.as_str()) && !is_zero {
                    e.forbidden(&child(&p, k), "cannot be set for an Ephemeral Container");
                }
            }
        }
        for (j, vm) in ga(c, "volumeMounts").iter().enumerate() {
            let vp = idx(&child(&p, "volumeMounts"), j);
            if !gs(vm, "subPath").is_empty() {
                e.forbidden(&child(&vp, "subPath"), "cannot be set for an Ephemeral Container");
            }
            if !gs(vm, "subPathExpr").is_empty() {
                e.forbidden(&child(&vp, "subPathExpr"), "cannot be set for an Ephemeral Container");
            }
        }
    }
}

fn validate_container_common(
    c: &Value,
    vols: &BTreeMap<String, &Value>,
    claims: &BTreeSet<String>,
    path: &str,
    restart: &str,
    e: &mut Errs,
) {
    let name = gs(c, "name");
    if name.is_empty() {
        e.required(&child(path, "name"), "");
    } else {
        validate_dns1123_label(name, &child(path, "name"), e);
    }
    if gs(c, "image").is_empty() {
        e.required(&child(path, "image"), "");
    }
    match gs(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => e.required(&child(path, "terminationMessagePolicy"), ""),
        other => {
            e.not_supported_str(&child(path, "terminationMessagePolicy"), other, &["File", "FallbackToLogsOnError"])
        }
    }
    validate_container_ports(ga(c, "ports"), &child(path, "ports"), e);
    validate_env(ga(c, "env"), &child(path, "env"), e);
    validate_env_from(ga(c, "envFrom"), &child(path, "envFrom"), e);
    let device_names: BTreeMap<String, String> =
        ga(c, "volumeDevices").iter().map(|d| (gs(d, "name").to_string(), gs(d, "devicePath").to_string())).collect();
    let mount_names: BTreeMap<String, String> =
        ga(c, "volumeMounts").iter().map(|m| (gs(m, "name").to_string(), gs(m, "mountPath").to_string())).collect();
    validate_volume_mounts(c, &device_names, vols, &child(path, "volumeMounts"), e);
    validate_volume_devices(ga(c, "volumeDevices"), &mount_names, vols, &child(path, "volumeDevices"), e);
    match gs(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => e.required(&child(path, "imagePullPolicy"), ""),
        other => e.not_supported_str(&child(path, "imagePullPolicy"), other, &["Always", "IfNotPresent", "Never"]),
    }
    if let Some(res) = c.get("resources").filter(|r| r.is_object()) {
        validate_resource_requirements(res, claims, &child(path, "resources"), ResourceKind::Container, e);
    }
    validate_resize_policy(ga(c, "resizePolicy"), &child(path, "resizePolicy"), restart, e);
    if let Some(sc) = c.get("securityContext").filter(|s| s.is_object()) {
        validate_security_context(sc, &child(path, "securityContext"), e);
    }
}

fn validate_container_ports(ports: &[Value], path: &str, e: &mut Errs) {
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = idx(path, i);
        let name = gs(p, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    e.invalid_str(&child(&pp, "name"), name, &m);
                }
            } else if !names.insert(name.to_string()) {
                e.duplicate(&child(&pp, "name"), q(name));
            }
        }
        let cp = gi(p, "containerPort").unwrap_or(0);
        if cp == 0 {
            e.required(&child(&pp, "containerPort"), "");
        } else {
            for m in is_valid_port_num(cp) {
                e.invalid_int(&child(&pp, "containerPort"), cp, &m);
            }
        }
        let hp = gi(p, "hostPort").unwrap_or(0);
        if hp != 0 {
            for m in is_valid_port_num(hp) {
                e.invalid_int(&child(&pp, "hostPort"), hp, &m);
            }
        }
        let proto = gs(p, "protocol");
        if proto.is_empty() {
            e.required(&child(&pp, "protocol"), "");
        } else if !SUPPORTED_PROTOCOLS.contains(&proto) {
            e.not_supported_str(&child(&pp, "protocol"), proto, SUPPORTED_PROTOCOLS);
        }
    }
}

fn validate_env(env: &[Value], path: &str, e: &mut Errs) {
    for (i, ev) in env.iter().enumerate() {
        let p = idx(path, i);
        let name = gs(ev, "name");
        if name.is_empty() {
            e.required(&child(&p, "name"), "");
        } else {
            for m in is_relaxed_env_var_name(name) {
                e.invalid_str(&child(&p, "name"), name, &m);
            }
        }
        let Some(vf) = ev.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        let vp = child(&p, "valueFrom");
        let mut n = 0;
        if let Some(fr) = vf.get("fieldRef").filter(|v| v.is_object()) {
            n += 1;
            validate_object_field_selector(fr, ENV_FIELD_PATHS, &child(&vp, "fieldRef"), e);
        }
        if let Some(rf) = vf.get("resourceFieldRef").filter(|v| v.is_object()) {
            n += 1;
            validate_resource_field_selector(rf, &child(&vp, "resourceFieldRef"), false, e);
        }
        for (k, label) in [("configMapKeyRef", "configMapKeyRef"), ("secretKeyRef", "secretKeyRef")] {
            if let Some(r) = vf.get(k).filter(|v| v.is_object()) {
                n += 1;
                let rp = child(&vp, label);
                let rn = gs(r, "name");
                for m in is_dns1123_subdomain(rn) {
                    e.invalid_str(&child(&rp, "name"), rn, &m);
                }
                let key = gs(r, "key");
                if key.is_empty() {
                    e.required(&child(&rp, "key"), "");
                } else {
                    for m in is_config_map_key(key) {
                        e.invalid_str(&child(&rp, "key"), key, &m);
                    }
                }
            }
        }
        if n == 0 {
            e.invalid_str(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            );
        } else if !gs(ev, "value").is_empty() {
            e.invalid_str(&vp, "", "may not be specified when `value` is not empty");
        } else if n > 1 {
            e.invalid_str(&vp, "", "may not have more than one field specified at a time");
        }
    }
}

fn validate_env_from(env_from: &[Value], path: &str, e: &mut Errs) {
    for (i, ef) in env_from.iter().enumerate() {
        let p = idx(path, i);
        let prefix = gs(ef, "prefix");
        if !prefix.is_empty() {
            for m in is_relaxed_env_var_name(prefix) {
                e.invalid_str(&child(&p, "prefix"), prefix, &m);
            }
        }
        let mut n = 0;
        for k in ["configMapRef", "secretRef"] {
            if let Some(r) = ef.get(k).filter(|v| v.is_object()) {
                n += 1;
                let rp = child(&p, k);
                let rn = gs(r, "name");
                if rn.is_empty() {
                    e.required(&child(&rp, "name"), "");
                } else {
                    for m in is_dns1123_subdomain(&mask_trailing_dash(rn)) {
                        e.invalid_str(&child(&rp, "name"), rn, &m);
                    }
                }
            }
        }
        if n == 0 {
            e.invalid_str(path, "", "must specify one of: `configMapRef` or `secretRef`");
        } else if n > 1 {
            e.invalid_str(path, "", "may not have more than one field specified at a time");
        }
    }
}

fn validate_volume_mounts(
    c: &Value,
    devices: &BTreeMap<String, String>,
    vols: &BTreeMap<String, &Value>,
    path: &str,
    e: &mut Errs,
) {
    let privileged = c.get("securityContext").and_then(|s| gb(s, "privileged")) == Some(true);
    let mut mount_points = BTreeSet::new();
    for (i, m) in ga(c, "volumeMounts").iter().enumerate() {
        let p = idx(path, i);
        let name = gs(m, "name");
        let mount_path = gs(m, "mountPath");
        if name.is_empty() {
            e.required(&child(&p, "name"), "");
        }
        if !vols.contains_key(name) {
            e.not_found(&child(&p, "name"), q(name));
        }
        if mount_path.is_empty() {
            e.required(&child(&p, "mountPath"), "");
        }
        if !mount_points.insert(mount_path.to_string()) {
            e.invalid_str(&child(&p, "mountPath"), mount_path, "must be unique");
        }
        if devices.contains_key(name) {
            e.invalid_str(&child(&p, "name"), name, "must not already exist in volumeDevices");
        }
        if devices.values().any(|d| d == mount_path) {
            e.invalid_str(&child(&p, "mountPath"), mount_path, "must not already exist as a path in volumeDevices");
        }
        let sub_path = gs(m, "subPath");
        let sub_path_expr = gs(m, "subPathExpr");
        if vols.get(name).is_some_and(|v| present(v, "image")) {
            if !sub_path.is_empty() {
                e.invalid_str(&child(&p, "subPath"), sub_path, "not allowed in image volume sources");
            }
            if !sub_path_expr.is_empty() {
                e.invalid_str(&child(&p, "subPathExpr"), sub_path_expr, "not allowed in image volume sources");
            }
        }
        if !sub_path.is_empty() {
            validate_local_descending_path(sub_path, &child(path, "subPath"), e);
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                e.invalid_str(
                    &child(&p, "subPathExpr"),
                    sub_path_expr,
                    "subPathExpr and subPath are mutually exclusive",
                );
            }
            validate_local_descending_path(sub_path_expr, &child(path, "subPathExpr"), e);
        }
        if let Some(mp) = m.get("mountPropagation").and_then(Value::as_str) {
            let fp = child(path, "mountPropagation");
            if !["Bidirectional", "HostToContainer", "None"].contains(&mp) {
                e.not_supported_str(&fp, mp, &["Bidirectional", "HostToContainer", "None"]);
            }
            if mp == "Bidirectional" && !privileged {
                e.forbidden(&fp, "Bidirectional mount propagation is available only to privileged containers");
            }
        }
        if let Some(rro) = m.get("recursiveReadOnly").and_then(Value::as_str) {
            let fp = child(path, "recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if gb(m, "readOnly") != Some(true) {
                        e.forbidden(&fp, "may only be specified when readOnly is true");
                    }
                    if m.get("mountPropagation").and_then(Value::as_str).is_some_and(|p| p != "None") {
                        e.forbidden(&fp, "may only be specified when mountPropagation is None or not specified");
                    }
                }
                other => e.not_supported_str(&fp, other, &["Disabled", "Enabled", "IfPossible"]),
            }
        }
    }
}

fn validate_volume_devices(
    devices: &[Value],
    mounts: &BTreeMap<String, String>,
    vols: &BTreeMap<String, &Value>,
    path: &str,
    e: &mut Errs,
) {
    let mut paths = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        let p = idx(path, i);
        let name = gs(d, "name");
        let dev_path = gs(d, "devicePath");
        let vol = vols.get(name);
        let is_pvc = vol.is_some_and(|v| present(v, "persistentVolumeClaim") || present(v, "ephemeral"));
        if name.is_empty() {
            e.required(&child(&p, "name"), "");
        }
        if names.contains(name) {
            e.invalid_str(&child(&p, "name"), name, "must be unique");
        }
        if vol.is_some() && !is_pvc {
            e.invalid_str(
                &child(&p, "name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            );
        }
        if vol.is_none() {
            e.not_found(&child(&p, "name"), q(name));
        }
        if dev_path.is_empty() {
            e.required(&child(&p, "devicePath"), "");
        }
        if paths.contains(dev_path) {
            e.invalid_str(&child(&p, "devicePath"), dev_path, "must be unique");
        }
        if !dev_path.is_empty() && dev_path.split('/').any(|s| s == "..") {
            e.invalid_str(&child(&p, "devicePath"), dev_path, "can not contain backsteps ('..')");
        } else {
            paths.insert(dev_path.to_string());
        }
        if mounts.contains_key(name) {
            e.invalid_str(&child(&p, "name"), name, "must not already exist in volumeMounts");
        }
        if mounts.values().any(|m| m == dev_path) {
            e.invalid_str(&child(&p, "devicePath"), dev_path, "must not already exist as a path in volumeMounts");
        }
        if !name.is_empty() {
            names.insert(name.to_string());
        }
    }
}

fn validate_resize_policy(policies: &[Value], path: &str, restart: &str, e: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (i, p) in policies.iter().enumerate() {
        let rn = gs(p, "resourceName");
        if !seen.insert(rn.to_string()) {
            e.duplicate(&idx(path, i), q(rn));
        }
        match rn {
            "cpu" | "memory" => {}
            "" => e.required(path, ""),
            other => e.not_supported_str(path, other, &["cpu", "memory"]),
        }
        let rp = gs(p, "restartPolicy");
        match rp {
            "NotRequired" | "RestartContainer" => {}
            "" => e.required(path, ""),
            other => e.not_supported_str(path, other, &["NotRequired", "RestartContainer"]),
        }
        if restart == "Never" && rp != "NotRequired" {
            e.invalid_str(path, rp, "must be 'NotRequired' when `restartPolicy` is 'Never'");
        }
    }
}

// ---- probes and handlers

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

fn validate_probe_kind(probe: Option<&Value>, grace: Option<i64>, path: &str, kind: ProbeKind, e: &mut Errs) {
    let Some(p) = probe.filter(|p| p.is_object()) else {
        return;
    };
    validate_handler(p, grace, path, false, e);
    for f in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        e.nonnegative(&child(path, f), gi(p, f));
    }
    if let Some(t) = gi(p, "terminationGracePeriodSeconds") {
        if t <= 0 {
            e.invalid_int(&child(path, "terminationGracePeriodSeconds"), t, "must be greater than 0");
        }
    }
    match kind {
        ProbeKind::Liveness | ProbeKind::Startup => {
            let st = gi(p, "successThreshold").unwrap_or(0);
            if st != 1 {
                e.invalid_int(&child(path, "successThreshold"), st, "must be 1");
            }
        }
        ProbeKind::Readiness => {
            if let Some(t) = gi(p, "terminationGracePeriodSeconds") {
                e.invalid_int(&child(path, "terminationGracePeriodSeconds"), t, "must not be set for readinessProbes");
            }
        }
    }
}

fn validate_lifecycle(lc: &Value, grace: Option<i64>, path: &str, e: &mut Errs) {
    for h in ["postStart", "preStop"] {
        if let Some(hv) = lc.get(h).filter(|v| v.is_object()) {
            validate_handler(hv, grace, &child(path, h), true, e);
        }
    }
}

fn validate_port_num_or_name(v: Option<&Value>, path: &str, e: &mut Errs) {
    match v {
        Some(Value::String(s)) => {
            for m in is_valid_port_name(s) {
                e.invalid_str(path, s, &m);
            }
        }
        Some(Value::Number(n)) => {
            let p = n.as_i64().unwrap_or(0);
            for m in is_valid_port_num(p) {
                e.invalid_int(path, p, &m);
            }
        }
        _ => {
            for m in is_valid_port_num(0) {
                e.invalid_int(path, 0, &m);
            }
        }
    }
}

fn validate_handler(h: &Value, grace: Option<i64>, path: &str, lifecycle: bool, e: &mut Errs) {
    let mut n = 0;
    let mut kinds = vec!["exec", "httpGet", "tcpSocket"];
    if lifecycle {
        kinds.push("sleep");
    } else {
        kinds.push("grpc");
    }
    // upstream order: exec, httpGet, tcpSocket, grpc, sleep
    for k in kinds {
        let Some(a) = h.get(k).filter(|v| v.is_object()) else {
            continue;
        };
        let p = child(path, k);
        if n > 0 {
            e.forbidden(&p, "may not specify more than 1 handler type");
            continue;
        }
        n += 1;
        match k {
            "exec" if ga(a, "command").is_empty() => {
                e.required(&child(&p, "command"), "");
            }
            "httpGet" => {
                if gs(a, "path").is_empty() {
                    e.required(&child(&p, "path"), "");
                }
                validate_port_num_or_name(a.get("port"), &child(&p, "port"), e);
                let scheme = gs(a, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    e.not_supported_str(&child(&p, "scheme"), scheme, &["HTTP", "HTTPS"]);
                }
                for hd in ga(a, "httpHeaders") {
                    let hn = gs(hd, "name");
                    for m in is_http_header_name(hn) {
                        e.invalid_str(&child(&p, "httpHeaders"), hn, &m);
                    }
                }
            }
            "tcpSocket" => validate_port_num_or_name(a.get("port"), &child(&p, "port"), e),
            "grpc" => {
                let port = gi(a, "port").unwrap_or(0);
                for m in is_valid_port_num(port) {
                    e.invalid_int(&child(&p, "port"), port, &m);
                }
            }
            "sleep" => {
                let secs = gi(a, "seconds").unwrap_or(0);
                if let Some(g) = grace {
                    if secs < 0 || secs > g {
                        e.invalid_int(
                            &p,
                            secs,
                            &format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        e.required(path, "must specify a handler type");
    }
}

// ---- resources

#[derive(Clone, Copy, PartialEq, Eq)]
enum ResourceKind {
    Container,
    Pod,
}

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && is_qualified_name(&format!("requests.{name}")).is_empty()
}

fn is_integer_resource(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended_resource(name)
}

fn validate_resource_name(name: &str, path: &str, e: &mut Errs) -> bool {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        for m in msgs {
            e.invalid_str(path, name, &m);
        }
        return false;
    }
    let standard = STANDARD_RESOURCES.contains(&name) || is_hugepages(name) || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        e.invalid_str(path, name, "must be a standard resource type or fully qualified");
        return false;
    }
    true
}

fn validate_container_resource_name(name: &str, path: &str, e: &mut Errs) {
    validate_resource_name(name, path, e);
    if !name.contains('/') {
        if !(STANDARD_CONTAINER_RESOURCES.contains(&name) || is_hugepages(name)) {
            e.invalid_str(path, name, "must be a standard resource for containers");
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        e.invalid_str(path, name, "doesn't follow extended resource name standard");
    }
}

/// `hugepages-<size>` quantities must be a whole multiple of the page size.
fn validate_hugepage_value(name: &str, v: &Value, path: &str, e: &mut Errs) {
    let Some(size) = name.strip_prefix("hugepages-") else {
        return;
    };
    let (Some(qv), Some(page)) = (v.as_str().and_then(parse_quantity), parse_quantity(size)) else {
        return;
    };
    if page.nanos <= 0 || qv.nanos % page.nanos != 0 {
        let qs = canonical_quantity(&qv);
        e.invalid_str(path, &qs, &format!("{qs} is not positive integer multiple of {name}"));
    }
}

fn validate_resource_quantity_value(name: &str, v: &Value, path: &str, e: &mut Errs) {
    let Some(qty) = v.as_str().and_then(parse_quantity) else {
        return;
    };
    if qty.nanos < 0 {
        e.invalid_str(path, &canonical_quantity(&qty), IS_NEGATIVE);
    }
    if is_integer_resource(name) && qty.milli() % 1000 != 0 {
        e.invalid_str(path, &canonical_quantity(&qty), "must be an integer");
    }
}

fn validate_resource_requirements(
    res: &Value,
    claims: &BTreeSet<String>,
    path: &str,
    kind: ResourceKind,
    e: &mut Errs,
) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = gm(res, "limits");
    let mut lim_cpu_mem = false;
    let mut req_cpu_mem = false;
    let mut hugepages = false;
    for (name, v) in sorted_entries(limits) {
        let fp = key(&lim_path, name);
        match kind {
            ResourceKind::Container => validate_container_resource_name(name, &fp, e),
            ResourceKind::Pod => {
                if validate_resource_name(name, &fp, e)
                    && !["cpu", "memory"].contains(&name.as_str())
                    && !is_hugepages(name)
                {
                    e.not_supported_str(&fp, name, &["cpu", "memory"]);
                }
            }
        }
        validate_resource_quantity_value(name, v, &fp, e);
        if is_hugepages(name) {
            hugepages = true;
            validate_hugepage_value(name, v, &fp, e);
        }
        if name == "cpu" || name == "memory" {
            lim_cpu_mem = true;
        }
    }
    for (name, v) in sorted_entries(gm(res, "requests")) {
        let fp = key(&req_path, name);
        match kind {
            ResourceKind::Container => validate_container_resource_name(name, &fp, e),
            ResourceKind::Pod => {
                if validate_resource_name(name, &fp, e)
                    && !["cpu", "memory"].contains(&name.as_str())
                    && !is_hugepages(name)
                {
                    e.not_supported_str(&fp, name, &["cpu", "memory"]);
                }
            }
        }
        validate_resource_quantity_value(name, v, &fp, e);
        let req_q = v.as_str().and_then(parse_quantity);
        match limits.and_then(|l| l.get(name.as_str())) {
            Some(lv) => {
                let lim_q = lv.as_str().and_then(parse_quantity);
                if let (Some(rq), Some(lq)) = (req_q, lim_q) {
                    if rq.nanos != lq.nanos && !is_overcommit_allowed(name) {
                        e.invalid_str(
                            &req_path,
                            &canonical_quantity(&rq),
                            &format!("must be equal to {name} limit of {}", canonical_quantity(&lq)),
                        );
                    } else if rq.nanos > lq.nanos {
                        e.invalid_str(
                            &req_path,
                            &canonical_quantity(&rq),
                            &format!("must be less than or equal to {name} limit of {}", canonical_quantity(&lq)),
                        );
                    }
                }
            }
            None => {
                if !is_overcommit_allowed(name) {
                    e.required(&lim_path, "Limit must be set for non overcommitable resources");
                }
            }
        }
        if is_hugepages(name) {
            hugepages = true;
            validate_hugepage_value(name, v, &fp, e);
        }
        if name == "cpu" || name == "memory" {
            req_cpu_mem = true;
        }
    }
    if !lim_cpu_mem && !req_cpu_mem && hugepages {
        e.forbidden(path, "HugePages require cpu or memory");
    }
    for (i, c) in ga(res, "claims").iter().enumerate() {
        let n = gs(c, "name");
        let cp = idx(&child(path, "claims"), i);
        if n.is_empty() {
            e.required(&cp, "");
        } else if !claims.contains(n) {
            let detail = if claims.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_string()
            } else {
                let list: Vec<&str> = claims.iter().map(String::as_str).collect();
                format!("must be one of the names in pod.spec.resourceClaims: {}", list.join(", "))
            };
            e.push(cause("FieldValueNotFound", &cp, format!("Not found: {}: {detail}", q(n))));
        }
    }
}

fn validate_pod_level_resources(res: &Value, path: &str, e: &mut Errs) {
    if present(res, "claims") {
        e.forbidden(&child(path, "claims"), "claims cannot be set for Resources at pod-level");
    }
    validate_resource_requirements(res, &BTreeSet::new(), path, ResourceKind::Pod, e);
}

// ---- security contexts

fn validate_uid_gid(v: Option<i64>, path: &str, e: &mut Errs) {
    if let Some(v) = v {
        if !(0..=MAX_INT32).contains(&v) {
            e.invalid_int(path, v, &inclusive_range_error(0, MAX_INT32));
        }
    }
}

fn validate_seccomp_profile(sp: Option<&Value>, path: &str, e: &mut Errs) {
    let Some(sp) = sp.filter(|v| v.is_object()) else {
        return;
    };
    let t = gs(sp, "type");
    match t {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => e.required(&child(path, "type"), "type is required when seccompProfile is set"),
        other => e.not_supported_str(&child(path, "type"), other, &["Localhost", "RuntimeDefault", "Unconfined"]),
    }
    if t == "Localhost" {
        match sp.get("localhostProfile").and_then(Value::as_str) {
            None => e.required(&child(path, "localhostProfile"), "must be set when seccomp type is Localhost"),
            Some(lp) => validate_local_descending_path(lp, &child(path, "localhostProfile"), e),
        }
    } else if present(sp, "localhostProfile") {
        e.invalid(
            &child(path, "localhostProfile"),
            go_json(Some(sp)),
            "can only be set when seccomp type is Localhost",
        );
    }
}

fn validate_apparmor_profile(p: Option<&Value>, path: &str, e: &mut Errs) {
    let Some(p) = p.filter(|v| v.is_object()) else {
        return;
    };
    match gs(p, "type") {
        "Localhost" => match p.get("localhostProfile").and_then(Value::as_str) {
            None => e.required(&child(path, "localhostProfile"), "must be set when AppArmor type is Localhost"),
            Some(lp) => {
                if lp.trim() != lp {
                    e.invalid_str(&child(path, "localhostProfile"), lp, "must not be padded with whitespace");
                } else if lp.is_empty() {
                    e.required(&child(path, "localhostProfile"), "must be set when AppArmor type is Localhost");
                }
                if lp.len() > 4095 {
                    e.too_long(&child(path, "localhostProfile"), 4095);
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(lp) = p.get("localhostProfile").and_then(Value::as_str) {
                e.invalid_str(&child(path, "localhostProfile"), lp, "can only be set when AppArmor type is Localhost");
            }
        }
        "" => e.required(&child(path, "type"), "type is required when appArmorProfile is set"),
        other => e.not_supported_str(&child(path, "type"), other, &["Localhost", "RuntimeDefault", "Unconfined"]),
    }
}

fn validate_security_context(sc: &Value, path: &str, e: &mut Errs) {
    validate_uid_gid(gi(sc, "runAsUser"), &child(path, "runAsUser"), e);
    validate_uid_gid(gi(sc, "runAsGroup"), &child(path, "runAsGroup"), e);
    if let Some(pm) = sc.get("procMount").and_then(Value::as_str) {
        if pm != "Default" && pm != "Unmasked" {
            e.not_supported_str(&child(path, "procMount"), pm, &["Default", "Unmasked"]);
        }
    }
    validate_seccomp_profile(sc.get("seccompProfile"), &child(path, "seccompProfile"), e);
    if gb(sc, "allowPrivilegeEscalation") == Some(false) {
        if gb(sc, "privileged") == Some(true) {
            e.invalid(
                path,
                go_json(Some(sc)),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let adds_sys_admin = sc
            .get("capabilities")
            .map(|c| ga(c, "add").iter().any(|a| a.as_str() == Some("CAP_SYS_ADMIN")))
            .unwrap_or(false);
        if adds_sys_admin {
            e.invalid(
                path,
                go_json(Some(sc)),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
    validate_apparmor_profile(sc.get("appArmorProfile"), &child(path, "appArmorProfile"), e);
}

fn validate_pod_security_context(spec: &Value, path: &str, spec_path: &str, e: &mut Errs) {
    if let Some(sc) = spec.get("securityContext").filter(|v| v.is_object()) {
        validate_uid_gid(gi(sc, "fsGroup"), &child(path, "fsGroup"), e);
        validate_uid_gid(gi(sc, "runAsUser"), &child(path, "runAsUser"), e);
        validate_uid_gid(gi(sc, "runAsGroup"), &child(path, "runAsGroup"), e);
        for (i, g) in ga(sc, "supplementalGroups").iter().enumerate() {
            validate_uid_gid(g.as_i64(), &idx(&child(path, "supplementalGroups"), i), e);
        }
        if gb(spec, "shareProcessNamespace") == Some(true) && gb(spec, "hostPID") == Some(true) {
            e.invalid(
                &child(path, "shareProcessNamespace"),
                "true".into(),
                "ShareProcessNamespace and HostPID cannot both be enabled",
            );
        }
        let mut names = BTreeSet::new();
        for (i, s) in ga(sc, "sysctls").iter().enumerate() {
            let np = child(&idx(&child(path, "sysctls"), i), "name");
            let n = gs(s, "name");
            if n.is_empty() {
                e.required(&np, "");
            } else if !is_valid_sysctl_name(n) {
                e.invalid_str(
                    &np,
                    n,
                    "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                );
            } else if names.contains(n) {
                e.duplicate(&np, q(n));
            }
            names.insert(n.to_string());
        }
        if let Some(p) = sc.get("fsGroupChangePolicy").and_then(Value::as_str) {
            if p != "OnRootMismatch" && p != "Always" {
                e.not_supported_str(&child(path, "fsGroupChangePolicy"), p, &["Always", "OnRootMismatch"]);
            }
        }
        validate_seccomp_profile(sc.get("seccompProfile"), &child(path, "seccompProfile"), e);
        validate_apparmor_profile(sc.get("appArmorProfile"), &child(path, "appArmorProfile"), e);
        if let Some(p) = sc.get("supplementalGroupsPolicy").and_then(Value::as_str) {
            if p != "Merge" && p != "Strict" {
                e.not_supported_str(&child(path, "supplementalGroupsPolicy"), p, &["Merge", "Strict"]);
            }
        }
        if let Some(p) = sc.get("seLinuxChangePolicy").and_then(Value::as_str) {
            if p != "MountOption" && p != "Recursive" {
                e.not_supported_str(&child(path, "seLinuxChangePolicy"), p, &["MountOption", "Recursive"]);
            }
        }
    }
    // validateHostUsers
    if spec.get("hostUsers").and_then(Value::as_bool) == Some(false) {
        if gb(spec, "hostNetwork") == Some(true) {
            e.forbidden(&child(spec_path, "hostNetwork"), "when `pod.Spec.HostUsers` is false");
        }
        if gb(spec, "hostPID") == Some(true) {
            e.forbidden(&child(spec_path, "HostPID"), "when `pod.Spec.HostUsers` is false");
        }
        if gb(spec, "hostIPC") == Some(true) {
            e.forbidden(&child(spec_path, "HostIPC"), "when `pod.Spec.HostUsers` is false");
        }
    }
}

fn is_valid_sysctl_name(n: &str) -> bool {
    if n.len() > 253 {
        return false;
    }
    let seg_ok = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && is_alnum_lower(b[0])
            && is_alnum_lower(b[b.len() - 1])
            && b.iter().all(|&c| is_alnum_lower(c) || c == b'-' || c == b'_')
    };
    n.split(['.', '/']).all(seg_ok)
}

// ---- scheduling: affinity, tolerations, topology spread, DNS

fn validate_node_selector_requirement(r: &Value, path: &str, check_values: bool, e: &mut Errs) {
    let values = ga(r, "values");
    match gs(r, "operator") {
        "In" | "NotIn" => {
            if values.is_empty() {
                e.required(&child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'");
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                e.forbidden(
                    &child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                );
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                e.required(&child(path, "values"), "must be specified single value when `operator` is 'Lt' or 'Gt'");
            }
        }
        op => e.invalid_str(&child(path, "operator"), op, "not a valid selector operator"),
    }
    validate_label_name(gs(r, "key"), &child(path, "key"), e);
    if check_values {
        for (i, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for m in is_valid_label_value(v) {
                e.invalid_str(&idx(&child(path, "values"), i), v, &m);
            }
        }
    }
}

fn validate_node_selector_term(t: &Value, path: &str, check_values: bool, e: &mut Errs) {
    for (j, r) in ga(t, "matchExpressions").iter().enumerate() {
        validate_node_selector_requirement(r, &idx(&child(path, "matchExpressions"), j), check_values, e);
    }
    for (j, r) in ga(t, "matchFields").iter().enumerate() {
        let rp = idx(&child(path, "matchFields"), j);
        match gs(r, "operator") {
            "In" | "NotIn" => {
                if ga(r, "values").len() != 1 {
                    e.required(
                        &child(&rp, "values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    );
                }
            }
            op => e.invalid_str(&child(&rp, "operator"), op, "not a valid selector operator"),
        }
        let k = gs(r, "key");
        if k != "metadata.name" {
            e.invalid_str(&child(&rp, "key"), k, "not a valid field selector key");
        } else {
            for (i, v) in ga(r, "values").iter().enumerate() {
                let v = v.as_str().unwrap_or("");
                for m in is_dns1123_subdomain(v) {
                    e.invalid_str(&idx(&child(&rp, "values"), i), v, &m);
                }
            }
        }
    }
}

fn validate_pod_affinity_term(t: &Value, path: &str, e: &mut Errs) {
    validate_label_selector(t.get("labelSelector"), &child(path, "labelSelector"), e);
    validate_label_selector(t.get("namespaceSelector"), &child(path, "namespaceSelector"), e);
    for n in ga(t, "namespaces") {
        let n = n.as_str().unwrap_or("");
        for m in is_dns1123_label(n) {
            e.invalid_str(&child(path, "namespace"), n, &m);
        }
    }
    for f in ["matchLabelKeys", "mismatchLabelKeys"] {
        let keys = ga(t, f);
        if keys.is_empty() {
            continue;
        }
        if !present(t, "labelSelector") {
            e.forbidden(&child(path, f), "must not be specified when labelSelector is not set");
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            validate_label_name(k.as_str().unwrap_or(""), &idx(&child(path, f), i), e);
        }
    }
    let tk = gs(t, "topologyKey");
    if tk.is_empty() {
        e.required(&child(path, "topologyKey"), "can not be empty");
    }
    validate_label_name(tk, &child(path, "topologyKey"), e);
}

fn validate_affinity(aff: Option<&Value>, path: &str, e: &mut Errs) {
    let Some(aff) = aff.filter(|v| v.is_object()) else {
        return;
    };
    if let Some(na) = aff.get("nodeAffinity").filter(|v| v.is_object()) {
        let np = child(path, "nodeAffinity");
        if let Some(req) = na.get("requiredDuringSchedulingIgnoredDuringExecution").filter(|v| v.is_object()) {
            let rp = child(&child(&np, "requiredDuringSchedulingIgnoredDuringExecution"), "nodeSelectorTerms");
            let terms = ga(req, "nodeSelectorTerms");
            if terms.is_empty() {
                e.required(&rp, "must have at least one node selector term");
            }
            for (i, t) in terms.iter().enumerate() {
                validate_node_selector_term(t, &idx(&rp, i), true, e);
            }
        }
        let pp = child(&np, "preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in ga(na, "preferredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            let w = gi(t, "weight").unwrap_or(0);
            if !(1..=100).contains(&w) {
                e.invalid_int(&child(&idx(&pp, i), "weight"), w, "must be in the range 1-100");
            }
            if let Some(pref) = t.get("preference") {
                validate_node_selector_term(pref, &child(&idx(&pp, i), "preference"), false, e);
            }
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = aff.get(kind).filter(|v| v.is_object()) else {
            continue;
        };
        let kp = child(path, kind);
        let rp = child(&kp, "requiredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in ga(pa, "requiredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            validate_pod_affinity_term(t, &idx(&rp, i), e);
        }
        let pp = child(&kp, "preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in ga(pa, "preferredDuringSchedulingIgnoredDuringExecution").iter().enumerate() {
            let w = gi(t, "weight").unwrap_or(0);
            if !(1..=100).contains(&w) {
                e.invalid_int(&child(&idx(&pp, i), "weight"), w, "must be in the range 1-100");
            }
            let empty = Value::Object(Map::new());
            validate_pod_affinity_term(
                t.get("podAffinityTerm").unwrap_or(&empty),
                &child(&idx(&pp, i), "podAffinityTerm"),
                e,
            );
        }
    }
}

fn validate_tolerations(tols: &[Value], path: &str, e: &mut Errs) {
    for (i, t) in tols.iter().enumerate() {
        let p = idx(path, i);
        let k = gs(t, "key");
        if !k.is_empty() {
            validate_label_name(k, &child(&p, "key"), e);
        }
        let op = gs(t, "operator");
        if k.is_empty() && op != "Exists" {
            e.invalid_str(
                &child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        let effect = gs(t, "effect");
        if present(t, "tolerationSeconds") && effect != "NoExecute" {
            e.invalid_str(&child(&p, "effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set");
        }
        let value = gs(t, "value");
        match op {
            "Equal" | "" => {
                let errs = is_valid_label_value(value);
                if !errs.is_empty() {
                    e.invalid_str(&child(&p, "operator"), value, &errs.join(";"));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    e.invalid_str(&child(&p, "operator"), value, "value must be empty when `operator` is 'Exists'");
                }
            }
            other => e.not_supported_str(&child(&p, "operator"), other, &["Equal", "Exists"]),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            e.not_supported_str(&child(&p, "effect"), effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
        }
    }
}

fn validate_topology_spread(cs: &[Value], path: &str, e: &mut Errs) {
    for (i, c) in cs.iter().enumerate() {
        let p = idx(path, i);
        let skew = gi(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            e.invalid_int(&child(&p, "maxSkew"), skew, "must be greater than zero");
        }
        let tk = gs(c, "topologyKey");
        if tk.is_empty() {
            e.required(&child(&p, "topologyKey"), "can not be empty");
        } else {
            validate_label_name(tk, &child(&p, "topologyKey"), e);
        }
        let wu = gs(c, "whenUnsatisfiable");
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&wu) {
            e.not_supported_str(&child(&p, "whenUnsatisfiable"), wu, &["DoNotSchedule", "ScheduleAnyway"]);
        }
        let dup = cs[i + 1..].iter().any(|o| gs(o, "topologyKey") == tk && gs(o, "whenUnsatisfiable") == wu);
        if dup {
            e.duplicate(&child(&p, "{topologyKey, whenUnsatisfiable}"), q(&format!("{{{}, {}}}", tk, wu)));
        }
        if let Some(md) = gi(c, "minDomains") {
            if md <= 0 {
                e.invalid_int(&child(&p, "minDomains"), md, "must be greater than 0");
            } else if wu != "DoNotSchedule" {
                e.invalid_int(
                    &child(&p, "minDomains"),
                    md,
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway",
                );
            }
        }
        validate_label_selector(c.get("labelSelector"), &child(&p, "labelSelector"), e);
        for pol in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(v) = c.get(pol).and_then(Value::as_str) {
                if v != "Honor" && v != "Ignore" {
                    e.not_supported_str(&child(&p, pol), v, &["Honor", "Ignore"]);
                }
            }
        }
    }
}

fn validate_dns_config(cfg: Option<&Value>, policy: &str, path: &str, e: &mut Errs) {
    let cfg = cfg.filter(|v| v.is_object());
    if policy == "None" {
        match cfg {
            None => {
                e.required(path, "must provide `dnsConfig` when `dnsPolicy` is None");
                return;
            }
            Some(c) if ga(c, "nameservers").is_empty() => {
                e.required(
                    &child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                );
                return;
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return };
    let ns = ga(cfg, "nameservers");
    if ns.len() > 3 {
        e.invalid(
            &child(path, "nameservers"),
            go_strings(cfg.get("nameservers")),
            "must not have more than 3 nameservers",
        );
    }
    for (i, n) in ns.iter().enumerate() {
        let n = n.as_str().unwrap_or("");
        for m in ip_errors(n) {
            e.invalid_str(&idx(&child(path, "nameservers"), i), n, &m);
        }
    }
    let searches = ga(cfg, "searches");
    if searches.len() > 32 {
        e.invalid(&child(path, "searches"), go_strings(cfg.get("searches")), "must not have more than 32 search paths");
    }
    let joined: Vec<&str> = searches.iter().map(|s| s.as_str().unwrap_or("")).collect();
    if joined.join(" ").len() > 2048 {
        e.invalid(
            &child(path, "searches"),
            go_strings(cfg.get("searches")),
            "must not have more than 2048 characters (including spaces) in the search list",
        );
    }
    for (i, s) in joined.iter().enumerate() {
        if *s == "." {
            continue;
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        let ok = !s.is_empty()
            && s.split('.').all(|l| {
                let l = l.strip_prefix('_').unwrap_or(l);
                let b = l.as_bytes();
                !b.is_empty()
                    && is_alnum_lower(b[0])
                    && is_alnum_lower(b[b.len() - 1])
                    && b.iter().all(|&c| is_alnum_lower(c) || c == b'-' || c == b'_')
            });
        if s.len() > 253 {
            e.invalid_str(&idx(&child(path, "searches"), i), s, &max_len_error(253));
        }
        if !ok {
            e.invalid_str(
                &idx(&child(path, "searches"), i),
                s,
                &regex_error(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
                    DNS1123_SUBDOMAIN_FMT,
                    &["example.com"],
                ),
            );
        }
    }
    for (i, o) in ga(cfg, "options").iter().enumerate() {
        if gs(o, "name").is_empty() {
            e.required(&idx(&child(path, "options"), i), "must not be empty");
        }
    }
}

// ---- pod-level annotations

fn validate_pod_specific_annotations(ann: Option<&Value>, spec: &Value, path: &str, e: &mut Errs) {
    let Some(ann) = ann.and_then(Value::as_object) else {
        return;
    };
    if let Some(v) = ann.get("kubernetes.io/config.mirror").and_then(Value::as_str) {
        if gs(spec, "nodeName").is_empty() {
            e.invalid_str(
                &key(path, "kubernetes.io/config.mirror"),
                v,
                "must set spec.nodeName if mirror pod annotation is set",
            );
        }
    }
    if let Some(v) = ann.get("controller.kubernetes.io/pod-deletion-cost").and_then(Value::as_str) {
        let ok = v.parse::<i64>().is_ok_and(|n| (i32::MIN as i64..=MAX_INT32).contains(&n));
        if !ok {
            e.invalid_str(&key(path, "controller.kubernetes.io/pod-deletion-cost"), v, "must be a 32bit integer");
        }
    }
    let seccomp_ok = |p: &str| {
        matches!(p, "runtime/default" | "docker/default" | "unconfined")
            || p.strip_prefix("localhost/")
                .is_some_and(|rest| !rest.starts_with('/') && !rest.split('/').any(|s| s == ".."))
    };
    for (k, v) in sorted_entries(Some(ann)) {
        let v = v.as_str().unwrap_or("");
        let is_seccomp = k == "seccomp.security.alpha.kubernetes.io/pod"
            || k.starts_with("container.seccomp.security.alpha.kubernetes.io/");
        if is_seccomp && !seccomp_ok(v) {
            e.invalid_str(&child(path, k), v, "must be a valid seccomp profile");
        }
        if let Some(cname) = k.strip_prefix("container.apparmor.security.beta.kubernetes.io/") {
            let has = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|f| ga(spec, f).iter().any(|c| gs(c, "name") == cname));
            if !has {
                e.invalid_str(&key(path, k), cname, "container not found");
            }
            let ok = v.is_empty() || v == "runtime/default" || v == "unconfined" || v.starts_with("localhost/");
            if !ok {
                e.invalid_str(&key(path, k), v, &format!("invalid AppArmor profile name: {}", q(v)));
            }
        }
    }
}

fn validate_pod_template_spec(t: Option<&Value>, path: &str, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let t = t.filter(|t| t.is_object()).unwrap_or(&empty);
    let meta = t.get("metadata").unwrap_or(&empty);
    let spec = t.get("spec").unwrap_or(&empty);
    validate_labels(meta.get("labels"), &child(path, "labels"), e);
    validate_annotations(meta.get("annotations"), &child(path, "annotations"), e);
    validate_pod_specific_annotations(meta.get("annotations"), spec, &child(path, "annotations"), e);
    validate_pod_spec(spec, None, &child(path, "spec"), PodOpts::default(), e);
    if !ga(spec, "ephemeralContainers").is_empty() {
        e.forbidden(
            &child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        );
    }
}

// =============================================================================================
// Pods

fn validate_pod_metadata_and_spec(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "", "Pod", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let meta = obj.get("metadata").unwrap_or(&empty);
    validate_pod_specific_annotations(meta.get("annotations"), spec, "metadata.annotations", e);
    let name = gs(meta, "name");
    validate_pod_spec(spec, Some(name), "spec", PodOpts { resource_is_pod: true }, e);
    if gs(spec, "serviceAccountName").is_empty() {
        for (vi, v) in ga(spec, "volumes").iter().enumerate() {
            if let Some(p) = v.get("projected") {
                for (si, s) in ga(p, "sources").iter().enumerate() {
                    if present(s, "serviceAccountToken") {
                        e.forbidden(
                            &format!("spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken"),
                            "must not be specified when serviceAccountName is not set",
                        );
                    }
                }
            }
        }
    }
    for k in ["containers", "initContainers"] {
        for (i, c) in ga(spec, k).iter().enumerate() {
            let image = gs(c, "image");
            if image.len() != image.trim().len() {
                e.invalid_str(&format!("spec.{k}[{i}].image"), image, "must not have leading or trailing whitespace");
            }
        }
    }
}

fn validate_pod_create(obj: &Value, e: &mut Errs) {
    validate_pod_metadata_and_spec(obj, e);
    let empty = Value::Object(Map::new());
    let spec = obj.get("spec").unwrap_or(&empty);
    if !ga(spec, "ephemeralContainers").is_empty() {
        e.forbidden("spec.ephemeralContainers", "cannot be set on create");
    }
    if !gs(spec, "nodeName").is_empty() && !ga(spec, "schedulingGates").is_empty() {
        e.forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared");
    }
}

const UPDATABLE_POD_SPEC_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

fn validate_pod_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta_update(obj, old, e);
    validate_pod_metadata_and_spec(obj, e);
    // mirror pod annotation may not be added, removed or changed
    let new_ann = obj.pointer("/metadata/annotations").and_then(Value::as_object);
    let old_ann = old.pointer("/metadata/annotations").and_then(Value::as_object);
    let mirror = "kubernetes.io/config.mirror";
    let nm = new_ann.and_then(|a| a.get(mirror));
    let om = old_ann.and_then(|a| a.get(mirror));
    if om.is_some() && nm != om {
        e.forbidden(&key("metadata.annotations", mirror), "may not remove or update mirror pod annotation");
    } else if om.is_none() && nm.is_some() {
        e.forbidden(&key("metadata.annotations", mirror), "may not add mirror pod annotation");
    }

    let spec = obj.get("spec").unwrap_or(&empty);
    let old_spec = old.get("spec").unwrap_or(&empty);
    for k in ["containers", "initContainers"] {
        let new_c = ga(spec, k);
        let old_c = ga(old_spec, k);
        let p = format!("spec.{k}");
        if new_c.len() != old_c.len() {
            e.forbidden(&p, "pod updates may not add or remove containers");
            return;
        }
        for (i, c) in new_c.iter().enumerate() {
            let image = gs(c, "image");
            if image.is_empty() {
                e.required(&format!("{p}[{i}].image"), "");
            }
            if image.trim().len() != image.len() {
                e.invalid_str(&format!("{p}[{i}].image"), image, "must not have leading or trailing whitespace");
            }
        }
    }
    match (gi(spec, "activeDeadlineSeconds"), gi(old_spec, "activeDeadlineSeconds")) {
        (Some(n), old_ads) => {
            if !(0..=MAX_INT32).contains(&n) {
                e.invalid_int("spec.activeDeadlineSeconds", n, &inclusive_range_error(0, MAX_INT32));
                return;
            }
            if let Some(o) = old_ads {
                if o < n {
                    e.invalid_int("spec.activeDeadlineSeconds", n, "must be less than or equal to previous value");
                    return;
                }
            }
        }
        (None, Some(_)) => {
            e.invalid(
                "spec.activeDeadlineSeconds",
                "null".into(),
                "must not update from a positive integer to nil value",
            );
        }
        (None, None) => {}
    }
    // only additions to tolerations (tolerationSeconds may change)
    let new_tols = ga(spec, "tolerations");
    for ot in ga(old_spec, "tolerations") {
        let strip = |t: &Value| {
            let mut t = t.clone();
            if let Some(m) = t.as_object_mut() {
                m.remove("tolerationSeconds");
            }
            t
        };
        let found = new_tols.iter().any(|nt| strip(nt) == strip(ot));
        if !found {
            e.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds");
            break;
        }
    }
    // only deletions of scheduling gates
    let old_gates: BTreeSet<&str> = ga(old_spec, "schedulingGates").iter().map(|g| gs(g, "name")).collect();
    for (i, g) in ga(spec, "schedulingGates").iter().enumerate() {
        let n = gs(g, "name");
        if !old_gates.contains(n) {
            e.forbidden(
                &format!("spec.schedulingGates[{i}].name"),
                &format!("only deletion is allowed, but found new scheduling gate '{n}'"),
            );
        }
    }
    if spec == old_spec {
        return;
    }
    // munge the updatable fields, then compare
    let mut munged = spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for k in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(k).and_then(Value::as_array_mut) {
                for (i, c) in cs.iter_mut().enumerate() {
                    if let (Some(cm), Some(oc)) = (c.as_object_mut(), ga(old_spec, k).get(i)) {
                        match oc.get("image") {
                            Some(img) => {
                                cm.insert("image".into(), img.clone());
                            }
                            None => {
                                cm.remove("image");
                            }
                        }
                    }
                }
            }
        }
        for k in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old_spec.get(k) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        let old_grace = gi(old_spec, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0) && gi(spec, "terminationGracePeriodSeconds") == Some(1) {
            m.insert("terminationGracePeriodSeconds".into(), old_spec["terminationGracePeriodSeconds"].clone());
        }
        // kelp binds pods by setting nodeName once (upstream uses the binding subresource).
        if gs(old_spec, "nodeName").is_empty() {
            match old_spec.get("nodeName") {
                Some(v) => {
                    m.insert("nodeName".into(), v.clone());
                }
                None => {
                    m.remove("nodeName");
                }
            }
        }
        // gated pods may get node selector additions
        if !ga(old_spec, "schedulingGates").is_empty() {
            let old_ns = gm(old_spec, "nodeSelector").cloned().unwrap_or_default();
            let new_ns = gm(spec, "nodeSelector").cloned().unwrap_or_default();
            let additions_only = old_ns.iter().all(|(k, v)| new_ns.get(k) == Some(v));
            if additions_only {
                match old_spec.get("nodeSelector") {
                    Some(v) => {
                        m.insert("nodeSelector".into(), v.clone());
                    }
                    None => {
                        m.remove("nodeSelector");
                    }
                }
            } else {
                e.invalid(
                    "spec.nodeSelector",
                    go_map(spec.get("nodeSelector")),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                );
            }
        }
    }
    if &munged != old_spec {
        let diff = json_diff("core.PodSpec", old_spec, &munged);
        e.forbidden(
            "spec",
            &format!("pod updates may not change fields other than {}\n{diff}", UPDATABLE_POD_SPEC_FIELDS.join(",")),
        );
    }
}

/// A small stand-in for `cmp.Diff`: one `-`/`+` line pair per changed leaf.
fn json_diff(type_name: &str, old: &Value, new: &Value) -> String {
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    walk(&child(path, k), x.get(k.as_str()), y.get(k.as_str()), out);
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                    walk(&idx(path, i), Some(p), Some(q), out);
                }
            }
            (a, b) if a != b => {
                if let Some(a) = a {
                    out.push(format!("- \t{path}: {a}"));
                }
                if let Some(b) = b {
                    out.push(format!("+ \t{path}: {b}"));
                }
            }
            _ => {}
        }
    }
    let mut lines = Vec::new();
    walk("", Some(old), Some(new), &mut lines);
    format!("  {type_name}{{\n{}\n  }}\n", lines.join("\n"))
}

// =============================================================================================
// Workloads (pkg/apis/apps/validation, core RC, batch)

/// `%#v` of an `intstr.IntOrString`.
fn go_intstr(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => {
            format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", q(s))
        }
        Some(Value::Number(n)) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        _ => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
    }
}

fn percent_value(v: Option<&Value>) -> Option<i64> {
    let s = v?.as_str()?;
    if !is_valid_percent(s).is_empty() {
        return None;
    }
    s[..s.len() - 1].parse().ok()
}

fn int_or_percent_value(v: Option<&Value>) -> i64 {
    if let Some(p) = percent_value(v) {
        return p;
    }
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn validate_positive_int_or_percent(v: Option<&Value>, path: &str, e: &mut Errs) {
    match v {
        Some(Value::String(s)) => {
            for m in is_valid_percent(s) {
                e.invalid(path, go_intstr(v), &m);
            }
        }
        Some(Value::Number(n)) => e.nonnegative(path, n.as_i64()),
        _ => {}
    }
}

fn not_more_than_100_percent(v: Option<&Value>, path: &str, e: &mut Errs) {
    if percent_value(v).is_some_and(|p| p > 100) {
        e.invalid(path, go_intstr(v), "must not be greater than 100%");
    }
}

/// Selector of a controller spec and its template labels: upstream's
/// `ValidatePodTemplateSpecForReplicaSet` (also used for Deployments).
fn validate_template_for_selector(spec: &Value, sel: &Selector, path: &str, kind_label: &str, e: &mut Errs) {
    let tpath = child(path, "template");
    let template = spec.get("template");
    let labels = template.and_then(|t| t.pointer("/metadata/labels"));
    if !sel.is_empty() && !sel.matches(labels) {
        e.invalid(&child(&tpath, "metadata.labels"), go_map(labels), "`selector` does not match template `labels`");
    }
    validate_pod_template_spec(template, &tpath, e);
    let rp = template.and_then(|t| t.pointer("/spec/restartPolicy")).and_then(Value::as_str).unwrap_or("");
    if rp != "Always" {
        e.not_supported_str(&child(&tpath, "spec.restartPolicy"), rp, &["Always"]);
    }
    if template.and_then(|t| t.pointer("/spec/activeDeadlineSeconds")).is_some_and(|v| !v.is_null()) {
        e.forbidden(
            &child(&tpath, "spec.activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind_label} is not Supported"),
        );
    }
}

/// Required/label-selector/empty checks shared by Deployments, ReplicaSets and StatefulSets.
fn validate_controller_selector(spec: &Value, path: &str, empty_msg: &str, e: &mut Errs) {
    let sp = child(path, "selector");
    match spec.get("selector").filter(|s| s.is_object()) {
        None => e.required(&sp, ""),
        Some(sel) => {
            validate_label_selector(Some(sel), &sp, e);
            if selector_is_empty_value(sel) {
                e.invalid(&sp, go_label_selector(Some(sel)), empty_msg);
            }
        }
    }
}

fn validate_deployment_spec(spec: &Value, e: &mut Errs) {
    e.nonnegative("spec.replicas", gi(spec, "replicas"));
    validate_controller_selector(spec, "spec", "empty selector is invalid for deployment", e);
    match Selector::from(spec.get("selector")) {
        Err(()) => e.invalid("spec.selector", go_label_selector(spec.get("selector")), "invalid label selector"),
        Ok(sel) => validate_template_for_selector(spec, &sel, "spec", "ReplicaSet", e),
    }
    let empty = Value::Object(Map::new());
    let strategy = spec.get("strategy").unwrap_or(&empty);
    match gs(strategy, "type") {
        "Recreate" => {
            if present(strategy, "rollingUpdate") {
                e.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'");
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            None => e.required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"),
            Some(ru) => {
                let mu = ru.get("maxUnavailable");
                let ms = ru.get("maxSurge");
                validate_positive_int_or_percent(mu, "spec.strategy.rollingUpdate.maxUnavailable", e);
                validate_positive_int_or_percent(ms, "spec.strategy.rollingUpdate.maxSurge", e);
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    e.invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        go_intstr(mu),
                        "may not be 0 when `maxSurge` is 0",
                    );
                }
                not_more_than_100_percent(mu, "spec.strategy.rollingUpdate.maxUnavailable", e);
            }
        },
        t => {
            let rendered = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)({})}}",
                q(t),
                if present(strategy, "rollingUpdate") { "0xc000000000" } else { "nil" }
            );
            e.not_supported("spec.strategy", rendered, &["Recreate", "RollingUpdate"]);
        }
    }
    e.nonnegative("spec.minReadySeconds", gi(spec, "minReadySeconds"));
    e.nonnegative("spec.revisionHistoryLimit", gi(spec, "revisionHistoryLimit"));
    if let Some(pds) = gi(spec, "progressDeadlineSeconds") {
        e.nonnegative("spec.progressDeadlineSeconds", Some(pds));
        if pds <= gi(spec, "minReadySeconds").unwrap_or(0) {
            e.invalid_int("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds");
        }
    }
}

fn validate_replica_set_spec(spec: &Value, e: &mut Errs) {
    e.nonnegative("spec.replicas", gi(spec, "replicas"));
    e.nonnegative("spec.minReadySeconds", gi(spec, "minReadySeconds"));
    validate_controller_selector(spec, "spec", "empty selector is invalid for deployment", e);
    match Selector::from(spec.get("selector")) {
        Err(()) => e.invalid("spec.selector", go_label_selector(spec.get("selector")), "invalid label selector"),
        Ok(sel) => validate_template_for_selector(spec, &sel, "spec", "ReplicaSet", e),
    }
}

fn validate_daemon_set_spec(spec: &Value, e: &mut Errs) {
    validate_label_selector(spec.get("selector"), "spec.selector", e);
    let labels = spec.pointer("/template/metadata/labels");
    if let Ok(sel) = Selector::from(spec.get("selector")) {
        if !sel.matches(labels) {
            e.invalid("spec.template.metadata.labels", go_map(labels), "`selector` does not match template `labels`");
        }
    }
    if let Some(sel) = spec.get("selector").filter(|s| s.is_object()) {
        if selector_is_empty_value(sel) {
            e.invalid("spec.selector", go_label_selector(Some(sel)), "empty selector is invalid for daemonset");
        }
    }
    validate_pod_template_spec(spec.get("template"), "spec.template", e);
    let rp = spec.pointer("/template/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
    if rp != "Always" {
        e.not_supported_str("spec.template.spec.restartPolicy", rp, &["Always"]);
    }
    if spec.pointer("/template/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
        e.forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in DaemonSet is not Supported");
    }
    e.nonnegative("spec.minReadySeconds", gi(spec, "minReadySeconds"));
    let empty = Value::Object(Map::new());
    let us = spec.get("updateStrategy").unwrap_or(&empty);
    match gs(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match us.get("rollingUpdate").filter(|r| r.is_object()) {
            None => e.required("spec.updateStrategy.rollingUpdate", ""),
            Some(ru) => {
                let p = "spec.updateStrategy.rollingUpdate";
                let mu = ru.get("maxUnavailable");
                let ms = ru.get("maxSurge");
                validate_positive_int_or_percent(mu, &child(p, "maxUnavailable"), e);
                validate_positive_int_or_percent(ms, &child(p, "maxSurge"), e);
                not_more_than_100_percent(mu, &child(p, "maxUnavailable"), e);
                not_more_than_100_percent(ms, &child(p, "maxSurge"), e);
                let has_u = int_or_percent_value(mu) != 0;
                let has_s = int_or_percent_value(ms) != 0;
                if has_u && has_s {
                    e.invalid(&child(p, "maxSurge"), go_intstr(ms), "may not be set when maxUnavailable is non-zero");
                } else if !has_u && !has_s {
                    e.required(&child(p, "maxUnavailable"), "cannot be 0 when maxSurge is 0");
                }
            }
        },
        t => {
            let rendered = format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDaemonSet)({})}}",
                q(t),
                if present(us, "rollingUpdate") { "0xc000000000" } else { "nil" }
            );
            e.not_supported("spec.updateStrategy", rendered, &["RollingUpdate", "OnDelete"]);
        }
    }
    e.nonnegative("spec.revisionHistoryLimit", gi(spec, "revisionHistoryLimit"));
}

fn validate_stateful_set_spec(spec: &Value, e: &mut Errs) {
    match gs(spec, "podManagementPolicy") {
        "" => e.required("spec.podManagementPolicy", ""),
        "OrderedReady" | "Parallel" => {}
        other => e.invalid_str("spec.podManagementPolicy", other, "must be 'OrderedReady' or 'Parallel'"),
    }
    let empty = Value::Object(Map::new());
    let us = spec.get("updateStrategy").unwrap_or(&empty);
    match gs(us, "type") {
        "" => e.required("spec.updateStrategy", ""),
        "OnDelete" => {
            if let Some(ru) = us.get("rollingUpdate").filter(|r| !r.is_null()) {
                e.invalid(
                    "spec.updateStrategy.rollingUpdate",
                    go_sts_rolling_update(ru),
                    "only allowed for updateStrategy 'RollingUpdate'",
                );
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = us.get("rollingUpdate").filter(|r| r.is_object()) {
                let p = "spec.updateStrategy.rollingUpdate";
                e.nonnegative(&child(p, "partition"), gi(ru, "partition"));
                if let Some(mu) = ru.get("maxUnavailable").filter(|v| !v.is_null()) {
                    validate_positive_int_or_percent(Some(mu), &child(p, "maxUnavailable"), e);
                    if int_or_percent_value(Some(mu)) == 0 {
                        e.invalid(&child(p, "maxUnavailable"), go_intstr(Some(mu)), "cannot be 0");
                    }
                    not_more_than_100_percent(Some(mu), &child(p, "maxUnavailable"), e);
                }
            }
        }
        t => {
            let ru = match us.get("rollingUpdate").filter(|r| r.is_object()) {
                Some(_) => "(*apps.RollingUpdateStatefulSetStrategy)(0xc000000000)",
                None => "(*apps.RollingUpdateStatefulSetStrategy)(nil)",
            };
            e.invalid(
                "spec.updateStrategy",
                format!("apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{ru}}}", q(t)),
                "must be 'RollingUpdate' or 'OnDelete'",
            )
        }
    }
    if let Some(pol) = spec.get("persistentVolumeClaimRetentionPolicy").filter(|p| p.is_object()) {
        for f in ["whenDeleted", "whenScaled"] {
            let v = gs(pol, f);
            if v != "Retain" && v != "Delete" {
                e.not_supported_str(
                    &format!("spec.persistentVolumeClaimRetentionPolicy.{f}"),
                    v,
                    &["Retain", "Delete"],
                );
            }
        }
    }
    e.nonnegative("spec.replicas", gi(spec, "replicas"));
    e.nonnegative("spec.minReadySeconds", gi(spec, "minReadySeconds"));
    if let Some(o) = spec.get("ordinals").filter(|o| o.is_object()) {
        e.nonnegative("spec.ordinals.start", gi(o, "start"));
    }
    validate_controller_selector(spec, "spec", "empty selector is invalid for statefulset", e);
    match Selector::from(spec.get("selector")) {
        Err(()) => e.invalid("spec.selector", go_label_selector(spec.get("selector")), ""),
        Ok(sel) => {
            let labels = spec.pointer("/template/metadata/labels");
            if !sel.is_empty() && !sel.matches(labels) {
                e.invalid(
                    "spec.template.metadata.labels",
                    go_map(labels),
                    "`selector` does not match template `labels`",
                );
            }
            let tmeta = spec.pointer("/template/metadata");
            validate_labels(tmeta.and_then(|m| m.get("labels")), "spec.template.labels", e);
            validate_annotations(tmeta.and_then(|m| m.get("annotations")), "spec.template.annotations", e);
            validate_pod_specific_annotations(
                tmeta.and_then(|m| m.get("annotations")),
                spec.pointer("/template/spec").unwrap_or(&empty),
                "spec.template.annotations",
                e,
            );
        }
    }
    let rp = spec.pointer("/template/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
    if rp != "Always" {
        e.not_supported_str("spec.template.spec.restartPolicy", rp, &["Always"]);
    }
    if spec.pointer("/template/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
        e.forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in StatefulSet is not Supported",
        );
    }
}

/// `%#v` of an internal `apps.RollingUpdateStatefulSetStrategy`.
fn go_sts_rolling_update(ru: &Value) -> String {
    let mu = match ru.get("maxUnavailable").filter(|v| !v.is_null()) {
        Some(_) => "(*intstr.IntOrString)(0xc000000000)".to_string(),
        None => "(*intstr.IntOrString)(nil)".to_string(),
    };
    format!(
        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:{mu}}}",
        gi(ru, "partition").unwrap_or(0)
    )
}

fn validate_replication_controller_spec(spec: &Value, e: &mut Errs) {
    e.nonnegative("spec.minReadySeconds", gi(spec, "minReadySeconds"));
    let selector = gm(spec, "selector");
    if selector.is_none_or(Map::is_empty) {
        e.required("spec.selector", "");
    }
    e.nonnegative("spec.replicas", gi(spec, "replicas"));
    match spec.get("template").filter(|t| t.is_object()) {
        None => e.required("spec.template", ""),
        Some(t) => {
            let labels = t.pointer("/metadata/labels");
            if let Some(sel) = selector.filter(|s| !s.is_empty()) {
                let l = labels.and_then(Value::as_object);
                let ok = sel.iter().all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v));
                if !ok {
                    e.invalid(
                        "spec.template.metadata.labels",
                        go_map(labels),
                        "`selector` does not match template `labels`",
                    );
                }
            }
            validate_pod_template_spec(Some(t), "spec.template", e);
            let rp = t.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
            if rp != "Always" {
                e.not_supported_str("spec.template.spec.restartPolicy", rp, &["Always"]);
            }
            if t.pointer("/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
                e.forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in ReplicationController is not Supported",
                );
            }
        }
    }
}

fn selector_immutable(obj: &Value, old: &Value, e: &mut Errs) {
    let new_sel = obj.pointer("/spec/selector").filter(|v| !v.is_null());
    let old_sel = old.pointer("/spec/selector").filter(|v| !v.is_null());
    if !selectors_equal(new_sel, old_sel) {
        e.invalid("spec.selector", go_label_selector(new_sel), IMMUTABLE);
    }
}

/// Semantic equality of label selectors (empty lists and maps equal absent ones).
fn selectors_equal(a: Option<&Value>, b: Option<&Value>) -> bool {
    type Normalized = (Vec<(String, String)>, Vec<Value>);
    fn norm(v: Option<&Value>) -> Option<Normalized> {
        let v = v?;
        let ml = sorted_entries(gm(v, "matchLabels"))
            .into_iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        Some((ml, ga(v, "matchExpressions").to_vec()))
    }
    norm(a) == norm(b)
}

// ---- batch

fn validate_has_label(labels: Option<&Value>, path: &str, k: &str, expected: &str, e: &mut Errs) {
    let p = key(&child(path, "labels"), k);
    match labels.and_then(|l| l.get(k)).and_then(Value::as_str) {
        None => e.required(&p, &format!("must be '{expected}'")),
        Some(v) if v != expected => e.invalid(&p, go_map(labels), &format!("must be '{expected}'")),
        _ => {}
    }
}

fn validate_generated_selector(obj: &Value, require_prefixed: bool, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = obj.get("spec").unwrap_or(&empty);
    if gb(spec, "manualSelector") == Some(true) {
        return;
    }
    let Some(sel) = spec.get("selector").filter(|s| s.is_object()) else {
        return;
    };
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if uid.is_empty() {
        e.required("metadata.uid", "");
    }
    let labels = spec.pointer("/template/metadata/labels");
    let tp = "spec.template.metadata";
    validate_has_label(labels, tp, "controller-uid", uid, e);
    validate_has_label(labels, tp, "job-name", name, e);
    let mut expected = Map::new();
    if require_prefixed {
        validate_has_label(labels, tp, "batch.kubernetes.io/controller-uid", uid, e);
        validate_has_label(labels, tp, "batch.kubernetes.io/job-name", name, e);
        expected.insert("batch.kubernetes.io/controller-uid".into(), Value::String(uid.into()));
        expected.insert("batch.kubernetes.io/job-name".into(), Value::String(name.into()));
    }
    expected.insert("controller-uid".into(), Value::String(uid.into()));
    expected.insert("job-name".into(), Value::String(name.into()));
    if let Ok(s) = Selector::from(Some(sel)) {
        if !s.matches(Some(&Value::Object(expected))) {
            e.invalid("spec.selector", go_label_selector(Some(sel)), "`selector` not auto-generated");
        }
    }
}

fn validate_job_spec_common(spec: &Value, path: &str, e: &mut Errs) {
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        e.nonnegative(&child(path, f), gi(spec, f));
    }
    if let Some(mfi) = gi(spec, "maxFailedIndexes") {
        e.nonnegative(&child(path, "maxFailedIndexes"), Some(mfi));
        if !present(spec, "backoffLimitPerIndex") {
            e.required(&child(path, "backoffLimitPerIndex"), "when maxFailedIndexes is specified");
        }
    }
    if let Some(mb) = spec.get("managedBy").and_then(Value::as_str) {
        let mp = child(path, "managedBy");
        match mb.split_once('/') {
            Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
                for m in is_dns1123_subdomain(host) {
                    e.invalid_str(&mp, host, &m);
                }
                let ok = rest.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
                if !ok {
                    e.invalid_str(&mp, rest, &regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]));
                }
            }
            _ => e.invalid_str(&mp, mb, "must be a domain-prefixed path (such as \"acme.io/foo\")"),
        }
        if mb.len() > 63 {
            e.too_long(&mp, 63);
        }
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    if let Some(m) = mode {
        if m != "NonIndexed" && m != "Indexed" {
            e.not_supported_str(&child(path, "completionMode"), m, &["NonIndexed", "Indexed"]);
        }
        if m == "Indexed" {
            if !present(spec, "completions") {
                e.required(&child(path, "completions"), "when completion mode is Indexed");
            }
            if let Some(p) = gi(spec, "parallelism") {
                if p > 100_000 {
                    e.invalid_int(
                        &child(path, "parallelism"),
                        p,
                        "must be less than or equal to 100000 when completion mode is Indexed",
                    );
                }
            }
            if let (Some(c), Some(mfi)) = (gi(spec, "completions"), gi(spec, "maxFailedIndexes")) {
                if mfi > c {
                    e.invalid_int(&child(path, "maxFailedIndexes"), mfi, "must be less than or equal to completions");
                }
            }
        }
    }
    if mode.is_none_or(|m| m == "NonIndexed") {
        if let Some(v) = gi(spec, "backoffLimitPerIndex") {
            e.invalid_int(&child(path, "backoffLimitPerIndex"), v, "requires indexed completion mode");
        }
        if let Some(v) = gi(spec, "maxFailedIndexes") {
            e.invalid_int(&child(path, "maxFailedIndexes"), v, "requires indexed completion mode");
        }
    }
    let has_pfp = spec.get("podFailurePolicy").is_some_and(Value::is_object);
    if let Some(pfp) = spec.get("podFailurePolicy").filter(|v| v.is_object()) {
        validate_pod_failure_policy(spec, pfp, &child(path, "podFailurePolicy"), e);
    }
    if let Some(sp) = spec.get("successPolicy").filter(|v| v.is_object()) {
        if mode != Some("Indexed") {
            e.invalid(&child(path, "successPolicy"), go_json(Some(sp)), "requires indexed completion mode");
        } else if ga(sp, "rules").is_empty() {
            e.required(
                &child(&child(path, "successPolicy"), "rules"),
                "at least one rules must be specified when the successPolicy is specified",
            );
        }
    }
    if let Some(prp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        let p = child(path, "podReplacementPolicy");
        if has_pfp {
            if prp != "Failed" {
                e.not_supported_str(&p, prp, &["Failed"]);
            }
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            e.not_supported_str(&p, prp, &["Failed", "TerminatingOrFailed"]);
        }
    }
    let tpath = child(path, "template");
    validate_pod_template_spec(spec.get("template"), &tpath, e);
    let rp = spec.pointer("/template/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
    let rpp = child(&tpath, "spec.restartPolicy");
    if rp == "Always" || rp.is_empty() {
        e.required(&rpp, "valid values: \"OnFailure\", \"Never\"");
    } else if rp != "OnFailure" && rp != "Never" {
        e.not_supported_str(&rpp, rp, &["OnFailure", "Never"]);
    } else if has_pfp && rp != "Never" {
        e.invalid_str(&rpp, rp, "only \"Never\" is supported when podFailurePolicy is specified");
    }
}

fn validate_pod_failure_policy(spec: &Value, pfp: &Value, path: &str, e: &mut Errs) {
    let rules = ga(pfp, "rules");
    let rp = child(path, "rules");
    if rules.len() > 20 {
        e.too_many(&rp, rules.len(), 20);
    }
    let names: BTreeSet<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec.pointer("/template/spec").map(|s| ga(s, k)).unwrap_or(&[]).iter())
        .map(|c| gs(c, "name"))
        .collect();
    let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, r) in rules.iter().enumerate() {
        let p = idx(&rp, i);
        let action = gs(r, "action");
        if action.is_empty() {
            e.required(&child(&p, "action"), "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]");
        } else if action == "FailIndex" {
            if !present(spec, "backoffLimitPerIndex") {
                e.invalid_str(&child(&p, "action"), action, "requires the backoffLimitPerIndex to be set");
            }
        } else if !actions.contains(&action) {
            e.not_supported_str(&child(&p, "action"), action, &actions);
        }
        let oec = r.get("onExitCodes").filter(|v| v.is_object());
        let opc = ga(r, "onPodConditions");
        if let Some(oec) = oec {
            let op_path = child(&child(&p, "onExitCodes"), "operator");
            match gs(oec, "operator") {
                "In" | "NotIn" => {}
                "" => e.required(&op_path, "valid values: [\"In\" \"NotIn\"]"),
                other => e.not_supported_str(&op_path, other, &["In", "NotIn"]),
            }
            if let Some(cn) = oec.get("containerName").and_then(Value::as_str) {
                if !names.contains(cn) {
                    e.invalid_str(
                        &child(&child(&p, "onExitCodes"), "containerName"),
                        cn,
                        "must be one of the container or initContainer names in the pod template",
                    );
                }
            }
            let vals: Vec<i64> = ga(oec, "values").iter().filter_map(Value::as_i64).collect();
            let vp = child(&child(&p, "onExitCodes"), "values");
            if vals.is_empty() {
                e.invalid(&vp, "[]int32(nil)".into(), "at least one value is required");
            }
            let mut seen = BTreeSet::new();
            for (j, v) in vals.iter().enumerate() {
                if gs(oec, "operator") == "In" && *v == 0 {
                    e.invalid_int(&idx(&vp, j), *v, "must not be 0 for the In operator");
                }
                if !seen.insert(*v) {
                    e.duplicate(&idx(&vp, j), v.to_string());
                }
            }
            if vals.windows(2).any(|w| w[0] > w[1]) {
                let list: Vec<String> = vals.iter().map(i64::to_string).collect();
                e.invalid(&vp, format!("[]int32{{{}}}", list.join(", ")), "must be ordered");
            }
        }
        for (j, pc) in opc.iter().enumerate() {
            let pp = idx(&child(&p, "onPodConditions"), j);
            validate_qualified_name(gs(pc, "type"), &child(&pp, "type"), e);
            match gs(pc, "status") {
                "True" | "False" | "Unknown" => {}
                "" => e.required(&child(&pp, "status"), "valid values: [\"False\" \"True\" \"Unknown\"]"),
                other => e.not_supported_str(&child(&pp, "status"), other, &["False", "True", "Unknown"]),
            }
        }
        if oec.is_some() && !opc.is_empty() {
            e.invalid(
                &p,
                "field.OmitValueType{}".into(),
                "specifying both OnExitCodes and OnPodConditions is not supported",
            );
        }
        if oec.is_none() && opc.is_empty() {
            e.invalid(
                &p,
                "field.OmitValueType{}".into(),
                "specifying one of OnExitCodes and OnPodConditions is required",
            );
        }
    }
}

fn validate_job(obj: &Value, require_prefixed: bool, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "batch", "Job", e);
    validate_generated_selector(obj, require_prefixed, e);
    let spec = obj.get("spec").unwrap_or(&empty);
    validate_job_spec_common(spec, "spec", e);
    match spec.get("selector").filter(|s| s.is_object()) {
        None => e.required("spec.selector", ""),
        Some(sel) => validate_label_selector(Some(sel), "spec.selector", e),
    }
    if let Ok(sel) = Selector::from(spec.get("selector")) {
        let labels = spec.pointer("/template/metadata/labels");
        if !sel.matches(labels) {
            e.invalid("spec.template.metadata.labels", go_map(labels), "`selector` does not match template `labels`");
        }
    }
    if spec.get("completionMode").and_then(Value::as_str) == Some("Indexed") {
        if let Some(c) = gi(spec, "completions").filter(|c| *c > 0) {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let host = format!("{name}-{}", c - 1);
            if !is_dns1123_label(&host).is_empty() {
                e.invalid_str(
                    "metadata.name",
                    name,
                    &format!("will not able to create pod with invalid DNS label: {host}"),
                );
            }
        }
    }
}

fn validate_job_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let old_labels = old.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
    let require_prefixed = old_labels.is_some_and(|l| {
        l.contains_key("batch.kubernetes.io/job-name") && l.contains_key("batch.kubernetes.io/controller-uid")
    });
    validate_job(obj, require_prefixed, e);
    validate_object_meta_update(obj, old, e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let old_spec = old.get("spec").unwrap_or(&empty);
    // completions: mutable for Indexed jobs only in tandem with parallelism (ElasticIndexedJob)
    if spec.get("completions") != old_spec.get("completions") {
        let indexed = gs(spec, "completionMode") == "Indexed";
        let c = gi(spec, "completions");
        if !indexed {
            e.invalid("spec.completions", c.map(|v| v.to_string()).unwrap_or("null".into()), IMMUTABLE);
        } else if let Some(c) = c {
            if Some(c) != gi(spec, "parallelism") {
                e.invalid_int("spec.completions", c, "can only be modified in tandem with spec.parallelism");
            }
        }
    }
    let new_sel = spec.get("selector").filter(|v| !v.is_null());
    let old_sel = old_spec.get("selector").filter(|v| !v.is_null());
    if !selectors_equal(new_sel, old_sel) {
        e.invalid("spec.selector", go_label_selector(new_sel), IMMUTABLE);
    }
    // template: scheduling directives are mutable while suspended and never started
    let mut new_t = spec.get("template").cloned().unwrap_or(Value::Null);
    let mut old_t = old_spec.get("template").cloned().unwrap_or(Value::Null);
    let suspended = gb(old_spec, "suspend") == Some(true);
    let not_started = old.pointer("/status/startTime").is_none_or(Value::is_null);
    if suspended && not_started {
        for t in [&mut new_t, &mut old_t] {
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                s.remove("nodeSelector");
                s.remove("tolerations");
                s.remove("schedulingGates");
                if let Some(a) = s.get_mut("affinity").and_then(Value::as_object_mut) {
                    a.remove("nodeAffinity");
                    if a.is_empty() {
                        s.remove("affinity");
                    }
                }
            }
        }
    }
    if new_t != old_t {
        e.invalid("spec.template", go_json(spec.get("template")), IMMUTABLE);
    }
    for f in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"] {
        let nv = spec.get(f).filter(|v| !v.is_null());
        if nv != old_spec.get(f).filter(|v| !v.is_null()) {
            let rendered = match nv {
                Some(Value::String(s)) => q(s),
                Some(Value::Number(n)) => n.to_string(),
                other => go_json(other),
            };
            e.invalid(&format!("spec.{f}"), rendered, IMMUTABLE);
        }
    }
}

fn validate_cron_job_spec(spec: &Value, old_spec: Option<&Value>, e: &mut Errs) {
    let schedule = gs(spec, "schedule");
    if schedule.is_empty() {
        e.required("spec.schedule", "");
    } else {
        if let Err(msg) = parse_cron_schedule(schedule) {
            e.invalid_str("spec.schedule", schedule, &msg);
        }
        let allow_tz = old_spec.is_some_and(|o| gs(o, "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && present(spec, "timeZone") {
            e.invalid_str("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule");
        } else if !allow_tz && schedule.contains("TZ") {
            e.invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            );
        }
    }
    e.nonnegative("spec.startingDeadlineSeconds", gi(spec, "startingDeadlineSeconds"));
    let tz_changed = old_spec.is_none_or(|o| o.get("timeZone") != spec.get("timeZone"));
    if tz_changed {
        if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
            validate_time_zone(tz, e);
        }
    }
    match gs(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => e.required("spec.concurrencyPolicy", ""),
        other => e.not_supported_str("spec.concurrencyPolicy", other, &["Allow", "Forbid", "Replace"]),
    }
    let empty = Value::Object(Map::new());
    let jspec = spec.pointer("/jobTemplate/spec").unwrap_or(&empty);
    validate_job_spec_common(jspec, "spec.jobTemplate.spec", e);
    if let Some(sel) = jspec.get("selector").filter(|v| !v.is_null()) {
        e.invalid("spec.jobTemplate.spec.selector", go_label_selector(Some(sel)), "`selector` will be auto-generated");
    }
    if gb(jspec, "manualSelector") == Some(true) {
        e.not_supported("spec.jobTemplate.spec.manualSelector", "true".into(), &["nil", "false"]);
    }
    e.nonnegative("spec.successfulJobsHistoryLimit", gi(spec, "successfulJobsHistoryLimit"));
    e.nonnegative("spec.failedJobsHistoryLimit", gi(spec, "failedJobsHistoryLimit"));
}

fn validate_time_zone(tz: &str, e: &mut Errs) {
    if tz.is_empty() {
        e.invalid_str("spec.timeZone", tz, "timeZone must be nil or non-empty string");
        return;
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && !p.is_empty()
            && p.len() <= 14
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    };
    if !tz.split('/').all(part_ok) {
        e.invalid_str("spec.timeZone", tz, &format!("unknown time zone {tz}"));
        return;
    }
    if tz.eq_ignore_ascii_case("local") {
        e.invalid_str(
            "spec.timeZone",
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        );
    }
}

/// `cron.ParseStandard` (robfig/cron v3): five fields or a `@descriptor`.
fn parse_cron_schedule(spec: &str) -> Result<(), String> {
    let mut spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".to_string());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        match spec.find(' ') {
            Some(i) => spec = spec[i..].trim(),
            None => return Err(format!("provided bad location {spec}: unknown time zone")),
        }
    }
    if spec.starts_with('@') {
        return match spec {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => Ok(()),
            s if s.starts_with("@every ") => {
                let d = &s["@every ".len()..];
                if parse_go_duration(d) {
                    Ok(())
                } else {
                    Err(format!("failed to parse duration {s}: time: invalid duration {}", q(d)))
                }
            }
            s => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    let months: &[(&str, u32)] = &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ];
    let days: &[(&str, u32)] = &[("sun", 0), ("mon", 1), ("tue", 2), ("wed", 3), ("thu", 4), ("fri", 5), ("sat", 6)];
    type Names<'a> = &'a [(&'a str, u32)];
    let bounds: [(u32, u32, Names); 5] = [(0, 59, &[]), (0, 23, &[]), (1, 31, &[]), (1, 12, months), (0, 6, days)];
    for (field, (min, max, names)) in fields.iter().zip(bounds.iter()) {
        for expr in field.split(',').filter(|s| !s.is_empty()) {
            cron_range(expr, *min, *max, names)?;
        }
    }
    Ok(())
}

fn cron_int(expr: &str, names: &[(&str, u32)]) -> Result<u32, String> {
    if let Some((_, v)) = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(expr)) {
        return Ok(*v);
    }
    match expr.parse::<i64>() {
        Err(_) => Err(format!("failed to parse int from {expr}: strconv.Atoi: parsing {}: invalid syntax", q(expr))),
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => Ok(n.min(u32::MAX as i64) as u32),
    }
}

fn cron_range(expr: &str, min: u32, max: u32, names: &[(&str, u32)]) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max)
    } else {
        let s = cron_int(low_high[0], names)?;
        match low_high.len() {
            1 => (s, s),
            2 => (s, cron_int(low_high[1], names)?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let s = cron_int(range_and_step[1], &[])?;
            if single {
                end = max;
            }
            s
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

fn parse_go_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    if rest == "0" {
        return true;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"].iter().find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

// =============================================================================================
// Services

fn is_headless(spec: &Value) -> bool {
    let cips = ga(spec, "clusterIPs");
    cips.len() == 1 && cips[0].as_str() == Some("None")
}

fn go_service_port_key(proto: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        q(proto)
    )
}

fn validate_service(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "", "Service", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let ty = gs(spec, "type");
    let headless = is_headless(spec);
    let ports = ga(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        e.required("spec.ports", "");
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => {
            e.invalid_str("spec.clusterIPs[0]", "None", &format!("may not be set to 'None' for {ty} services"));
        }
        "ExternalName" => {
            if !ga(spec, "clusterIPs").is_empty() {
                e.forbidden("spec.clusterIPs", "may not be set for ExternalName services");
            }
            if !ga(spec, "ipFamilies").is_empty() {
                e.forbidden("spec.ipFamilies", "may not be set for ExternalName services");
            }
            if present(spec, "ipFamilyPolicy") {
                e.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services");
            }
            let en = gs(spec, "externalName");
            let cname = en.strip_suffix('.').unwrap_or(en);
            if cname.is_empty() {
                e.required("spec.externalName", "");
            } else {
                validate_dns1123_subdomain(cname, "spec.externalName", e);
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = idx("spec.ports", i);
        let n = gs(p, "name");
        if ports.len() > 1 && n.is_empty() {
            e.required(&child(&pp, "name"), "");
        } else if !n.is_empty() {
            validate_dns1123_label(n, &child(&pp, "name"), e);
            if !names.insert(n.to_string()) {
                e.duplicate(&child(&pp, "name"), q(n));
            }
        }
        let port = gi(p, "port").unwrap_or(0);
        for m in is_valid_port_num(port) {
            e.invalid_int(&child(&pp, "port"), port, &m);
        }
        let proto = gs(p, "protocol");
        if proto.is_empty() {
            e.required(&child(&pp, "protocol"), "");
        } else if !SUPPORTED_PROTOCOLS.contains(&proto) {
            e.not_supported_str(&child(&pp, "protocol"), proto, SUPPORTED_PROTOCOLS);
        }
        validate_port_num_or_name(p.get("targetPort"), &child(&pp, "targetPort"), e);
        if let Some(ap) = p.get("appProtocol").and_then(Value::as_str) {
            validate_qualified_name(ap, &child(&pp, "appProtocol"), e);
        }
    }
    validate_labels(spec.get("selector"), "spec.selector", e);
    let affinity = gs(spec, "sessionAffinity");
    match affinity {
        "" => e.required("spec.sessionAffinity", ""),
        "ClientIP" | "None" => {}
        other => e.not_supported_str("spec.sessionAffinity", other, &["ClientIP", "None"]),
    }
    if affinity == "ClientIP" {
        let cfg = spec.get("sessionAffinityConfig").filter(|v| v.is_object());
        let cp = "spec.sessionAffinityConfig";
        match cfg {
            None => e.required(cp, "when session affinity type is ClientIP"),
            Some(c) => match c.get("clientIP").filter(|v| v.is_object()) {
                None => e.required(&child(cp, "clientIP"), "when session affinity type is ClientIP"),
                Some(ci) => match gi(ci, "timeoutSeconds") {
                    None => e.required(&child(cp, "clientIP.timeoutSeconds"), "when session affinity type is ClientIP"),
                    Some(t) if t <= 0 || t > 86400 => e.invalid_int(
                        &child(cp, "clientIP.timeoutSeconds"),
                        t,
                        "must be greater than 0 and less than 86400",
                    ),
                    _ => {}
                },
            },
        }
    } else if affinity == "None" && present(spec, "sessionAffinityConfig") {
        e.forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None");
    }
    validate_cluster_ips_related(spec, e);
    for (i, ip) in ga(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let p = idx("spec.externalIPs", i);
        let errs = ip_errors(ip);
        if !errs.is_empty() {
            for m in errs {
                e.invalid_str(&p, ip, &m);
            }
        } else {
            validate_non_special_ip(ip, &p, e);
        }
    }
    match ty {
        "" => e.required("spec.type", ""),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => e.not_supported_str("spec.type", other, &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]),
    }
    if ty == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if gi(p, "nodePort").unwrap_or(0) != 0 {
                e.forbidden(&child(&idx("spec.ports", i), "nodePort"), "may not be used when `type` is 'ClusterIP'");
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = gi(p, "nodePort").unwrap_or(0);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((gs(p, "protocol").to_string(), np)) {
            e.duplicate(&child(&idx("spec.ports", i), "nodePort"), np.to_string());
        }
    }
    let mut port_keys = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = gs(p, "protocol");
        let port = gi(p, "port").unwrap_or(0);
        if !port_keys.insert((proto.to_string(), port)) {
            e.duplicate(&idx("spec.ports", i), go_service_port_key(proto, port));
        }
    }
    let ranges = ga(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let fp = "spec.LoadBalancerSourceRanges";
        if ty != "LoadBalancer" {
            e.forbidden(fp, "may only be used when `type` is 'LoadBalancer'");
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.as_str().unwrap_or("").trim();
            for m in cidr_errors(r) {
                e.invalid_str(&idx(fp, i), r, &m);
            }
        }
    }
    if present(spec, "allocateLoadBalancerNodePorts") && ty != "LoadBalancer" {
        e.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'");
    }
    if ty == "LoadBalancer" && !present(spec, "allocateLoadBalancerNodePorts") {
        e.required("allocateLoadBalancerNodePorts", "");
    }
    if let Some(lbc) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty != "LoadBalancer" {
            e.forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'");
        } else {
            validate_qualified_name(lbc, "spec.loadBalancerClass", e);
        }
    }
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && !ga(spec, "externalIPs").is_empty());
    let etp = gs(spec, "externalTrafficPolicy");
    if !externally_accessible {
        if !etp.is_empty() {
            e.invalid_str("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services");
        }
    } else if etp.is_empty() {
        e.required("spec.externalTrafficPolicy", "");
    } else if etp != "Cluster" && etp != "Local" {
        e.not_supported_str("spec.externalTrafficPolicy", etp, &["Cluster", "Local"]);
    }
    let needs_health_check = ty == "LoadBalancer" && etp == "Local";
    let hcnp = gi(spec, "healthCheckNodePort").unwrap_or(0);
    if !needs_health_check && hcnp != 0 {
        e.invalid_int(
            "spec.healthCheckNodePort",
            hcnp,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        );
    } else if needs_health_check && hcnp != 0 {
        for m in is_valid_port_num(hcnp) {
            e.invalid_int("spec.healthCheckNodePort", hcnp, &m);
        }
    }
    match spec.get("internalTrafficPolicy").and_then(Value::as_str) {
        None => {
            if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") {
                e.required("spec.internalTrafficPolicy", "");
            }
        }
        Some("Cluster") | Some("Local") => {}
        Some(other) => e.not_supported_str("spec.internalTrafficPolicy", other, &["Cluster", "Local"]),
    }
    if let Some(td) = spec.get("trafficDistribution").and_then(Value::as_str) {
        if td != "PreferClose" {
            e.not_supported_str("spec.trafficDistribution", td, &["PreferClose"]);
        }
    }
}

fn validate_non_special_ip(ip: &str, path: &str, e: &mut Errs) {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        e.invalid_str(path, ip, "must be a valid IP address");
        return;
    };
    if addr.is_unspecified() {
        e.invalid_str(path, ip, &format!("may not be unspecified ({ip})"));
    }
    if addr.is_loopback() {
        e.invalid_str(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)");
    }
    let link_local = match addr {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        e.invalid_str(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)");
    }
    let ll_multicast = match addr {
        std::net::IpAddr::V4(v4) => v4.octets()[0] == 224 && v4.octets()[1] == 0 && v4.octets()[2] == 0,
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if ll_multicast {
        e.invalid_str(path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)");
    }
}

fn validate_cluster_ips_related(spec: &Value, e: &mut Errs) {
    if gs(spec, "type") == "ExternalName" {
        return;
    }
    let cip = gs(spec, "clusterIP");
    let cips = ga(spec, "clusterIPs");
    let cips_rendered = go_strings(spec.get("clusterIPs"));
    if !cip.is_empty() {
        if cips.is_empty() {
            e.required("spec.clusterIPs", "");
        } else if cips[0].as_str() != Some(cip) {
            e.invalid("spec.clusterIPs", cips_rendered.clone(), "first value must match `clusterIP`");
        }
    } else if !cips.is_empty() {
        e.invalid("spec.clusterIPs", cips_rendered.clone(), "must be empty when `clusterIP` is not specified");
    }
    let mut seen = BTreeSet::new();
    for (i, f) in ga(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        let p = idx("spec.ipFamilies", i);
        if f != "IPv4" && f != "IPv6" {
            e.not_supported_str(&p, f, &["IPv4", "IPv6"]);
        }
        if !seen.insert(f.to_string()) {
            e.duplicate(&p, q(f));
        }
    }
    if let Some(pol) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        if !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&pol) {
            e.not_supported_str("spec.ipFamilyPolicy", pol, &["PreferDualStack", "RequireDualStack", "SingleStack"]);
        }
    }
    let mut invalid_ips = false;
    for (i, ip) in cips.iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if i == 0 && ip == "None" {
            if cips.len() > 1 {
                invalid_ips = true;
                e.invalid("spec.clusterIPs", cips_rendered.clone(), "'None' must be the first and only value");
            }
            continue;
        }
        let errs = ip_errors(ip);
        if !errs.is_empty() {
            invalid_ips = true;
            for m in errs {
                e.invalid_str(&idx("spec.clusterIPs", i), ip, &m);
            }
        }
    }
    if cips.len() > 2 {
        e.invalid("spec.clusterIPs", cips_rendered.clone(), "may only hold up to 2 values");
    }
    if invalid_ips {
        return;
    }
    if cips.len() > 1 {
        let v6: Vec<bool> = cips.iter().map(|c| c.as_str().unwrap_or("").contains(':')).collect();
        if v6.iter().all(|x| *x) || v6.iter().all(|x| !*x) || cips.len() > 2 {
            e.invalid("spec.clusterIPs", cips_rendered.clone(), "may specify no more than one IP for each IP family");
        }
    }
    let fams = ga(spec, "ipFamilies");
    if !is_headless(spec) && !cips.is_empty() && !fams.is_empty() {
        for (i, ip) in cips.iter().enumerate() {
            let Some(f) = fams.get(i) else { break };
            let ip = ip.as_str().unwrap_or("");
            let is_v6 = ip.contains(':');
            if f.as_str() == Some("IPv4") && is_v6 {
                e.invalid_str(
                    &idx("spec.clusterIPs", i),
                    ip,
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                );
            }
            if f.as_str() == Some("IPv6") && !is_v6 {
                e.invalid_str(
                    &idx("spec.clusterIPs", i),
                    ip,
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                );
            }
        }
    }
}

fn validate_service_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta_update(obj, old, e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let old_spec = old.get("spec").unwrap_or(&empty);
    let ty = gs(spec, "type");
    let old_ty = gs(old_spec, "type");
    if ty != "ExternalName" && old_ty != "ExternalName" && !(is_headless(spec) && is_headless(old_spec)) {
        let new_c = ga(spec, "clusterIPs");
        let old_c = ga(old_spec, "clusterIPs");
        let rendered = go_strings(spec.get("clusterIPs"));
        if new_c.len() == old_c.len() {
            for (i, ip) in old_c.iter().enumerate() {
                if Some(ip) != new_c.get(i) {
                    e.invalid(&idx("spec.clusterIPs", i), rendered.clone(), "may not change once set");
                }
            }
        } else if old_c.len() > new_c.len() {
            if new_c.is_empty() {
                e.invalid("spec.clusterIPs[0]", rendered.clone(), "primary clusterIP can not be unset");
            }
            if !new_c.is_empty() && new_c[0] != old_c[0] {
                e.invalid("spec.clusterIPs[0]", rendered.clone(), "may not change once set");
            }
            if new_c.len() == 1 && spec.get("ipFamilyPolicy").and_then(Value::as_str) != Some("SingleStack") {
                let pol = spec.get("ipFamilyPolicy").and_then(Value::as_str).map(q).unwrap_or("null".into());
                e.invalid(
                    "spec.ipFamilyPolicy",
                    pol,
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                );
            }
        } else if !old_c.is_empty() && new_c[0] != old_c[0] {
            e.invalid("spec.clusterIPs[0]", rendered, "may not change once set");
        }
    }
    if ty != "ExternalName"
        && old_ty != "ExternalName"
        && is_headless(spec) == is_headless(old_spec)
        && !is_headless(spec)
    {
        let nf = ga(spec, "ipFamilies");
        let of = ga(old_spec, "ipFamilies");
        let rendered = go_strings(spec.get("ipFamilies"));
        if nf.len() == of.len() {
            if nf != of {
                e.invalid("spec.ipFamilies[0]", rendered, "may not change once set");
            }
        } else if !nf.is_empty() && !of.is_empty() && nf[0] != of[0] {
            e.invalid("spec.ipFamilies[0]", go_strings(spec.get("clusterIPs")), "may not change once set");
        }
    }
    if old_ty == "LoadBalancer" && ty == "LoadBalancer" {
        let o = old_spec.get("loadBalancerClass").filter(|v| !v.is_null());
        let n = spec.get("loadBalancerClass").filter(|v| !v.is_null());
        if o != n {
            let rendered = n.and_then(Value::as_str).map(q).unwrap_or("null".into());
            e.invalid("spec.loadBalancerClass", rendered, "may not change once set");
        }
    }
    let needs = |s: &Value| gs(s, "type") == "LoadBalancer" && gs(s, "externalTrafficPolicy") == "Local";
    if needs(old_spec) && needs(spec) && gi(spec, "healthCheckNodePort") != gi(old_spec, "healthCheckNodePort") {
        e.forbidden("spec.healthCheckNodePort", IMMUTABLE);
    }
    validate_service(obj, e);
}

// =============================================================================================
// Config and storage

const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn b64_len(s: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).map(|b| b.len()).unwrap_or(s.len())
}

fn validate_config_map(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "", "ConfigMap", e);
    let data = gm(obj, "data");
    let bin = gm(obj, "binaryData");
    let mut total = 0usize;
    for (k, v) in sorted_entries(data) {
        for m in is_config_map_key(k) {
            e.invalid_str(&key("data", k), k, &m);
        }
        if bin.is_some_and(|b| b.contains_key(k.as_str())) {
            e.invalid_str(&key("data", k), k, "duplicate of key present in binaryData");
        }
        total += v.as_str().map(str::len).unwrap_or(0);
    }
    for (k, v) in sorted_entries(bin) {
        for m in is_config_map_key(k) {
            e.invalid_str(&key("binaryData", k), k, &m);
        }
        total += b64_len(v.as_str().unwrap_or(""));
    }
    if total > MAX_SECRET_SIZE {
        e.too_long("", MAX_SECRET_SIZE);
    }
}

fn validate_immutable_data(obj: &Value, old: &Value, fields: &[&str], e: &mut Errs) {
    if gb(old, "immutable") != Some(true) {
        return;
    }
    if gb(obj, "immutable") != Some(true) {
        e.forbidden("immutable", "field is immutable when `immutable` is set");
    }
    for f in fields {
        let n = gm(obj, f).filter(|m| !m.is_empty());
        let o = gm(old, f).filter(|m| !m.is_empty());
        if n != o {
            e.forbidden(f, "field is immutable when `immutable` is set");
        }
    }
}

fn validate_secret(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "", "Secret", e);
    let data = gm(obj, "data");
    let mut total = 0usize;
    for (k, v) in sorted_entries(data) {
        for m in is_config_map_key(k) {
            e.invalid_str(&key("data", k), k, &m);
        }
        total += b64_len(v.as_str().unwrap_or(""));
    }
    if total > MAX_SECRET_SIZE {
        e.too_long("data", MAX_SECRET_SIZE);
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let decoded = |k: &str| -> Option<Vec<u8>> {
        use base64::Engine;
        data.and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    };
    match gs(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let sa = obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if sa.is_empty() {
                e.required("metadata.annotations[kubernetes.io/service-account.name]", "");
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let k = if gs(obj, "type") == "kubernetes.io/dockercfg" { ".dockercfg" } else { ".dockerconfigjson" };
            if !has(k) {
                e.required(&key("data", k), "");
            } else {
                let ok =
                    decoded(k).and_then(|b| serde_json::from_slice::<Value>(&b).ok()).is_some_and(|v| v.is_object());
                if !ok {
                    e.invalid_str(
                        &key("data", k),
                        "<secret contents redacted>",
                        "invalid character looking for beginning of value",
                    );
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            e.required("data[username]", "");
            e.required("data[password]", "");
        }
        "kubernetes.io/ssh-auth" if decoded("ssh-privatekey").is_none_or(|b| b.is_empty()) => {
            e.required("data[ssh-privatekey]", "");
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                e.required("data[tls.crt]", "");
            }
            if !has("tls.key") {
                e.required("data[tls.key]", "");
            }
        }
        _ => {}
    }
}

fn validate_pvc_spec(spec: &Value, path: &str, e: &mut Errs) {
    let modes = ga(spec, "accessModes");
    if modes.is_empty() {
        e.required(&child(path, "accessModes"), "at least 1 access mode is required");
    }
    validate_label_selector(spec.get("selector"), &child(path, "selector"), e);
    let supported = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !supported.contains(&m) {
            e.not_supported_str(&child(path, "accessModes"), m, &supported);
        }
        if m == "ReadWriteOncePod" {
            rwop = true;
        } else if supported.contains(&m) {
            other = true;
        }
    }
    if rwop && other {
        e.forbidden(&child(path, "accessModes"), "may not use ReadWriteOncePod with other access modes");
    }
    let sp = key(&child(path, "resources"), "storage");
    match spec.pointer("/resources/requests/storage") {
        None => e.required(&sp, ""),
        Some(v) => {
            if let Some(qv) = v.as_str().and_then(parse_quantity) {
                if qv.nanos <= 0 {
                    e.invalid_str(&sp, &canonical_quantity(&qv), "must be greater than zero");
                }
            }
        }
    }
    if let Some(sc) = spec.get("storageClassName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        validate_dns1123_subdomain(sc, &child(path, "storageClassName"), e);
    }
    if let Some(vm) = spec.get("volumeMode").and_then(Value::as_str) {
        if vm != "Block" && vm != "Filesystem" {
            e.not_supported_str(&child(path, "volumeMode"), vm, &["Block", "Filesystem"]);
        }
    }
}

fn validate_pvc(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "", "PersistentVolumeClaim", e);
    validate_pvc_spec(obj.get("spec").unwrap_or(&empty), "spec", e);
}

fn validate_pvc_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta_update(obj, old, e);
    validate_pvc(obj, e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let old_spec = old.get("spec").unwrap_or(&empty);
    let mut new_c = spec.clone();
    let mut old_c = old_spec.clone();
    if gs(old_spec, "volumeName").is_empty() {
        if let (Some(n), Some(o)) = (new_c.as_object_mut(), old_c.as_object_mut()) {
            match n.get("volumeName") {
                Some(v) => {
                    o.insert("volumeName".into(), v.clone());
                }
                None => {
                    o.remove("volumeName");
                }
            }
        }
    }
    let bound = obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    if bound {
        if let Some(n) = new_c.as_object_mut() {
            if let Some(s) = old_spec.pointer("/resources/requests/storage") {
                if let Some(r) =
                    n.get_mut("resources").and_then(|r| r.get_mut("requests")).and_then(Value::as_object_mut)
                {
                    r.insert("storage".into(), s.clone());
                }
            }
            match old_spec.get("volumeAttributesClassName") {
                Some(v) => {
                    n.insert("volumeAttributesClassName".into(), v.clone());
                }
                None => {
                    n.remove("volumeAttributesClassName");
                }
            }
        }
    }
    if new_c != old_c {
        let diff = json_diff("core.PersistentVolumeClaimSpec", &old_c, &new_c);
        e.forbidden(
            "spec",
            &format!("spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{diff}"),
        );
    }
    let q_of = |v: &Value| v.pointer("/resources/requests/storage").and_then(Value::as_str).and_then(parse_quantity);
    if let (Some(n), Some(o)) = (q_of(spec), q_of(old_spec)) {
        if n.nanos < o.nanos {
            let status_cap = old
                .pointer("/status/capacity/storage")
                .and_then(Value::as_str)
                .and_then(parse_quantity)
                .map(|q| q.nanos)
                .unwrap_or(0);
            if n.nanos <= status_cap {
                e.forbidden("spec.resources.requests.storage", "field can not be less than status.capacity");
            }
        }
    }
    if spec.get("volumeMode") != old_spec.get("volumeMode") {
        let rendered = spec.get("volumeMode").and_then(Value::as_str).map(q).unwrap_or("null".into());
        e.invalid("volumeMode", rendered, IMMUTABLE);
    }
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

fn validate_pv(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "", "PersistentVolume", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let modes = ga(spec, "accessModes");
    if modes.is_empty() {
        e.required("spec.accessModes", "");
    }
    let supported = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !supported.contains(&m) {
            e.not_supported_str("spec.accessModes", m, &supported);
        }
        if m == "ReadWriteOncePod" {
            rwop = true;
        } else if supported.contains(&m) {
            other = true;
        }
    }
    if rwop && other {
        e.forbidden("spec.accessModes", "may not use ReadWriteOncePod with other access modes");
    }
    let cap = gm(spec, "capacity");
    if cap.is_none_or(Map::is_empty) {
        e.required("spec.capacity", "");
    }
    if cap.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        e.not_supported("spec.capacity", go_json(spec.get("capacity")), &["storage"]);
    }
    for (k, v) in sorted_entries(cap) {
        if let Some(qv) = v.as_str().and_then(parse_quantity) {
            if qv.nanos <= 0 {
                e.invalid_str(&key("spec.capacity", k), &canonical_quantity(&qv), "must be greater than zero");
            }
        }
    }
    let rp = gs(spec, "persistentVolumeReclaimPolicy");
    if !rp.is_empty() && !["Delete", "Recycle", "Retain"].contains(&rp) {
        e.not_supported_str("spec.persistentVolumeReclaimPolicy", rp, &["Delete", "Recycle", "Retain"]);
    }
    let mut n = 0;
    for s in PV_SOURCES {
        let Some(src) = spec.get(*s).filter(|v| !v.is_null()) else {
            continue;
        };
        if n > 0 {
            e.forbidden(&child("spec", s), "may not specify more than 1 volume type");
            continue;
        }
        n += 1;
        match *s {
            "hostPath" => validate_host_path(src, "spec.hostPath", e),
            "nfs" => {
                if gs(src, "server").is_empty() {
                    e.required("spec.nfs.server", "");
                }
                let p = gs(src, "path");
                if p.is_empty() {
                    e.required("spec.nfs.path", "");
                }
                if !p.starts_with('/') {
                    e.invalid_str("spec.nfs.path", p, "must be an absolute path");
                }
            }
            "local" => {
                let p = gs(src, "path");
                if p.is_empty() {
                    e.required("spec.local.path", "");
                } else {
                    validate_path_no_backsteps(p, "spec.local.path", e);
                }
                if spec.pointer("/nodeAffinity/required").is_none_or(Value::is_null) {
                    e.required("spec.nodeAffinity", "Local volume requires node affinity");
                }
            }
            "csi" => {
                if gs(src, "driver").is_empty() {
                    e.required("spec.csi.driver", "");
                }
                if gs(src, "volumeHandle").is_empty() {
                    e.required("spec.csi.volumeHandle", "");
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        e.required("spec", "must specify a volume type");
    }
    let sc = gs(spec, "storageClassName");
    if !sc.is_empty() {
        validate_dns1123_subdomain(sc, "spec.storageClassName", e);
    }
    if let Some(vm) = spec.get("volumeMode").and_then(Value::as_str) {
        if vm != "Block" && vm != "Filesystem" {
            e.not_supported_str("spec.volumeMode", vm, &["Block", "Filesystem"]);
        }
    }
}

fn validate_pv_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_pv(obj, e);
    validate_object_meta_update(obj, old, e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let old_spec = old.get("spec").unwrap_or(&empty);
    let pick = |s: &Value| -> Map<String, Value> {
        PV_SOURCES
            .iter()
            .filter_map(|k| s.get(*k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone())))
            .collect()
    };
    let (mut ns, os) = (pick(spec), pick(old_spec));
    // the CSI controllerExpandSecretRef may be added later
    if let (Some(n), Some(o)) = (ns.get_mut("csi"), os.get("csi")) {
        if !present(o, "controllerExpandSecretRef") {
            if let Some(m) = n.as_object_mut() {
                m.remove("controllerExpandSecretRef");
            }
        }
    }
    if ns != os {
        let diff = json_diff("core.PersistentVolumeSource", &Value::Object(os), &Value::Object(ns));
        e.forbidden(
            "spec.persistentvolumesource",
            &format!("spec.persistentvolumesource is immutable after creation\n{diff}"),
        );
    }
    if spec.get("volumeMode") != old_spec.get("volumeMode") {
        let rendered = spec.get("volumeMode").and_then(Value::as_str).map(q).unwrap_or("null".into());
        e.invalid("volumeMode", rendered, IMMUTABLE);
    }
}

// =============================================================================================
// Cluster objects

fn validate_namespace(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "", "Namespace", e);
    for f in obj.pointer("/spec/finalizers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let f = f.as_str().unwrap_or("");
        validate_qualified_name(f, "spec.finalizers", e);
        if !f.contains('/') && !is_standard_finalizer(f) {
            e.invalid_str("spec.finalizers", f, "name is neither a standard finalizer name nor is it fully qualified");
        }
    }
}

fn validate_taints(taints: &[Value], path: &str, e: &mut Errs) {
    let mut unique: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = idx(path, i);
        let k = gs(t, "key");
        validate_label_name(k, &child(&p, "key"), e);
        let v = gs(t, "value");
        let errs = is_valid_label_value(v);
        if !errs.is_empty() {
            e.invalid_str(&child(&p, "value"), v, &errs.join(";"));
        }
        let effect = gs(t, "effect");
        if effect.is_empty() {
            e.required(&child(&p, "effect"), "");
        } else if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            e.not_supported_str(&child(&p, "effect"), effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
        }
        if !unique.insert((effect.to_string(), k.to_string())) {
            let rendered =
                format!("core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}", q(k), q(v), q(effect));
            e.push(cause(
                "FieldValueDuplicate",
                &p,
                format!("Duplicate value: {rendered}: taints must be unique by key and effect pair"),
            ));
        }
    }
}

fn validate_node_resources(obj: &Value, e: &mut Errs) {
    for f in ["capacity", "allocatable"] {
        for (k, v) in sorted_entries(obj.pointer(&format!("/status/{f}")).and_then(Value::as_object)) {
            validate_resource_quantity_value(k, v, &format!("status.{f}.{k}"), e);
        }
    }
}

fn validate_node(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "", "Node", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    validate_taints(ga(spec, "taints"), "metadata.taints", e);
    validate_node_resources(obj, e);
    let cidrs = ga(spec, "podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        let c = c.as_str().unwrap_or("");
        for m in cidr_errors(c) {
            e.invalid_str(&idx("spec.podCIDRs", i), c, &m);
        }
    }
    if cidrs.len() > 1 {
        let v6: Vec<bool> = cidrs.iter().map(|c| c.as_str().unwrap_or("").contains(':')).collect();
        if cidrs.len() > 2 || v6[0] == v6[1] {
            e.invalid(
                "spec.podCIDRs",
                go_strings(spec.get("podCIDRs")),
                "may specify no more than one CIDR for each IP family",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            let c = c.as_str().unwrap_or("");
            if !seen.insert(c) {
                e.duplicate(&idx("spec.podCIDRs", i), q(c));
            }
        }
    }
}

fn validate_node_update(obj: &Value, old: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta_update(obj, old, e);
    validate_node_resources(obj, e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let old_spec = old.get("spec").unwrap_or(&empty);
    let old_cidrs = ga(old_spec, "podCIDRs");
    if !old_cidrs.is_empty() && ga(spec, "podCIDRs") != old_cidrs {
        e.forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid");
    }
    let old_pid = gs(old_spec, "providerID");
    if !old_pid.is_empty() && old_pid != gs(spec, "providerID") {
        e.forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid");
    }
    validate_taints(ga(spec, "taints"), "metadata.taints", e);
    if spec.get("externalID") != old_spec.get("externalID") {
        e.forbidden("spec.externalID", "may not be updated");
    }
}

fn validate_endpoints(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "", "Endpoints", e);
    for (i, ss) in ga(obj, "subsets").iter().enumerate() {
        let p = idx("subsets", i);
        if ga(ss, "addresses").is_empty() && ga(ss, "notReadyAddresses").is_empty() {
            e.required(&p, "must specify `addresses` or `notReadyAddresses`");
        }
        for f in ["addresses", "notReadyAddresses"] {
            for (j, a) in ga(ss, f).iter().enumerate() {
                let ap = idx(&child(&p, f), j);
                let ip = gs(a, "ip");
                for m in ip_errors(ip) {
                    e.invalid_str(&child(&ap, "ip"), ip, &m);
                }
                let h = gs(a, "hostname");
                if !h.is_empty() {
                    validate_dns1123_label(h, &child(&ap, "hostname"), e);
                }
                if let Some(nn) = a.get("nodeName").and_then(Value::as_str) {
                    validate_dns1123_subdomain(nn, &child(&ap, "nodeName"), e);
                }
                validate_non_special_ip(ip, &child(&ap, "ip"), e);
            }
        }
        let ports = ga(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = idx(&child(&p, "ports"), j);
            let n = gs(port, "name");
            if ports.len() > 1 && n.is_empty() {
                e.required(&child(&pp, "name"), "");
            } else if !n.is_empty() {
                validate_dns1123_label(n, &child(&pp, "name"), e);
            }
            let pn = gi(port, "port").unwrap_or(0);
            for m in is_valid_port_num(pn) {
                e.invalid_int(&child(&pp, "port"), pn, &m);
            }
            let proto = gs(port, "protocol");
            if proto.is_empty() {
                e.required(&child(&pp, "protocol"), "");
            } else if !SUPPORTED_PROTOCOLS.contains(&proto) {
                e.not_supported_str(&child(&pp, "protocol"), proto, SUPPORTED_PROTOCOLS);
            }
            if let Some(ap) = port.get("appProtocol").and_then(Value::as_str) {
                validate_qualified_name(ap, &child(&pp, "appProtocol"), e);
            }
        }
    }
}

fn validate_resource_quota(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "", "ResourceQuota", e);
    for (k, v) in sorted_entries(obj.pointer("/spec/hard").and_then(Value::as_object)) {
        let p = key("spec.hard", k);
        if validate_resource_name(k, &p, e) && !k.contains('/') {
            let quota_ok = STANDARD_RESOURCES.contains(&k.as_str())
                || k.starts_with("count/")
                || k.starts_with("requests.hugepages-")
                || k.ends_with(".storageclass.storage.k8s.io/requests.storage");
            if !quota_ok {
                e.invalid_str(&p, k, "must be a standard resource for quota");
            }
        }
        validate_resource_quantity_value(k, v, &p, e);
    }
}

fn validate_limit_range(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "", "LimitRange", e);
    let mut types = BTreeSet::new();
    for (i, l) in
        obj.pointer("/spec/limits").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate()
    {
        let p = idx("spec.limits", i);
        let t = gs(l, "type");
        validate_qualified_name(t, &child(&p, "type"), e);
        if !types.insert(t.to_string()) {
            e.duplicate(&child(&p, "type"), q(t));
        }
        if t == "Pod" {
            if gm(l, "default").is_some_and(|m| !m.is_empty()) {
                e.forbidden(&child(&p, "default"), "may not be specified when `type` is 'Pod'");
            }
            if gm(l, "defaultRequest").is_some_and(|m| !m.is_empty()) {
                e.forbidden(&child(&p, "defaultRequest"), "may not be specified when `type` is 'Pod'");
            }
        }
        let qv = |f: &str, k: &str| l.get(f).and_then(|m| m.get(k)).and_then(Value::as_str).and_then(parse_quantity);
        let keys: BTreeSet<String> = ["max", "min", "default", "defaultRequest"]
            .iter()
            .flat_map(|f| gm(l, f).map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
            .collect();
        for k in keys {
            if let (Some(mn), Some(mx)) = (qv("min", &k), qv("max", &k)) {
                if mn.nanos > mx.nanos {
                    e.invalid_str(
                        &key(&child(&p, "min"), &k),
                        &canonical_quantity(&mn),
                        &format!(
                            "min value {} is greater than max value {}",
                            canonical_quantity(&mn),
                            canonical_quantity(&mx)
                        ),
                    );
                }
            }
            if let (Some(dr), Some(mx)) = (qv("defaultRequest", &k), qv("max", &k)) {
                if dr.nanos > mx.nanos {
                    e.invalid_str(
                        &key(&child(&p, "defaultRequest"), &k),
                        &canonical_quantity(&dr),
                        &format!(
                            "default request value {} is greater than max value {}",
                            canonical_quantity(&dr),
                            canonical_quantity(&mx)
                        ),
                    );
                }
            }
            if let (Some(d), Some(mx)) = (qv("default", &k), qv("max", &k)) {
                if d.nanos > mx.nanos {
                    e.invalid_str(
                        &key(&child(&p, "default"), &k),
                        &canonical_quantity(&mx),
                        &format!(
                            "default value {} is greater than max value {}",
                            canonical_quantity(&d),
                            canonical_quantity(&mx)
                        ),
                    );
                }
            }
        }
    }
}

// =============================================================================================
// RBAC

fn validate_policy_rules(obj: &Value, namespaced: bool, e: &mut Errs) {
    for (i, r) in ga(obj, "rules").iter().enumerate() {
        let p = idx("rules", i);
        if ga(r, "verbs").is_empty() {
            e.required(&child(&p, "verbs"), "verbs must contain at least one value");
        }
        let nru = ga(r, "nonResourceURLs");
        if !nru.is_empty() {
            if namespaced {
                e.invalid(
                    &child(&p, "nonResourceURLs"),
                    go_strings(r.get("nonResourceURLs")),
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !ga(r, "apiGroups").is_empty() || !ga(r, "resources").is_empty() || !ga(r, "resourceNames").is_empty() {
                e.invalid(
                    &child(&p, "nonResourceURLs"),
                    go_strings(r.get("nonResourceURLs")),
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if ga(r, "apiGroups").is_empty() {
            e.required(&child(&p, "apiGroups"), "resource rules must supply at least one api group");
        }
        if ga(r, "resources").is_empty() {
            e.required(&child(&p, "resources"), "resource rules must supply at least one resource");
        }
        if !ga(r, "resourceNames").is_empty() && ga(r, "resources").len() > 1 {
            e.required(&child(&p, "resourceNames"), "resource names cannot apply to multiple resources");
        }
    }
}

fn validate_binding(obj: &Value, cluster: bool, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let rr = obj.get("roleRef").unwrap_or(&empty);
    let api_group = gs(rr, "apiGroup");
    if api_group != "rbac.authorization.k8s.io" {
        e.not_supported_str("roleRef.apiGroup", api_group, &["rbac.authorization.k8s.io"]);
    }
    let k = gs(rr, "kind");
    if cluster {
        if k != "ClusterRole" {
            e.not_supported_str("roleRef.kind", k, &["ClusterRole"]);
        }
    } else if k != "Role" && k != "ClusterRole" {
        e.not_supported_str("roleRef.kind", k, &["Role", "ClusterRole"]);
    }
    let n = gs(rr, "name");
    if n.is_empty() {
        e.required("roleRef.name", "");
    } else {
        for m in is_valid_path_segment_name(n) {
            e.invalid_str("roleRef.name", n, &m);
        }
    }
    for (i, s) in ga(obj, "subjects").iter().enumerate() {
        let p = idx("subjects", i);
        let name = gs(s, "name");
        let ag = gs(s, "apiGroup");
        if name.is_empty() {
            e.required(&child(&p, "name"), "");
        }
        match gs(s, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for m in is_dns1123_subdomain(name) {
                        e.invalid_str(&child(&p, "name"), name, &m);
                    }
                }
                if !ag.is_empty() {
                    e.not_supported_str(&child(&p, "apiGroup"), ag, &[""]);
                }
                if cluster && gs(s, "namespace").is_empty() {
                    e.required(&child(&p, "namespace"), "");
                }
            }
            "User" | "Group" => {
                if name.is_empty() {
                    let what = if gs(s, "kind") == "User" { "user" } else { "group" };
                    e.invalid_str(&child(&p, "name"), name, &format!("{what} name cannot be empty"));
                }
                if ag != "rbac.authorization.k8s.io" {
                    e.not_supported_str(&child(&p, "apiGroup"), ag, &["rbac.authorization.k8s.io"]);
                }
            }
            other => e.not_supported_str(&child(&p, "kind"), other, &["ServiceAccount", "User", "Group"]),
        }
    }
}

fn go_role_ref(v: Option<&Value>) -> String {
    let empty = Value::Object(Map::new());
    let v = v.unwrap_or(&empty);
    format!("rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}", q(gs(v, "apiGroup")), q(gs(v, "kind")), q(gs(v, "name")))
}

// =============================================================================================
// Networking, coordination, events, autoscaling, policy, scheduling, storage

fn validate_ingress_backend(b: &Value, path: &str, e: &mut Errs) {
    let has_res = present(b, "resource");
    let svc = b.get("service").filter(|v| v.is_object());
    match (has_res, svc) {
        (true, Some(_)) => e.invalid_str(path, "", "cannot set both resource and service backends"),
        (true, None) => {
            let r = &b["resource"];
            let rp = child(path, "resource");
            if let Some(g) = r.get("apiGroup").and_then(Value::as_str) {
                validate_dns1123_subdomain(g, &child(&rp, "apiGroup"), e);
            }
            for f in ["kind", "name"] {
                let v = gs(r, f);
                if v.is_empty() {
                    e.required(&child(&rp, f), &format!("{f} is required"));
                } else {
                    for m in is_valid_path_segment_name(v) {
                        e.invalid_str(&child(&rp, f), v, &m);
                    }
                }
            }
        }
        (false, Some(s)) => {
            let n = gs(s, "name");
            if n.is_empty() {
                e.required(&child(path, "service.name"), "");
            } else {
                for m in is_dns1035_label(n) {
                    e.invalid_str(&child(path, "service.name"), n, &m);
                }
            }
            let empty = Value::Object(Map::new());
            let port = s.get("port").unwrap_or(&empty);
            let pname = gs(port, "name");
            let pnum = gi(port, "number").unwrap_or(0);
            if !pname.is_empty() && pnum != 0 {
                e.invalid_str(path, "", "cannot set both port name & port number");
            } else if !pname.is_empty() {
                for m in is_valid_port_name(pname) {
                    e.invalid_str(&child(path, "service.port.name"), pname, &m);
                }
            } else if pnum != 0 {
                for m in is_valid_port_num(pnum) {
                    e.invalid_int(&child(path, "service.port.number"), pnum, &m);
                }
            } else {
                e.required(path, "port name or number is required");
            }
        }
        (false, None) => e.invalid_str(path, "", "resource or service backend is required"),
    }
}

fn validate_ingress(obj: &Value, create: bool, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "networking.k8s.io", "Ingress", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let rules = ga(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|v| v.is_object());
    if rules.is_empty() && default_backend.is_none() {
        e.invalid(
            "spec",
            "[]networking.IngressRule(nil)".into(),
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(b) = default_backend {
        validate_ingress_backend(b, "spec.defaultBackend", e);
    }
    for (i, r) in rules.iter().enumerate() {
        let p = idx("spec.rules", i);
        let host = gs(r, "host");
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                e.invalid_str(&child(&p, "host"), host, "must be a DNS name, not an IP address");
            }
            let msgs =
                if host.contains('*') { is_wildcard_dns1123_subdomain(host) } else { is_dns1123_subdomain(host) };
            for m in msgs {
                e.invalid_str(&child(&p, "host"), host, &m);
            }
        }
        if let Some(http) = r.get("http").filter(|v| v.is_object()) {
            let hp = child(&p, "http");
            let paths = ga(http, "paths");
            if paths.is_empty() {
                e.required(&child(&hp, "paths"), "");
            }
            for (j, pa) in paths.iter().enumerate() {
                let pp = idx(&child(&hp, "paths"), j);
                let path_s = gs(pa, "path");
                match pa.get("pathType").and_then(Value::as_str) {
                    None => {
                        e.required(&child(&pp, "pathType"), "pathType must be specified");
                        continue;
                    }
                    Some("Exact") | Some("Prefix") => {
                        if !path_s.starts_with('/') {
                            e.invalid_str(&child(&pp, "path"), path_s, "must be an absolute path");
                        }
                        if !path_s.is_empty() {
                            for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                                if path_s.contains(seq) {
                                    e.invalid_str(&child(&pp, "path"), path_s, &format!("must not contain '{seq}'"));
                                }
                            }
                            for suf in ["/..", "/."] {
                                if path_s.ends_with(suf) {
                                    e.invalid_str(&child(&pp, "path"), path_s, &format!("cannot end with '{suf}'"));
                                }
                            }
                        }
                    }
                    Some("ImplementationSpecific") => {
                        if !path_s.is_empty() && !path_s.starts_with('/') {
                            e.invalid_str(&child(&pp, "path"), path_s, "must be an absolute path");
                        }
                    }
                    Some(other) => e.not_supported_str(
                        &child(&pp, "pathType"),
                        other,
                        &["Exact", "ImplementationSpecific", "Prefix"],
                    ),
                }
                validate_ingress_backend(pa.get("backend").unwrap_or(&empty), &child(&pp, "backend"), e);
            }
        }
    }
    for (i, t) in ga(spec, "tls").iter().enumerate() {
        let tp = idx("spec.tls", i);
        for (j, h) in ga(t, "hosts").iter().enumerate() {
            let h = h.as_str().unwrap_or("");
            let msgs = if h.contains('*') { is_wildcard_dns1123_subdomain(h) } else { is_dns1123_subdomain(h) };
            for m in msgs {
                e.invalid_str(&idx(&child(&tp, "hosts"), j), h, &m);
            }
        }
        let sn = gs(t, "secretName");
        if !sn.is_empty() {
            validate_dns1123_subdomain(sn, &child(&tp, "secretName"), e);
        }
    }
    if let Some(cn) = spec.get("ingressClassName").and_then(Value::as_str) {
        validate_dns1123_subdomain(cn, "spec.ingressClassName", e);
    }
    if create {
        let ann = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("kubernetes.io/ingress.class"))
            .and_then(Value::as_str);
        if let (Some(a), Some(cn)) = (ann, spec.get("ingressClassName").and_then(Value::as_str)) {
            if a != cn {
                e.invalid_str(
                    "annotations.kubernetes.io/ingress.class",
                    a,
                    "must match `ingressClassName` when both are specified",
                );
            }
        }
    }
}

fn validate_network_policy(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "networking.k8s.io", "NetworkPolicy", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    validate_label_selector(spec.get("podSelector"), "spec.podSelector", e);
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, r) in ga(spec, dir).iter().enumerate() {
            let rp = idx(&child("spec", dir), i);
            for (j, p) in ga(r, "ports").iter().enumerate() {
                let pp = idx(&child(&rp, "ports"), j);
                if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
                    if !SUPPORTED_PROTOCOLS.contains(&proto) {
                        e.not_supported_str(&child(&pp, "protocol"), proto, SUPPORTED_PROTOCOLS);
                    }
                }
                if let Some(port) = p.get("port").filter(|v| !v.is_null()) {
                    validate_port_num_or_name(Some(port), &child(&pp, "port"), e);
                }
            }
            for (j, peer) in ga(r, peers).iter().enumerate() {
                let pp = idx(&child(&rp, peers), j);
                validate_label_selector(peer.get("podSelector"), &child(&pp, "podSelector"), e);
                validate_label_selector(peer.get("namespaceSelector"), &child(&pp, "namespaceSelector"), e);
                if let Some(ipb) = peer.get("ipBlock").filter(|v| v.is_object()) {
                    let cidr = gs(ipb, "cidr");
                    if cidr.is_empty() {
                        e.required(&child(&pp, "ipBlock.cidr"), "");
                    } else {
                        for m in cidr_errors(cidr) {
                            e.invalid_str(&child(&pp, "ipBlock.cidr"), cidr, &m);
                        }
                    }
                }
            }
        }
    }
    let types = ga(spec, "policyTypes");
    if types.len() > 2 {
        e.invalid("spec.policyTypes", go_strings(spec.get("policyTypes")), "may not specify more than two policyTypes");
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if t != "Ingress" && t != "Egress" {
            e.not_supported_str(&idx("spec.policyTypes", i), t, &["Egress", "Ingress"]);
        }
    }
}

fn validate_lease(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "coordination.k8s.io", "Lease", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    if let Some(d) = gi(spec, "leaseDurationSeconds") {
        if d <= 0 {
            e.invalid_int("spec.leaseDurationSeconds", d, "must be greater than 0");
        }
    }
    e.nonnegative("spec.leaseTransitions", gi(spec, "leaseTransitions"));
    if let Some(s) = spec.get("strategy").and_then(Value::as_str) {
        if s != "OldestEmulationVersion" {
            e.not_supported_str("spec.strategy", s, &["OldestEmulationVersion"]);
        }
    }
}

/// Core v1 Events only get the legacy checks; events.k8s.io Events the strict ones too. Field
/// paths are those of the internal (core) Event, as upstream validates after conversion.
fn validate_event(obj: &Value, events_api: bool, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    let meta = obj.get("metadata").unwrap_or(&empty);
    let ns = gs(meta, "namespace");
    let (involved, controller_field, message) = if events_api {
        (obj.get("regarding").unwrap_or(&empty), "reportingController", gs(obj, "note"))
    } else {
        (obj.get("involvedObject").unwrap_or(&empty), "reportingComponent", gs(obj, "message"))
    };
    let involved_path = "involvedObject.namespace";
    let event_time = gs(obj, "eventTime");
    let ins = gs(involved, "namespace");
    if event_time.is_empty() {
        if ins.is_empty() {
            if !ns.is_empty() && ns != "default" {
                e.invalid_str(involved_path, ins, "does not match event.namespace");
            }
        } else if ns != ins {
            e.invalid_str(involved_path, ins, "does not match event.namespace");
        }
    } else {
        if ins.is_empty() && ns != "default" && ns != "kube-system" {
            e.invalid_str(involved_path, ins, "does not match event.namespace");
        }
        let rc = gs(obj, controller_field);
        if rc.is_empty() {
            e.required(controller_field, "");
        }
        validate_qualified_name(rc, controller_field, e);
        let ri = gs(obj, "reportingInstance");
        if ri.is_empty() {
            e.required("reportingInstance", "");
        }
        if ri.len() > 128 {
            e.invalid_str("reportingInstance", "", "can have at most 128 characters");
        }
        let action = gs(obj, "action");
        if action.is_empty() {
            e.required("action", "");
        }
        if action.len() > 128 {
            e.invalid_str("action", "", "can have at most 128 characters");
        }
        let reason = gs(obj, "reason");
        if reason.is_empty() {
            e.required("reason", "");
        }
        if reason.len() > 128 {
            e.invalid_str("reason", "", "can have at most 128 characters");
        }
        if message.len() > 1024 {
            e.invalid_str("message", "", "can have at most 1024 characters");
        }
    }
    for m in is_dns1123_subdomain(ns) {
        e.invalid_str("namespace", ns, &m);
    }
    if events_api {
        validate_object_meta(obj, "events.k8s.io", "Event", e);
        if let Some(series) = obj.get("series").filter(|s| s.is_object()) {
            if gi(series, "count").unwrap_or(0) < 2 {
                e.invalid_str("series.count", "", "should be at least 2");
            }
        }
        if event_time.is_empty() {
            e.required("eventTime", "");
        }
        let t = gs(obj, "type");
        if t != "Normal" && t != "Warning" {
            e.invalid_str("type", "", &format!("has invalid value: {t}"));
        }
        if present(obj, "deprecatedFirstTimestamp") {
            e.invalid_str("firstTimestamp", "", "needs to be unset");
        }
        if present(obj, "deprecatedLastTimestamp") {
            e.invalid_str("lastTimestamp", "", "needs to be unset");
        }
        if gi(obj, "deprecatedCount").unwrap_or(0) != 0 {
            e.invalid_str("count", "", "needs to be unset");
        }
        if let Some(src) = obj.get("deprecatedSource") {
            if !gs(src, "component").is_empty() || !gs(src, "host").is_empty() {
                e.invalid_str("source", "", "needs to be unset");
            }
        }
    }
}

fn validate_hpa(obj: &Value, old: Option<&Value>, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "autoscaling", "HorizontalPodAutoscaler", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let min_bound =
        if old.and_then(|o| o.pointer("/spec/minReplicas")).and_then(Value::as_i64) == Some(0) { 0 } else { 1 };
    let min = gi(spec, "minReplicas");
    if let Some(m) = min {
        if m < min_bound {
            e.invalid_int("spec.minReplicas", m, &format!("must be greater than or equal to {min_bound}"));
        }
    }
    let max = gi(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        e.invalid_int("spec.maxReplicas", max, "must be greater than 0");
    }
    if min.is_some_and(|m| max < m) {
        e.invalid_int("spec.maxReplicas", max, "must be greater than or equal to `minReplicas`");
    }
    let r = spec.get("scaleTargetRef").unwrap_or(&empty);
    for f in ["kind", "name"] {
        let v = gs(r, f);
        let p = format!("spec.scaleTargetRef.{f}");
        if v.is_empty() {
            e.required(&p, "");
        } else {
            for m in is_valid_path_segment_name(v) {
                e.invalid_str(&p, v, &m);
            }
        }
    }
    let types = ["ContainerResource", "External", "Object", "Pods", "Resource"];
    for (i, m) in ga(spec, "metrics").iter().enumerate() {
        let p = idx("spec.metrics", i);
        let t = gs(m, "type");
        if t.is_empty() {
            e.required(&child(&p, "type"), "must specify a metric source type");
        }
        if !types.contains(&t) {
            e.not_supported_str(&child(&p, "type"), t, &types);
        }
        let field = match t {
            "ContainerResource" => "containerResource",
            "External" => "external",
            "Object" => "object",
            "Pods" => "pods",
            "Resource" => "resource",
            _ => "",
        };
        if !field.is_empty() && !present(m, field) {
            e.required(&child(&p, field), "must populate information for the given metric source");
        }
    }
    if let Some(b) = spec.get("behavior").filter(|v| v.is_object()) {
        for dir in ["scaleUp", "scaleDown"] {
            let Some(rules) = b.get(dir).filter(|v| v.is_object()) else {
                continue;
            };
            let rp = format!("spec.behavior.{dir}");
            if let Some(w) = gi(rules, "stabilizationWindowSeconds") {
                if w < 0 {
                    e.invalid_int(
                        &child(&rp, "stabilizationWindowSeconds"),
                        w,
                        "must be greater than or equal to zero",
                    );
                }
                if w > 3600 {
                    e.invalid_int(&child(&rp, "stabilizationWindowSeconds"), w, "must be less than or equal to 3600");
                }
            }
            if let Some(sp) = rules.get("selectPolicy").and_then(Value::as_str) {
                if !["Disabled", "Max", "Min"].contains(&sp) {
                    e.not_supported_str(&child(&rp, "selectPolicy"), sp, &["Disabled", "Max", "Min"]);
                }
            }
            let pols = ga(rules, "policies");
            if pols.is_empty() {
                e.required(&child(&rp, "policies"), "must specify at least one Policy");
            }
            for (i, pol) in pols.iter().enumerate() {
                let pp = idx(&child(&rp, "policies"), i);
                let t = gs(pol, "type");
                if t != "Pods" && t != "Percent" {
                    e.not_supported_str(&child(&pp, "type"), t, &["Percent", "Pods"]);
                }
                let v = gi(pol, "value").unwrap_or(0);
                if v <= 0 {
                    e.invalid_int(&child(&pp, "value"), v, "must be greater than zero");
                }
                let ps = gi(pol, "periodSeconds").unwrap_or(0);
                if ps <= 0 {
                    e.invalid_int(&child(&pp, "periodSeconds"), ps, "must be greater than zero");
                }
                if ps > 1800 {
                    e.invalid_int(&child(&pp, "periodSeconds"), ps, "must be less than or equal to 1800");
                }
            }
        }
    }
}

fn validate_pdb(obj: &Value, e: &mut Errs) {
    let empty = Value::Object(Map::new());
    validate_object_meta(obj, "policy", "PodDisruptionBudget", e);
    let spec = obj.get("spec").unwrap_or(&empty);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        e.invalid("spec", go_json(Some(spec)), "minAvailable and maxUnavailable cannot be both set");
    }
    for (f, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        if v.is_some() {
            let p = format!("spec.{f}");
            validate_positive_int_or_percent(v, &p, e);
            not_more_than_100_percent(v, &p, e);
        }
    }
    validate_label_selector(spec.get("selector"), "spec.selector", e);
    if let Some(p) = spec.get("unhealthyPodEvictionPolicy").and_then(Value::as_str) {
        if p != "IfHealthyBudget" && p != "AlwaysAllow" {
            e.not_supported_str("spec.unhealthyPodEvictionPolicy", p, &["AlwaysAllow", "IfHealthyBudget"]);
        }
    }
}

fn validate_priority_class(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "scheduling.k8s.io", "PriorityClass", e);
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let system = ["system-node-critical", "system-cluster-critical"];
    if name.starts_with("system-") && !system.contains(&name) {
        e.forbidden("metadata.name", "priority class names with 'system-' prefix are reserved");
    }
    if let Some(v) = gi(obj, "value") {
        if v > 1_000_000_000 && !system.contains(&name) {
            e.forbidden("value", "maximum allowed value of a user defined priority is 1000000000");
        }
    }
    if let Some(pp) = obj.get("preemptionPolicy").and_then(Value::as_str) {
        if pp != "PreemptLowerPriority" && pp != "Never" {
            e.not_supported_str("preemptionPolicy", pp, &["PreemptLowerPriority", "Never"]);
        }
    }
}

fn validate_storage_class(obj: &Value, e: &mut Errs) {
    validate_object_meta(obj, "storage.k8s.io", "StorageClass", e);
    let prov = gs(obj, "provisioner");
    if prov.is_empty() {
        e.required("provisioner", "");
    } else if prov.len() > 63 {
        e.too_long("provisioner", 63);
    }
    if let Some(rp) = obj.get("reclaimPolicy").and_then(Value::as_str) {
        if rp != "Delete" && rp != "Retain" {
            e.not_supported_str("reclaimPolicy", rp, &["Delete", "Retain"]);
        }
    }
    if let Some(m) = obj.get("volumeBindingMode").and_then(Value::as_str) {
        if m != "Immediate" && m != "WaitForFirstConsumer" {
            e.not_supported_str("volumeBindingMode", m, &["Immediate", "WaitForFirstConsumer"]);
        }
    }
}

// =============================================================================================
// Entry points

fn spec_of(obj: &Value) -> &Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    obj.get("spec").unwrap_or_else(|| EMPTY.get_or_init(|| Value::Object(Map::new())))
}

fn create_errs(group: &str, kind: &str, obj: &Value, e: &mut Errs) {
    match (group, kind) {
        ("", "Pod") => validate_pod_create(obj, e),
        ("", "PodTemplate") => {
            validate_object_meta(obj, group, kind, e);
            validate_pod_template_spec(obj.get("template"), "template", e);
        }
        ("", "ReplicationController") => {
            validate_object_meta(obj, group, kind, e);
            validate_replication_controller_spec(spec_of(obj), e);
        }
        ("", "Service") => validate_service(obj, e),
        ("", "ConfigMap") => validate_config_map(obj, e),
        ("", "Secret") => validate_secret(obj, e),
        ("", "Namespace") => validate_namespace(obj, e),
        ("", "Node") => validate_node(obj, e),
        ("", "PersistentVolume") => validate_pv(obj, e),
        ("", "PersistentVolumeClaim") => validate_pvc(obj, e),
        ("", "Endpoints") => validate_endpoints(obj, e),
        ("", "ResourceQuota") => validate_resource_quota(obj, e),
        ("", "LimitRange") => validate_limit_range(obj, e),
        ("", "Event") => validate_event(obj, false, e),
        ("events.k8s.io", "Event") => validate_event(obj, true, e),
        ("apps", "Deployment") => {
            validate_object_meta(obj, group, kind, e);
            validate_deployment_spec(spec_of(obj), e);
        }
        ("apps", "ReplicaSet") => {
            validate_object_meta(obj, group, kind, e);
            validate_replica_set_spec(spec_of(obj), e);
        }
        ("apps", "DaemonSet") => {
            validate_object_meta(obj, group, kind, e);
            validate_daemon_set_spec(spec_of(obj), e);
        }
        ("apps", "StatefulSet") => {
            validate_object_meta(obj, group, kind, e);
            validate_stateful_set_spec(spec_of(obj), e);
        }
        ("batch", "Job") => validate_job(obj, true, e),
        ("batch", "CronJob") => {
            validate_object_meta(obj, group, kind, e);
            validate_cron_job_spec(spec_of(obj), None, e);
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            if name.len() > 52 {
                e.invalid_str("metadata.name", name, "must be no more than 52 characters");
            }
        }
        ("rbac.authorization.k8s.io", "Role") => {
            validate_object_meta(obj, group, kind, e);
            validate_policy_rules(obj, true, e);
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            validate_object_meta(obj, group, kind, e);
            validate_policy_rules(obj, false, e);
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            validate_object_meta(obj, group, kind, e);
            validate_binding(obj, false, e);
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            validate_object_meta(obj, group, kind, e);
            validate_binding(obj, true, e);
        }
        ("networking.k8s.io", "Ingress") => validate_ingress(obj, true, e),
        ("networking.k8s.io", "NetworkPolicy") => validate_network_policy(obj, e),
        ("coordination.k8s.io", "Lease") => validate_lease(obj, e),
        ("autoscaling", "HorizontalPodAutoscaler") => validate_hpa(obj, None, e),
        ("policy", "PodDisruptionBudget") => validate_pdb(obj, e),
        ("scheduling.k8s.io", "PriorityClass") => validate_priority_class(obj, e),
        ("storage.k8s.io", "StorageClass") => validate_storage_class(obj, e),
        _ => validate_object_meta(obj, group, kind, e),
    }
}

/// Validation of a new object (after defaults). Returns causes with upstream field paths and
/// messages. Whether the kind is namespaced is known from the group/kind (unknown kinds are
/// treated as namespaced).
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut e = Errs::default();
    create_errs(group, kind, obj, &mut e);
    validate_kube_finalizer_names(group, obj, &mut e);
    e.finish()
}

/// Core's `validateKubeFinalizerName`, which the in-tree API groups apply (apiextensions and
/// custom resources only need qualified names): a finalizer without a `/` must be a standard one.
fn validate_kube_finalizer_names(group: &str, obj: &Value, e: &mut Errs) {
    if group == "apiextensions.k8s.io" || !crate::api::registry::is_builtin_group(group) {
        return;
    }
    let empty = Value::Object(Map::new());
    let meta = obj.get("metadata").unwrap_or(&empty);
    for (i, f) in ga(meta, "finalizers").iter().filter_map(Value::as_str).enumerate() {
        if !f.contains('/') && !is_standard_finalizer(f) {
            e.invalid_str(
                &idx("metadata.finalizers", i),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
}

/// Validation of an update (after defaults), including upstream's immutable-field rules.
pub fn validate_update(group: &str, kind: &str, obj: &Value, old: &Value) -> Vec<Cause> {
    let mut e = Errs::default();
    match (group, kind) {
        ("", "Pod") => validate_pod_update(obj, old, &mut e),
        ("", "Service") => validate_service_update(obj, old, &mut e),
        ("", "ConfigMap") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_immutable_data(obj, old, &["data", "binaryData"], &mut e);
            validate_config_map(obj, &mut e);
        }
        ("", "Secret") => {
            validate_object_meta_update(obj, old, &mut e);
            let (nt, ot) = (gs(obj, "type"), gs(old, "type"));
            if nt != ot {
                e.invalid_str("type", nt, IMMUTABLE);
            }
            validate_immutable_data(obj, old, &["data"], &mut e);
            validate_secret(obj, &mut e);
        }
        ("", "Namespace") => {
            // the spec is owned by the finalize subresource
            validate_object_meta_update(obj, old, &mut e);
        }
        ("", "Node") => validate_node_update(obj, old, &mut e),
        ("", "PersistentVolume") => validate_pv_update(obj, old, &mut e),
        ("", "PersistentVolumeClaim") => validate_pvc_update(obj, old, &mut e),
        ("", "Event") | ("events.k8s.io", "Event") => {
            create_errs(group, kind, obj, &mut e);
            validate_object_meta_update(obj, old, &mut e);
        }
        ("", "ReplicationController") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_replication_controller_spec(spec_of(obj), &mut e);
        }
        ("", "PodTemplate") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_pod_template_spec(obj.get("template"), "template", &mut e);
        }
        ("apps", "Deployment") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_deployment_spec(spec_of(obj), &mut e);
            selector_immutable(obj, old, &mut e);
        }
        ("apps", "ReplicaSet") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_replica_set_spec(spec_of(obj), &mut e);
            selector_immutable(obj, old, &mut e);
        }
        ("apps", "DaemonSet") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_daemon_set_spec(spec_of(obj), &mut e);
            selector_immutable(obj, old, &mut e);
        }
        ("apps", "StatefulSet") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_stateful_set_spec(spec_of(obj), &mut e);
            let mut n = spec_of(obj).clone();
            let o = spec_of(old);
            if let Some(m) = n.as_object_mut() {
                for f in [
                    "replicas",
                    "template",
                    "updateStrategy",
                    "minReadySeconds",
                    "ordinals",
                    "persistentVolumeClaimRetentionPolicy",
                ] {
                    match o.get(f) {
                        Some(v) => {
                            m.insert(f.into(), v.clone());
                        }
                        None => {
                            m.remove(f);
                        }
                    }
                }
            }
            if &n != o {
                e.forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                );
            }
        }
        ("batch", "Job") => validate_job_update(obj, old, &mut e),
        ("batch", "CronJob") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_cron_job_spec(spec_of(obj), Some(spec_of(old)), &mut e);
        }
        ("rbac.authorization.k8s.io", "RoleBinding") | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            create_errs(group, kind, obj, &mut e);
            validate_object_meta_update(obj, old, &mut e);
            let norm = |v: Option<&Value>| {
                v.map(|r| (gs(r, "apiGroup").to_string(), gs(r, "kind").to_string(), gs(r, "name").to_string()))
            };
            if norm(obj.get("roleRef")) != norm(old.get("roleRef")) {
                e.invalid("roleRef", go_role_ref(obj.get("roleRef")), "cannot change roleRef");
            }
        }
        ("networking.k8s.io", "Ingress") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_ingress(obj, false, &mut e);
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            validate_object_meta_update(obj, old, &mut e);
            validate_hpa(obj, Some(old), &mut e);
        }
        _ => {
            create_errs(group, kind, obj, &mut e);
            validate_object_meta_update(obj, old, &mut e);
        }
    }
    validate_kube_finalizer_names(group, obj, &mut e);
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::defaults::apply_defaults;
    use serde_json::json;

    fn msgs(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::display).collect()
    }

    fn has(causes: &[Cause], expected: &str) -> bool {
        causes.iter().any(|c| c.display() == expected)
    }

    #[track_caller]
    fn assert_has(causes: &[Cause], expected: &str) {
        assert!(has(causes, expected), "missing {expected:?} in {:#?}", msgs(causes));
    }

    #[track_caller]
    fn assert_clean(causes: &[Cause]) {
        assert!(causes.is_empty(), "unexpected causes: {:#?}", msgs(causes));
    }

    fn defaulted(group: &str, kind: &str, mut v: Value) -> Value {
        apply_defaults(group, kind, &mut v);
        v
    }

    fn create(group: &str, kind: &str, v: Value) -> Vec<Cause> {
        let v = defaulted(group, kind, v);
        validate_create(group, kind, &v)
    }

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    // ---- formats

    #[test]
    fn dns_names_and_messages() {
        assert!(is_dns1123_subdomain("my-app.example.com").is_empty());
        assert_eq!(is_dns1123_subdomain("Bad_Name"), vec![SUBDOMAIN_MSG.to_string()]);
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254))[0], "must be no more than 253 characters");
        assert!(is_dns1123_label("web-1").is_empty());
        assert_eq!(is_dns1123_label("Web"), vec![LABEL_MSG.to_string()]);
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots".to_string()]);
        assert_eq!(is_dns1123_label(&"a".repeat(64))[0], "must be no more than 63 characters");
        assert_eq!(
            is_dns1035_label("1abc"),
            vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
    }

    #[test]
    fn qualified_names_and_label_values() {
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(is_qualified_name("MyName").is_empty());
        assert_eq!(
            is_qualified_name("-bad"),
            vec!["name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string()]
        );
        assert_eq!(is_qualified_name("/a"), vec!["prefix part must be non-empty".to_string()]);
        assert_eq!(is_qualified_name("Example.com/a")[0], format!("prefix part {SUBDOMAIN_MSG}"));
        assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist of"));
        assert_eq!(is_qualified_name("a/").len(), 2);
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("v1.2_x").is_empty());
        assert_eq!(
            is_valid_label_value("bad value"),
            vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()]
        );
        assert_eq!(is_valid_label_value(&"a".repeat(64))[0], "must be no more than 63 characters");
    }

    #[test]
    fn name_rules_per_kind() {
        assert!(validate_name("", "ConfigMap", "a.b").is_empty());
        assert_eq!(validate_name("", "Namespace", "a.b"), vec!["must not contain dots".to_string()]);
        assert!(validate_name("", "Service", "1web")[0].starts_with("a DNS-1035 label"));
        assert!(validate_name("apps", "StatefulSet", "db.x")[0].starts_with("must not contain dots"));
        assert!(validate_name("apps", "Deployment", "web.v1").is_empty());
        assert!(validate_name("rbac.authorization.k8s.io", "ClusterRole", "system:aggregate-to-view").is_empty());
        assert_eq!(validate_name("rbac.authorization.k8s.io", "Role", "a/b"), vec!["may not contain '/'".to_string()]);
        assert_eq!(
            validate_name("rbac.authorization.k8s.io", "RoleBinding", ".."),
            vec!["may not be '..'".to_string()]
        );
    }

    #[test]
    fn quantities_parse_and_canonicalize() {
        let c = |s: &str| canonical_quantity(&parse_quantity(s).unwrap());
        assert_eq!(c("2000m"), "2");
        assert_eq!(c("1500m"), "1500m");
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("512"), "512");
        assert_eq!(c("1e3"), "1e3");
        assert_eq!(c("1000k"), "1M");
        assert_eq!(c("-1"), "-1");
        assert_eq!(c("0"), "0");
        assert!(parse_quantity("abc").is_none());
        assert!(parse_quantity("1Gb").is_none());
        assert!(parse_quantity("1Gi").unwrap().nanos > parse_quantity("1G").unwrap().nanos);
    }

    #[test]
    fn cron_schedules() {
        assert!(parse_cron_schedule("*/5 * * * *").is_ok());
        assert!(parse_cron_schedule("0 3 * * mon-fri").is_ok());
        assert!(parse_cron_schedule("@hourly").is_ok());
        assert!(parse_cron_schedule("@every 1h30m").is_ok());
        assert_eq!(parse_cron_schedule("* * *").unwrap_err(), "expected exactly 5 fields, found 3: [* * *]");
        assert_eq!(parse_cron_schedule("61 * * * *").unwrap_err(), "end of range (61) above maximum (59): 61");
        assert_eq!(parse_cron_schedule("@sometimes").unwrap_err(), "unrecognized descriptor: @sometimes");
        assert_eq!(
            parse_cron_schedule("x * * * *").unwrap_err(),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    // ---- metadata

    #[test]
    fn metadata_name_namespace_labels_annotations() {
        let c = create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "Bad_Name", "namespace": "My_NS",
                                  "labels": { "ok": "fine", "bad key!": "v", "k": "bad value" } } }),
        );
        assert_has(&c, &format!("metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}"));
        assert_has(&c, &format!("metadata.namespace: Invalid value: \"My_NS\": {LABEL_MSG}"));
        assert!(has(&c, "metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        assert!(msgs(&c)
            .iter()
            .any(|m| m.starts_with("metadata.labels: Invalid value: \"bad value\": a valid label must be")));
        assert_eq!(c.iter().find(|c| c.field == "metadata.name").unwrap().reason, "FieldValueInvalid");

        let c = create("", "ConfigMap", json!({ "metadata": { "namespace": "default" } }));
        assert_has(&c, "metadata.name: Required value: name or generateName is required");
        let c = create("", "ConfigMap", json!({ "metadata": { "name": "x" } }));
        assert_has(&c, "metadata.namespace: Required value");

        let big = "x".repeat(300 * 1024);
        let c = create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { "a": big } } }),
        );
        assert_has(&c, "metadata.annotations: Too long: may not be more than 262144 bytes");
        let c = create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { "a/b/c": "1" } } }),
        );
        assert!(
            msgs(&c)[0].starts_with("metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist")
        );

        let c =
            create("", "ConfigMap", json!({ "metadata": { "name": "x", "namespace": "d", "generateName": "Web-" } }));
        assert!(
            msgs(&c)[0].starts_with("metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain")
        );
        assert_clean(&create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "web-x1", "namespace": "d", "generateName": "web-" } }),
        ));

        let c =
            create("", "ConfigMap", json!({ "metadata": { "name": "x", "namespace": "d", "finalizers": ["custom"] } }));
        assert_has(&c, "metadata.finalizers[0]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified");
    }

    // ---- pods

    fn pod(containers: Value) -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "p", "namespace": "default", "uid": "u" },
                "spec": { "containers": containers } })
    }

    #[test]
    fn valid_pod_is_clean() {
        let mut p = pod(json!([{
            "name": "web", "image": "nginx:1.27",
            "ports": [{ "name": "http", "containerPort": 80 }],
            "env": [{ "name": "A", "value": "1" }, { "name": "POD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
            "resources": { "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "cpu": "1", "memory": "128Mi" } },
            "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" } },
            "volumeMounts": [{ "name": "data", "mountPath": "/data" }, { "name": "cfg", "mountPath": "/etc/cfg" }]
        }]));
        p["spec"]["volumes"] = json!([{ "name": "data" }, { "name": "cfg", "configMap": { "name": "cfg" } }]);
        p["spec"]["tolerations"] = json!([{ "key": "k", "operator": "Exists", "effect": "NoSchedule" }]);
        assert_clean(&create("", "Pod", p));
    }

    #[test]
    fn pod_container_errors() {
        let c = create("", "Pod", pod(json!([])));
        assert_has(&c, "spec.containers: Required value");
        assert_eq!(c[0].reason, "FieldValueRequired");

        let c = create("", "Pod", pod(json!([{ "name": "a", "image": "x:1" }, { "name": "a", "image": "x:1" }])));
        assert_has(&c, "spec.containers[1].name: Duplicate value: \"a\"");
        assert_eq!(c.iter().find(|c| c.field == "spec.containers[1].name").unwrap().reason, "FieldValueDuplicate");

        let c = create("", "Pod", pod(json!([{ "name": "a" }])));
        assert_has(&c, "spec.containers[0].image: Required value");

        let c = create("", "Pod", pod(json!([{ "image": "x:1" }])));
        assert_has(&c, "spec.containers[0].name: Required value");

        let c = create("", "Pod", pod(json!([{ "name": "Web_1", "image": "x:1" }])));
        assert_has(&c, &format!("spec.containers[0].name: Invalid value: \"Web_1\": {LABEL_MSG}"));

        let mut p = pod(json!([{ "name": "a", "image": "x:1" }]));
        p["spec"]["initContainers"] = json!([{ "name": "a", "image": "x:1" }]);
        let c = create("", "Pod", p);
        assert_has(&c, "spec.initContainers[0].name: Duplicate value: \"a\"");

        let c = create("", "Pod", pod(json!([{ "name": "a", "image": " x:1" }])));
        assert_has(
            &c,
            "spec.containers[0].image: Invalid value: \" x:1\": must not have leading or trailing whitespace",
        );
    }

    #[test]
    fn pod_supported_values() {
        let mut p = pod(json!([{ "name": "a", "image": "x:1", "imagePullPolicy": "Sometimes" }]));
        p["spec"]["restartPolicy"] = json!("Sometimes");
        p["spec"]["dnsPolicy"] = json!("Google");
        let c = create("", "Pod", p);
        assert_has(&c, "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
        assert_has(&c, "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"");
        assert_has(&c, "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"");
        assert_eq!(c.iter().find(|c| c.field == "spec.restartPolicy").unwrap().reason, "FieldValueNotSupported");
    }

    #[test]
    fn pod_ports_env_and_volumes() {
        let mut p = pod(json!([{
            "name": "a", "image": "x:1",
            "ports": [
                { "containerPort": 70000 },
                { "containerPort": 80, "protocol": "HTTP" },
                { "containerPort": 81, "name": "this-name-is-too-long" },
                { "containerPort": 0 }
            ],
            "env": [{ "name": "" }, { "name": "A=B" }, { "name": "X", "valueFrom": {} }],
            "volumeMounts": [{ "name": "missing", "mountPath": "/m" }, { "name": "v", "mountPath": "/m" }]
        }]));
        p["spec"]["volumes"] = json!([{ "name": "v" }, { "name": "v" }]);
        let c = create("", "Pod", p);
        assert_has(
            &c,
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        );
        assert_has(&c, "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"");
        assert_has(&c, "spec.containers[0].ports[2].name: Invalid value: \"this-name-is-too-long\": must be no more than 15 characters");
        assert_has(&c, "spec.containers[0].ports[3].containerPort: Required value");
        assert_has(&c, "spec.containers[0].env[0].name: Required value");
        assert_has(&c, "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='");
        assert_has(&c, "spec.containers[0].env[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
        assert_has(&c, "spec.volumes[1].name: Duplicate value: \"v\"");
        assert_has(&c, "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"");
        assert_has(&c, "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/m\": must be unique");
        assert_eq!(c.iter().find(|c| c.message.starts_with("Not found")).unwrap().reason, "FieldValueNotFound");
    }

    #[test]
    fn pod_resources() {
        let c = create(
            "",
            "Pod",
            pod(json!([{ "name": "a", "image": "x:1",
                "resources": { "requests": { "cpu": "2", "memory": "-1" }, "limits": { "cpu": "1" } } }])),
        );
        assert_has(
            &c,
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        );
        assert_has(
            &c,
            "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
        );

        let c = create(
            "",
            "Pod",
            pod(
                json!([{ "name": "a", "image": "x:1", "resources": { "requests": { "gpu": "1", "example.com/dongle": "500m" } } }]),
            ),
        );
        assert_has(&c, "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified");
        assert_has(&c, "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers");
        assert_has(
            &c,
            "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
        );
        assert_has(
            &c,
            "spec.containers[0].resources.requests[example.com/dongle]: Invalid value: \"500m\": must be an integer",
        );
    }

    #[test]
    fn pod_hugepages() {
        let c = create(
            "",
            "Pod",
            pod(json!([{ "name": "a", "image": "x:1",
            "resources": { "limits": { "hugepages-2Mi": "1Mi" } } }])),
        );
        assert_has(&c, "spec.containers[0].resources.limits[hugepages-2Mi]: Invalid value: \"1Mi\": 1Mi is not positive integer multiple of hugepages-2Mi");
        assert_has(&c, "spec.containers[0].resources: Forbidden: HugePages require cpu or memory");
        assert_clean(&create(
            "",
            "Pod",
            pod(json!([{ "name": "a", "image": "x:1",
            "resources": { "limits": { "hugepages-2Mi": "4Mi", "memory": "64Mi" } } }])),
        ));
    }

    #[test]
    fn pod_probes_and_scheduling() {
        let mut p = pod(json!([{ "name": "a", "image": "x:1",
            "livenessProbe": { "successThreshold": 2, "exec": { "command": ["true"] } },
            "readinessProbe": {} }]));
        p["spec"]["tolerations"] = json!([{ "operator": "Equal", "value": "x" }]);
        p["spec"]["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [] } } });
        p["spec"]["activeDeadlineSeconds"] = json!(0);
        let c = create("", "Pod", p);
        assert_has(&c, "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1");
        assert_has(&c, "spec.containers[0].readinessProbe: Required value: must specify a handler type");
        assert_has(&c, "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
        assert_has(&c, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term");
        assert_has(&c, "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive");
    }

    #[test]
    fn pod_update_forbidden_and_allowed() {
        let old = defaulted("", "Pod", pod(json!([{ "name": "a", "image": "nginx:1" }])));
        // image change is allowed
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_clean(&validate_update("", "Pod", &new, &old));
        // adding a toleration is allowed
        let mut new = old.clone();
        new["spec"]["tolerations"] = json!([{ "key": "k", "operator": "Exists" }]);
        assert_clean(&validate_update("", "Pod", &new, &old));
        // anything else is not
        let mut new = old.clone();
        new["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 80, "protocol": "TCP" }]);
        let c = validate_update("", "Pod", &new, &old);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec");
        assert_eq!(c[0].reason, "FieldValueForbidden");
        assert!(c[0].message.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
        ), "{}", c[0].message);
        assert!(c[0].message.contains("containers[0].ports"));
        // adding a container
        let mut new = old.clone();
        new["spec"]["containers"].as_array_mut().unwrap().push(json!({ "name": "b", "image": "x:1" }));
        let c = validate_update("", "Pod", &new, &old);
        assert_has(&c, "spec.containers: Forbidden: pod updates may not add or remove containers");
        // nodeName: settable once, immutable after
        let mut bound = old.clone();
        bound["spec"]["nodeName"] = json!("node-1");
        assert_clean(&validate_update("", "Pod", &bound, &old));
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("node-2");
        let c = validate_update("", "Pod", &moved, &bound);
        assert!(c[0].message.starts_with("Forbidden: pod updates may not change fields other than"));
        assert!(c[0].message.contains("node-2"));
        // removing a toleration
        let mut tol = old.clone();
        tol["spec"]["tolerations"] = json!([{ "key": "k", "operator": "Exists" }]);
        let c = validate_update("", "Pod", &old, &tol);
        assert_has(
            &c,
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
        );
        // activeDeadlineSeconds may only decrease
        let mut a = old.clone();
        a["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut b = old.clone();
        b["spec"]["activeDeadlineSeconds"] = json!(20);
        assert_clean(&validate_update("", "Pod", &a, &b));
        assert_has(
            &validate_update("", "Pod", &b, &a),
            "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value",
        );
        // name is immutable
        let mut r = old.clone();
        r["metadata"]["name"] = json!("q");
        assert_has(&validate_update("", "Pod", &r, &old), "metadata.name: Invalid value: \"q\": field is immutable");
    }

    // ---- workloads

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default", "uid": "u" },
            "spec": {
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } }
            }
        })
    }

    #[test]
    fn valid_workloads_are_clean() {
        assert_clean(&create("apps", "Deployment", deployment()));
        let mut rs = deployment();
        rs["kind"] = json!("ReplicaSet");
        assert_clean(&create("apps", "ReplicaSet", rs));
        let mut ds = deployment();
        ds["kind"] = json!("DaemonSet");
        assert_clean(&create("apps", "DaemonSet", ds));
        let mut ss = deployment();
        ss["kind"] = json!("StatefulSet");
        ss["spec"]["serviceName"] = json!("web");
        ss["spec"]["volumeClaimTemplates"] = json!([{ "metadata": { "name": "data" },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } }]);
        assert_clean(&create("apps", "StatefulSet", ss));
        let rc = json!({ "metadata": { "name": "rc", "namespace": "default" },
            "spec": { "template": { "metadata": { "labels": { "app": "x" } },
                      "spec": { "containers": [{ "name": "c", "image": "x:1" }] } } } });
        assert_clean(&create("", "ReplicationController", rc));
    }

    #[test]
    fn deployment_selector_errors() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        let c = create("apps", "Deployment", d);
        assert_eq!(
            msgs(&c),
            vec![
                "spec.selector: Required value".to_string(),
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`".to_string(),
            ]
        );
        let mut d = deployment();
        d["spec"]["selector"] = json!({ "matchLabels": { "app": "other" } });
        let c = create("apps", "Deployment", d);
        assert_has(&c, "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`");
        let mut d = deployment();
        d["spec"]["selector"] = json!({});
        let c = create("apps", "Deployment", d);
        assert_has(&c, "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment");
    }

    #[test]
    fn deployment_template_and_strategy_errors() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
        d["spec"]["strategy"] =
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 0 } });
        let c = create("apps", "Deployment", d);
        assert_has(&c, "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
        assert_has(&c, "spec.template.spec.containers[0].image: Required value");
        assert_has(&c, "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"");
        assert_has(&c, "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0");

        let mut d = deployment();
        d["spec"]["strategy"] = json!({ "type": "Recreate", "rollingUpdate": { "maxSurge": 1 } });
        assert_has(
            &create("apps", "Deployment", d),
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        );
        let mut d = deployment();
        d["spec"]["strategy"] = json!({ "type": "Blue" });
        assert_has(
            &create("apps", "Deployment", d),
            "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"Blue\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
        );
        let mut d = deployment();
        d["spec"]["progressDeadlineSeconds"] = json!(5);
        d["spec"]["minReadySeconds"] = json!(10);
        assert_has(
            &create("apps", "Deployment", d),
            "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
        );
    }

    #[test]
    fn workload_selector_is_immutable() {
        let old = defaulted("apps", "Deployment", deployment());
        let mut new = old.clone();
        new["spec"]["selector"] = json!({ "matchLabels": { "app": "web2" } });
        new["spec"]["template"]["metadata"]["labels"] = json!({ "app": "web2" });
        let c = validate_update("apps", "Deployment", &new, &old);
        assert_eq!(
            msgs(&c),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable".to_string()]
        );
        // scaling and template changes are fine
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_clean(&validate_update("apps", "Deployment", &new, &old));

        for kind in ["ReplicaSet", "DaemonSet"] {
            let mut o = deployment();
            o["kind"] = json!(kind);
            let o = defaulted("apps", kind, o);
            let mut n = o.clone();
            n["spec"]["selector"]["matchExpressions"] = json!([{ "key": "tier", "operator": "Exists" }]);
            let c = validate_update("apps", kind, &n, &o);
            assert_has(&c, "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"tier\", Operator:\"Exists\", Values:[]string(nil)}}}: field is immutable");
        }

        let mut o = deployment();
        o["kind"] = json!("StatefulSet");
        let o = defaulted("apps", "StatefulSet", o);
        let mut n = o.clone();
        n["spec"]["selector"] = json!({ "matchLabels": { "app": "web", "x": "y" } });
        n["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let c = validate_update("apps", "StatefulSet", &n, &o);
        assert_has(&c, "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
        let mut n = o.clone();
        n["spec"]["replicas"] = json!(5);
        assert_clean(&validate_update("apps", "StatefulSet", &n, &o));
    }

    #[test]
    fn daemon_set_and_stateful_set_errors() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        d["spec"]["updateStrategy"] =
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 1 } });
        let c = create("apps", "DaemonSet", d);
        assert_has(
            &c,
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        );
        assert_has(&c, "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero");

        let mut s = deployment();
        s["spec"]["podManagementPolicy"] = json!("Random");
        s["spec"].as_object_mut().unwrap().remove("selector");
        let c = create("apps", "StatefulSet", s);
        assert_has(&c, "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'");
        assert_has(&c, "spec.selector: Required value");
        let mut s = deployment();
        s["metadata"]["name"] = json!("db.v1");
        assert_has(&create("apps", "StatefulSet", s), "metadata.name: Invalid value: \"db.v1\": must not contain dots");
    }

    fn job() -> Value {
        json!({ "apiVersion": "batch/v1", "kind": "Job",
                "metadata": { "name": "pi", "namespace": "default", "uid": "1234" },
                "spec": { "template": { "spec": { "restartPolicy": "Never",
                          "containers": [{ "name": "pi", "image": "perl:5.34" }] } } } })
    }

    #[test]
    fn jobs() {
        assert_clean(&create("batch", "Job", job()));
        let mut j = job();
        j["spec"]["template"]["spec"].as_object_mut().unwrap().remove("restartPolicy");
        let c = create("batch", "Job", j);
        assert_has(&c, "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"");
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Sometimes");
        assert_has(
            &create("batch", "Job", j),
            "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"",
        );
        let mut j = job();
        j["spec"]["parallelism"] = json!(-1);
        j["spec"]["completions"] = json!(-2);
        let c = create("batch", "Job", j);
        assert_has(&c, "spec.parallelism: Invalid value: -1: must be greater than or equal to 0");
        assert_has(&c, "spec.completions: Invalid value: -2: must be greater than or equal to 0");
        let mut j = job();
        j["spec"]["manualSelector"] = json!(true);
        let c = create("batch", "Job", j);
        assert_has(&c, "spec.selector: Required value");
        // user labels clashing with the generated selector
        let mut j = job();
        j["spec"]["template"]["metadata"] = json!({ "labels": { "controller-uid": "other" } });
        let c = create("batch", "Job", j);
        assert_has(&c, "spec.template.metadata.labels[controller-uid]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"1234\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"other\", \"job-name\":\"pi\"}: must be '1234'");
    }

    #[test]
    fn job_update_immutables() {
        let old = defaulted("batch", "Job", job());
        let mut new = old.clone();
        new["spec"]["selector"] = json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": "9999" } });
        let c = validate_update("batch", "Job", &new, &old);
        assert_has(&c, "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"9999\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable");
        let mut new = old.clone();
        new["spec"]["completions"] = json!(3);
        assert_has(
            &validate_update("batch", "Job", &new, &old),
            "spec.completions: Invalid value: 3: field is immutable",
        );
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6");
        let c = validate_update("batch", "Job", &new, &old);
        assert!(c.iter().any(|c| c.field == "spec.template" && c.message.ends_with(": field is immutable")));
        // suspend and parallelism are mutable
        let mut new = old.clone();
        new["spec"]["suspend"] = json!(true);
        new["spec"]["parallelism"] = json!(4);
        assert_clean(&validate_update("batch", "Job", &new, &old));
    }

    fn cron() -> Value {
        json!({ "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": { "name": "c", "namespace": "default" },
                "spec": { "schedule": "*/5 * * * *", "jobTemplate": { "spec": { "template": { "spec": {
                    "restartPolicy": "OnFailure", "containers": [{ "name": "c", "image": "busybox:1" }] } } } } } })
    }

    #[test]
    fn cron_jobs() {
        assert_clean(&create("batch", "CronJob", cron()));
        let mut c = cron();
        c["spec"]["schedule"] = json!("");
        assert_has(&create("batch", "CronJob", c), "spec.schedule: Required value");
        let mut c = cron();
        c["spec"]["schedule"] = json!("every minute");
        assert_has(
            &create("batch", "CronJob", c),
            "spec.schedule: Invalid value: \"every minute\": expected exactly 5 fields, found 2: [every minute]",
        );
        let mut c = cron();
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
        let errs = create("batch", "CronJob", c);
        assert_has(
            &errs,
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        );
        assert_has(&errs, "spec.jobTemplate.spec.template.spec.containers[0].image: Required value");
        let mut c = cron();
        c["spec"]["concurrencyPolicy"] = json!("Sometimes");
        assert_has(
            &create("batch", "CronJob", c),
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
        );
    }

    // ---- services

    fn svc(spec: Value) -> Value {
        json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web", "namespace": "default" }, "spec": spec })
    }

    #[test]
    fn services() {
        assert_clean(&create("", "Service", svc(json!({ "selector": { "app": "web" }, "ports": [{ "port": 80 }] }))));
        assert_clean(&create("", "Service", svc(json!({ "clusterIP": "None", "selector": { "app": "web" } }))));
        assert_clean(&create("", "Service", svc(json!({ "type": "ExternalName", "externalName": "db.example.com." }))));
        assert_clean(&create(
            "",
            "Service",
            svc(json!({ "type": "NodePort", "ports": [{ "port": 80, "nodePort": 30080 }] })),
        ));
        assert_clean(&create("", "Service", svc(json!({ "type": "LoadBalancer", "ports": [{ "port": 443 }] }))));

        let c = create("", "Service", svc(json!({ "selector": { "app": "web" } })));
        assert_has(&c, "spec.ports: Required value");
        let c = create("", "Service", svc(json!({ "ports": [{ "port": 0 }, { "port": 80 }], "type": "Mesh" })));
        assert_has(&c, "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive");
        assert_has(&c, "spec.ports[0].name: Required value");
        assert_has(&c, "spec.ports[1].name: Required value");
        assert_has(&c, "spec.type: Unsupported value: \"Mesh\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"");
        let c =
            create("", "Service", svc(json!({ "ports": [{ "name": "a", "port": 80 }, { "name": "a", "port": 80 }] })));
        assert_has(&c, "spec.ports[1].name: Duplicate value: \"a\"");
        assert!(msgs(&c).iter().any(|m| m.starts_with("spec.ports[1]: Duplicate value: core.ServicePort{")));
        let mut bad = svc(json!({ "ports": [{ "port": 80 }] }));
        bad["metadata"]["name"] = json!("1web");
        assert!(msgs(&create("", "Service", bad))[0]
            .starts_with("metadata.name: Invalid value: \"1web\": a DNS-1035 label"));
        let c = create("", "Service", svc(json!({ "type": "ExternalName" })));
        assert_has(&c, "spec.externalName: Required value");
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = defaulted("", "Service", svc(json!({ "clusterIP": "10.0.0.10", "ports": [{ "port": 80 }] })));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.0.0.11");
        new["spec"]["clusterIPs"] = json!(["10.0.0.11"]);
        let c = validate_update("", "Service", &new, &old);
        assert_has(&c, "spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.11\"}: may not change once set");
        // unchanged is fine
        let mut same = old.clone();
        same["spec"]["ports"] = json!([{ "port": 8080, "protocol": "TCP", "targetPort": 8080 }]);
        assert_clean(&validate_update("", "Service", &same, &old));
        // going to ExternalName drops the cluster IP without complaint
        let mut en = old.clone();
        en["spec"] = json!({ "type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None" });
        assert_clean(&validate_update("", "Service", &en, &old));
    }

    // ---- config

    #[test]
    fn config_maps_and_secrets() {
        assert_clean(&create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "c", "namespace": "d" }, "data": { "a.conf": "x" } }),
        ));
        let c = create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "c", "namespace": "d" }, "data": { "bad key": "x", "..x": "y" } }),
        );
        assert_has(&c, "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
        assert_has(&c, "data[..x]: Invalid value: \"..x\": must not start with '..'");
        let big = "x".repeat(1024 * 1024 + 1);
        let c = create("", "ConfigMap", json!({ "metadata": { "name": "c", "namespace": "d" }, "data": { "a": big } }));
        assert_has(&c, ": Too long: may not be more than 1048576 bytes");

        let old = defaulted(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "c", "namespace": "d" }, "immutable": true, "data": { "a": "1" } }),
        );
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        assert_has(
            &validate_update("", "ConfigMap", &new, &old),
            "data: Forbidden: field is immutable when `immutable` is set",
        );
        let mut new = old.clone();
        new["immutable"] = json!(false);
        assert_has(
            &validate_update("", "ConfigMap", &new, &old),
            "immutable: Forbidden: field is immutable when `immutable` is set",
        );

        let s = json!({ "metadata": { "name": "s", "namespace": "d" }, "data": { "k": "dg==" } });
        assert_clean(&create("", "Secret", s.clone()));
        let old = defaulted("", "Secret", s);
        let mut new = old.clone();
        new["type"] = json!("kubernetes.io/tls");
        let c = validate_update("", "Secret", &new, &old);
        assert_has(&c, "type: Invalid value: \"kubernetes.io/tls\": field is immutable");
        assert_has(&c, "data[tls.crt]: Required value");
        let mut imm = old.clone();
        imm["immutable"] = json!(true);
        let mut changed = imm.clone();
        changed["data"]["k"] = json!("dw==");
        assert_has(
            &validate_update("", "Secret", &changed, &imm),
            "data: Forbidden: field is immutable when `immutable` is set",
        );
    }

    #[test]
    fn namespaces_nodes_and_volumes() {
        assert_clean(&create("", "Namespace", json!({ "metadata": { "name": "team-a" } })));
        let c = create("", "Namespace", json!({ "metadata": { "name": "team.a" } }));
        assert_has(&c, "metadata.name: Invalid value: \"team.a\": must not contain dots");
        assert_clean(&create(
            "",
            "Node",
            json!({ "metadata": { "name": "node-1.local" },
            "status": { "capacity": { "cpu": "4", "memory": "8Gi" } } }),
        ));
        let c = create(
            "",
            "Node",
            json!({ "metadata": { "name": "n" }, "spec": { "taints": [{ "key": "k", "effect": "Sometimes" }] } }),
        );
        assert_has(&c, "metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"");

        assert_clean(&create(
            "",
            "PersistentVolumeClaim",
            json!({ "metadata": { "name": "c", "namespace": "d" },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } }),
        ));
        let c =
            create("", "PersistentVolumeClaim", json!({ "metadata": { "name": "c", "namespace": "d" }, "spec": {} }));
        assert_has(&c, "spec.accessModes: Required value: at least 1 access mode is required");
        assert_has(&c, "spec.resources[storage]: Required value");
        assert_clean(&create(
            "",
            "PersistentVolume",
            json!({ "metadata": { "name": "pv1" },
            "spec": { "accessModes": ["ReadWriteOnce"], "capacity": { "storage": "1Gi" }, "hostPath": { "path": "/data" } } }),
        ));
    }

    // ---- rbac, networking, others

    #[test]
    fn rbac_role_ref() {
        let rb = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "read:pods", "namespace": "d" },
            "roleRef": { "kind": "ClusterRole", "name": "view" },
            "subjects": [{ "kind": "User", "name": "alice" }, { "kind": "ServiceAccount", "name": "default", "namespace": "d" }] });
        assert_clean(&create("rbac.authorization.k8s.io", "RoleBinding", rb.clone()));
        let old = defaulted("rbac.authorization.k8s.io", "RoleBinding", rb);
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("edit");
        assert_eq!(
            msgs(&validate_update("rbac.authorization.k8s.io", "RoleBinding", &new, &old)),
            vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef".to_string()]
        );
        let c = create(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({ "metadata": { "name": "x" }, "roleRef": {} }),
        );
        assert_has(&c, "roleRef.kind: Unsupported value: \"\": supported values: \"ClusterRole\"");
        assert_has(&c, "roleRef.name: Required value");
        let c = create(
            "rbac.authorization.k8s.io",
            "Role",
            json!({ "metadata": { "name": "r", "namespace": "d" }, "rules": [{ "resources": ["pods"] }] }),
        );
        assert_has(&c, "rules[0].verbs: Required value: verbs must contain at least one value");
        assert_has(&c, "rules[0].apiGroups: Required value: resource rules must supply at least one api group");
    }

    #[test]
    fn ingresses() {
        let ing = json!({ "metadata": { "name": "i", "namespace": "d" }, "spec": { "rules": [{ "host": "example.com", "http": { "paths": [
            { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "web", "port": { "number": 80 } } } }
        ] } }] } });
        assert_clean(&create("networking.k8s.io", "Ingress", ing));
        let ing = json!({ "metadata": { "name": "i", "namespace": "d" }, "spec": { "rules": [{ "http": { "paths": [
            { "path": "/", "backend": { "service": { "name": "web", "port": { "number": 80 } } } },
            { "path": "api", "pathType": "Exact", "backend": { "service": { "name": "web" } } },
            { "path": "/", "pathType": "Glob", "backend": { "service": { "name": "web", "port": { "name": "http" } } } }
        ] } }] } });
        let c = create("networking.k8s.io", "Ingress", ing);
        assert_has(&c, "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified");
        assert_has(&c, "spec.rules[0].http.paths[1].path: Invalid value: \"api\": must be an absolute path");
        assert_has(&c, "spec.rules[0].http.paths[1].backend: Required value: port name or number is required");
        assert_has(&c, "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Glob\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"");
        let c = create(
            "networking.k8s.io",
            "Ingress",
            json!({ "metadata": { "name": "i", "namespace": "d" }, "spec": {} }),
        );
        assert_has(
            &c,
            "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
        );
    }

    #[test]
    fn leases_events_hpas() {
        assert_clean(&create(
            "coordination.k8s.io",
            "Lease",
            json!({ "metadata": { "name": "l", "namespace": "d" },
            "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15 } }),
        ));
        let c = create(
            "coordination.k8s.io",
            "Lease",
            json!({ "metadata": { "name": "l", "namespace": "d" }, "spec": { "leaseDurationSeconds": 0 } }),
        );
        assert_has(&c, "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0");

        assert_clean(&create(
            "",
            "Event",
            json!({ "metadata": { "name": "p.123", "namespace": "d" },
            "involvedObject": { "kind": "Pod", "name": "p", "namespace": "d" }, "reason": "Started" }),
        ));
        let c = create(
            "",
            "Event",
            json!({ "metadata": { "name": "p.123", "namespace": "d" },
            "involvedObject": { "kind": "Pod", "name": "p", "namespace": "other" } }),
        );
        assert_has(&c, "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace");

        let hpa = json!({ "apiVersion": "autoscaling/v2", "metadata": { "name": "h", "namespace": "d" },
            "spec": { "maxReplicas": 5, "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" } } });
        assert_clean(&create("autoscaling", "HorizontalPodAutoscaler", hpa.clone()));
        let mut bad = hpa;
        bad["spec"]["maxReplicas"] = json!(0);
        bad["spec"]["scaleTargetRef"] = json!({});
        let c = create("autoscaling", "HorizontalPodAutoscaler", bad);
        assert_has(&c, "spec.maxReplicas: Invalid value: 0: must be greater than 0");
        assert_has(&c, "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`");
        assert_has(&c, "spec.scaleTargetRef.kind: Required value");
    }

    #[test]
    fn kubectl_generated_objects_are_clean() {
        // what `kubectl create deployment nginx --image=nginx` sends
        let d = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "nginx", "namespace": "default", "uid": "u", "labels": { "app": "nginx" } },
            "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "nginx" } }, "strategy": {},
                "template": { "metadata": { "labels": { "app": "nginx" } },
                    "spec": { "containers": [{ "name": "nginx", "image": "nginx", "resources": {} }] } } },
            "status": {} });
        assert_clean(&create("apps", "Deployment", d));
        // `kubectl run`
        assert_clean(&create(
            "",
            "Pod",
            json!({ "metadata": { "name": "nginx", "namespace": "default", "labels": { "run": "nginx" } },
            "spec": { "containers": [{ "name": "nginx", "image": "nginx", "resources": {} }],
                      "dnsPolicy": "ClusterFirst", "restartPolicy": "Always" } }),
        ));
        // `kubectl expose`
        assert_clean(&create(
            "",
            "Service",
            svc(json!({ "ports": [{ "port": 80, "protocol": "TCP", "targetPort": 80 }],
            "selector": { "app": "nginx" } })),
        ));
        // `kubectl create job` / `kubectl create cronjob`
        assert_clean(&create(
            "batch",
            "Job",
            json!({ "metadata": { "name": "j", "namespace": "default", "uid": "u" },
            "spec": { "template": { "metadata": {}, "spec": { "containers": [{ "name": "j", "image": "busybox", "resources": {} }],
                      "restartPolicy": "Never" } } } }),
        ));
        // `kubectl create secret generic` / `kubectl create configmap`
        assert_clean(&create(
            "",
            "Secret",
            json!({ "metadata": { "name": "s", "namespace": "default" }, "data": { "password": "cGFzcw==" } }),
        ));
        assert_clean(&create(
            "",
            "ConfigMap",
            json!({ "metadata": { "name": "c", "namespace": "default" }, "data": { "k": "v" } }),
        ));
    }

    #[test]
    fn custom_resources_and_cluster_scope() {
        // unknown kinds: metadata checks only, namespace optional
        assert_clean(&validate_create("example.com", "Widget", &json!({ "metadata": { "name": "w" } })));
        assert_clean(&validate_create(
            "example.com",
            "Widget",
            &json!({ "metadata": { "name": "w", "namespace": "d" } }),
        ));
        let c = validate_create("example.com", "Widget", &json!({ "metadata": { "name": "W" } }));
        assert!(msgs(&c)[0].starts_with("metadata.name: Invalid value: \"W\": a lowercase RFC 1123 subdomain"));
        // cluster-scoped built-ins refuse a namespace
        let c = validate_create("", "Namespace", &json!({ "metadata": { "name": "a", "namespace": "b" } }));
        assert_has(&c, "metadata.namespace: Forbidden: not allowed on this type");
    }

    #[test]
    fn events_api_and_misc() {
        let ev = json!({ "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": { "name": "e1", "namespace": "d" }, "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "kelp.io/scheduler", "reportingInstance": "node-1", "action": "Binding",
            "reason": "Scheduled", "type": "Normal", "regarding": { "kind": "Pod", "name": "p", "namespace": "d" } });
        assert_clean(&create("events.k8s.io", "Event", ev.clone()));
        let mut bad = ev;
        bad["type"] = json!("Info");
        bad.as_object_mut().unwrap().remove("action");
        let c = create("events.k8s.io", "Event", bad);
        assert_has(&c, "action: Required value");
        assert_has(&c, "type: Invalid value: \"\": has invalid value: Info");

        let mut p = pod(json!([{ "name": "a", "image": "x:1" }]));
        p["metadata"]["annotations"] = json!({ "controller.kubernetes.io/pod-deletion-cost": "lots" });
        assert_has(&create("", "Pod", p), "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]: Invalid value: \"lots\": must be a 32bit integer");

        let ep = json!({ "metadata": { "name": "e", "namespace": "d" },
            "subsets": [{ "addresses": [{ "ip": "127.0.0.1" }], "ports": [{ "port": 80 }] }] });
        assert_has(&create("", "Endpoints", ep), "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)");

        let c = create("", "Service", svc(json!({ "ports": [{ "port": 80, "nodePort": 30001 }] })));
        assert_has(&c, "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'");

        // a Job update body without uid is not given a bogus generated selector
        let old = defaulted("batch", "Job", job());
        let mut body = job();
        body["metadata"].as_object_mut().unwrap().remove("uid");
        let new = defaulted("batch", "Job", body);
        let c = validate_update("batch", "Job", &new, &old);
        assert_has(&c, "spec.selector: Required value");
        assert_has(&c, "spec.selector: Invalid value: null: field is immutable");
    }

    #[test]
    fn status_error_rendering_matches_upstream() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        let causes = create("apps", "Deployment", d);
        let err = crate::api::status::StatusError::invalid("apps", "Deployment", "web", causes);
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`]"
        );
    }
}
