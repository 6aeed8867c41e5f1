//! Cluster PKI: the cluster CA, the API server's serving certificate, the admin client
//! certificate, rustls configurations built from them, and kubeconfig rendering.
//!
//! Everything lives under one `tls_dir` (mode 0700, keys 0600):
//!
//! | file | what |
//! | --- | --- |
//! | `server-ca.crt` / `server-ca.key` | self-signed cluster CA (ECDSA P-256, 10 years) |
//! | `serving-kube-apiserver.crt` / `.key` | API server serving certificate (1 year) |
//! | `client-admin.crt` / `.key` | `system:admin` in group `system:masters` (1 year) |
//!
//! The CA is created once and never replaced automatically. Leaf certificates are reissued
//! from the same CA when they are missing, unreadable, not issued by the CA, expire within
//! 90 days, or (serving certificate) do not cover the requested subject alternative names.
//!
//! Certificates with more than one organization (Kubernetes groups) are supported even
//! though rcgen's `DistinguishedName` holds one value per attribute type: the subject of
//! the signed certificate is rewritten in DER and the TBS certificate re-signed with the CA
//! key (see [`resign`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, SigningKey as _,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// CA certificate file name inside the TLS directory.
pub const CA_CERT_FILE: &str = "server-ca.crt";
/// CA private key file name.
pub const CA_KEY_FILE: &str = "server-ca.key";
/// API server serving certificate file name.
pub const SERVING_CERT_FILE: &str = "serving-kube-apiserver.crt";
/// API server serving key file name.
pub const SERVING_KEY_FILE: &str = "serving-kube-apiserver.key";
/// Admin client certificate file name.
pub const ADMIN_CERT_FILE: &str = "client-admin.crt";
/// Admin client key file name.
pub const ADMIN_KEY_FILE: &str = "client-admin.key";

/// Common name of the admin client certificate.
pub const ADMIN_USER: &str = "system:admin";
/// Group of the admin client certificate.
pub const ADMIN_GROUP: &str = "system:masters";
/// Common name of the API server serving certificate.
pub const SERVING_CN: &str = "kube-apiserver";

/// Mode of private key files.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub const CERT_MODE: u32 = 0o644;
/// Mode of the TLS directory.
pub const DIR_MODE: u32 = 0o700;

const CA_VALIDITY_DAYS: u64 = 3650;
const LEAF_VALIDITY_DAYS: u32 = 365;
/// Leaf certificates expiring within this many days are reissued on start.
pub const RENEW_BEFORE_DAYS: u64 = 90;
/// Certificates are backdated by this much to tolerate clock skew between machines.
const BACKDATE: Duration = Duration::from_secs(60 * 60);
const DAY: u64 = 24 * 60 * 60;
/// 2025-01-01T00:00:00Z: a clock before this (e.g. a board without RTC before NTP) is wrong.
const SANE_CLOCK_FLOOR: u64 = 1_735_689_600;

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// Errors of the PKI module. Messages name the file or the certificate concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists but {} is missing; refusing to create a new cluster ca", present.display(), missing.display())]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    #[error("{what}: invalid certificate: {reason}")]
    InvalidCert { what: String, reason: String },
    #[error("{what}: invalid private key: {reason}")]
    InvalidKey { what: String, reason: String },
    #[error("{what}: certificate does not match private key")]
    KeyMismatch { what: String },
    #[error("{what}: {reason}")]
    InvalidRequest { what: String, reason: String },
    #[error("invalid subject alternative name {san:?}: {reason}")]
    InvalidSan { san: String, reason: String },
    #[error("generating {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate { what: what.to_string(), source }
}

/// Inputs for the serving certificate's subject alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanInput {
    /// The machine's hostname (skipped when empty).
    pub hostname: String,
    /// Node IPs (`--node-ip`, `--advertise-address`).
    pub node_ips: Vec<IpAddr>,
    /// The first IP of the service CIDR (`kubernetes.default.svc`), e.g. 10.43.0.1.
    pub service_ip: IpAddr,
    /// Extra names from `--tls-san`: an IP if it parses as one, else a DNS name.
    pub extra: Vec<String>,
}

/// One subject alternative name, normalized (DNS names lower-case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    fn parse(s: &str) -> Result<San, PkiError> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        // Accept "[::1]" as an IPv6 literal too.
        if let Some(ip) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|r| r.parse::<Ipv6Addr>().ok())
        {
            return Ok(San::Ip(IpAddr::V6(ip)));
        }
        let dns = s.trim_end_matches('.').to_ascii_lowercase();
        let bad = |reason: &str| PkiError::InvalidSan { san: s.to_string(), reason: reason.to_string() };
        if dns.is_empty() {
            return Err(bad("empty name"));
        }
        if dns.len() > 253 {
            return Err(bad("longer than 253 characters"));
        }
        for (i, label) in dns.split('.').enumerate() {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if label.len() > 63 {
                return Err(bad("label longer than 63 characters"));
            }
            if label == "*" && i == 0 {
                continue;
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(bad("only letters, digits, '-', '_' and a leading '*.' are allowed"));
            }
        }
        Ok(San::Dns(dns))
    }

    fn to_rcgen(&self) -> Result<SanType, PkiError> {
        Ok(match self {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(name) => SanType::DnsName(
                name.clone()
                    .try_into()
                    .map_err(|e: rcgen::Error| PkiError::InvalidSan { san: name.clone(), reason: e.to_string() })?,
            ),
        })
    }
}

fn push_unique(list: &mut Vec<San>, san: San) {
    if !list.contains(&san) {
        list.push(san);
    }
}

/// The SANs the API server serving certificate must cover, in a stable order, deduplicated.
fn serving_sans(input: &SanInput) -> Result<Vec<San>, PkiError> {
    let mut sans = Vec::new();
    if !input.hostname.trim().is_empty() {
        push_unique(&mut sans, San::parse(&input.hostname)?);
    }
    push_unique(&mut sans, San::Dns("localhost".into()));
    push_unique(&mut sans, San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    push_unique(&mut sans, San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    for ip in &input.node_ips {
        push_unique(&mut sans, San::Ip(*ip));
    }
    for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"] {
        push_unique(&mut sans, San::Dns(name.into()));
    }
    push_unique(&mut sans, San::Ip(input.service_ip));
    for extra in &input.extra {
        if extra.trim().is_empty() {
            continue;
        }
        push_unique(&mut sans, San::parse(extra)?);
    }
    Ok(sans)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Sets not_before = now - BACKDATE and not_after = now + days.
fn set_validity(params: &mut CertificateParams, now: u64, days: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let start = now.saturating_sub(BACKDATE.as_secs());
    params.not_before = epoch + Duration::from_secs(start);
    params.not_after = epoch + Duration::from_secs(now.saturating_add(days.saturating_mul(DAY)));
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and of full length
    SerialNumber::from_slice(&bytes)
}

// ---------------------------------------------------------------------------------------
// PEM and DER helpers

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// All certificates in a PEM string, in order. Errors if there is none.
fn pem_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::InvalidCert { what: what.to_string(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(PkiError::InvalidCert { what: what.to_string(), reason: "no pem certificate found".into() });
    }
    Ok(certs)
}

fn pem_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| PkiError::InvalidKey { what: what.to_string(), reason: e.to_string() })?
        .ok_or_else(|| PkiError::InvalidKey { what: what.to_string(), reason: "no pem private key found".into() })
}

fn parse_x509<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::InvalidCert { what: what.to_string(), reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidCert { what: what.to_string(), reason: "trailing data after certificate".into() });
    }
    Ok(cert)
}

fn der_err(reason: &str) -> PkiError {
    PkiError::InvalidCert { what: "signed certificate".into(), reason: format!("malformed der: {reason}") }
}

/// One DER element split off the front of a byte string.
struct Tlv<'a> {
    tag: u8,
    /// The content octets.
    content: &'a [u8],
    /// The whole element: tag, length and content.
    whole: &'a [u8],
    /// What follows the element.
    rest: &'a [u8],
}

/// Splits one DER TLV off `input`.
/// Only low tag numbers (one tag byte) are supported, which is all X.509 needs here.
fn der_next(input: &[u8]) -> Result<Tlv<'_>, PkiError> {
    let (&tag, after_tag) = input.split_first().ok_or_else(|| der_err("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(der_err("high tag numbers are not supported"));
    }
    let (&first, after_len0) = after_tag.split_first().ok_or_else(|| der_err("truncated length"))?;
    let (len, after_len) = if first < 0x80 {
        (usize::from(first), after_len0)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after_len0.len() < n {
            return Err(der_err("bad length"));
        }
        let len = after_len0[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &after_len0[n..])
    };
    if after_len.len() < len {
        return Err(der_err("truncated content"));
    }
    let header = input.len() - after_len.len();
    Ok(Tlv { tag, content: &after_len[..len], whole: &input[..header + len], rest: &after_len[len..] })
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn der_rdn(oid: &[u8], value: &str) -> Vec<u8> {
    let mut atv = der_tlv(0x06, oid);
    atv.extend(der_tlv(0x0c, value.as_bytes())); // UTF8String
    der_tlv(0x31, &der_tlv(0x30, &atv))
}

/// DER of a subject name with one RDN per organization followed by the common name
/// (the order Go's crypto/x509 uses).
fn encode_subject(cn: &str, orgs: &[&str]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for org in orgs {
        rdns.extend(der_rdn(OID_ORGANIZATION, org));
    }
    rdns.extend(der_rdn(OID_COMMON_NAME, cn));
    der_tlv(0x30, &rdns)
}

/// Replaces the issuer and/or subject name of a DER certificate and re-signs its TBS
/// part with `key`. The signature algorithm is unchanged (it is `key`'s algorithm, since
/// rcgen signed the input with the same key).
fn resign(cert_der: &[u8], issuer: Option<&[u8]>, subject: Option<&[u8]>, key: &KeyPair) -> Result<Vec<u8>, PkiError> {
    let cert = der_next(cert_der)?;
    if cert.tag != 0x30 || !cert.rest.is_empty() {
        return Err(der_err("certificate is not one sequence"));
    }
    let tbs_in = der_next(cert.content)?;
    if tbs_in.tag != 0x30 {
        return Err(der_err("tbs certificate is not a sequence"));
    }
    let tbs_content = tbs_in.content;
    let sig_alg = der_next(tbs_in.rest)?.whole;
    let mut children = Vec::new();
    let mut rest = tbs_content;
    while !rest.is_empty() {
        let el = der_next(rest)?;
        children.push((el.tag, el.whole));
        rest = el.rest;
    }
    // version [0], serial, signature, issuer, validity, subject, spki, ...
    if children.len() < 7 || children[0].0 != 0xa0 {
        return Err(der_err("unexpected tbs certificate layout"));
    }
    let mut tbs = Vec::with_capacity(tbs_content.len() + 64);
    for (i, (_, whole)) in children.iter().enumerate() {
        match (i, issuer, subject) {
            (3, Some(name), _) | (5, _, Some(name)) => tbs.extend_from_slice(name),
            _ => tbs.extend_from_slice(whole),
        }
    }
    let tbs = der_tlv(0x30, &tbs);
    let signature = key.sign(&tbs).map_err(gen_err("certificate signature"))?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend(signature);
    let mut out = tbs;
    out.extend_from_slice(sig_alg);
    out.extend(der_tlv(0x03, &bits));
    Ok(der_tlv(0x30, &out))
}

// ---------------------------------------------------------------------------------------
// Files

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write a file atomically (temp + rename) with the given octal mode, creating parent dirs.
///
/// The mode is applied explicitly, so it is not reduced by the umask. Parent directories
/// that do not exist are created with the default mode (0777 minus umask).
pub fn write_private_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let name = path.file_name().ok_or_else(|| PkiError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{}", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let tmp = parent.join(tmp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::Io { path: path.to_path_buf(), source });
    }
    // Make the rename durable; failure to sync a directory is not fatal.
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io { path: path.to_path_buf(), source: e }),
    }
}

// ---------------------------------------------------------------------------------------
// Identity and client config

/// Parse a DER client certificate into (user = CN, groups = every O).
pub fn identity_from_cert(der: &[u8]) -> Result<(String, Vec<String>), PkiError> {
    let what = "client certificate";
    let cert = parse_x509(der, what)?;
    let subject = cert.subject();
    let invalid = |reason: String| PkiError::InvalidCert { what: what.to_string(), reason };
    let cn = subject
        .iter_common_name()
        .next()
        .ok_or_else(|| invalid("no common name".into()))?
        .as_str()
        .map_err(|e| invalid(format!("common name: {e}")))?
        .to_string();
    if cn.is_empty() {
        return Err(invalid("empty common name".into()));
    }
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_string).map_err(|e| invalid(format!("organization: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((cn, groups))
}

fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(ca_pem: &str) -> Result<rustls::RootCertStore, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(ca_pem, "ca bundle")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// The rustls client config trusting only the cluster CA and presenting the given client
/// cert (for tests and agents). ALPN offers h2 and http/1.1.
pub fn client_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<rustls::ClientConfig, PkiError> {
    let roots = root_store(ca_pem)?;
    let chain = pem_certs(cert_pem, "client certificate")?;
    let key = pem_key(key_pem, "client key")?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    cfg.alpn_protocols = alpn();
    Ok(cfg)
}

/// A rustls client config trusting only the cluster CA, without a client certificate
/// (e.g. for bootstrap-token clients).
pub fn anonymous_client_config(ca_pem: &str) -> Result<rustls::ClientConfig, PkiError> {
    let roots = root_store(ca_pem)?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn();
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------
// Kubeconfig

#[derive(Serialize)]
struct KubeConfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    clusters: Vec<NamedCluster<'a>>,
    contexts: Vec<NamedContext<'a>>,
    #[serde(rename = "current-context")]
    current_context: &'a str,
    kind: &'a str,
    preferences: BTreeMap<String, String>,
    users: Vec<NamedUser<'a>>,
}

#[derive(Serialize)]
struct NamedCluster<'a> {
    cluster: ClusterEntry<'a>,
    name: &'a str,
}

#[derive(Serialize)]
struct ClusterEntry<'a> {
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: String,
    server: &'a str,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    context: ContextEntry<'a>,
    name: &'a str,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: UserEntry,
}

#[derive(Serialize)]
struct UserEntry {
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: String,
    #[serde(rename = "client-key-data")]
    client_key_data: String,
}

/// Renders a kubeconfig with cluster, user and context all named `default` (like k3s).
pub fn render_kubeconfig(server_url: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let cfg = KubeConfig {
        api_version: "v1",
        clusters: vec![NamedCluster {
            cluster: ClusterEntry { certificate_authority_data: b64(ca_pem), server: server_url },
            name: "default",
        }],
        contexts: vec![NamedContext { context: ContextEntry { cluster: "default", user: "default" }, name: "default" }],
        current_context: "default",
        kind: "Config",
        preferences: BTreeMap::new(),
        users: vec![NamedUser {
            name: "default",
            user: UserEntry { client_certificate_data: b64(cert_pem), client_key_data: b64(key_pem) },
        }],
    };
    // Serializing plain strings, vectors and maps to YAML cannot fail.
    serde_yaml_ng::to_string(&cfg).expect("kubeconfig of plain strings serializes")
}

// ---------------------------------------------------------------------------------------
// The PKI

/// The cluster PKI loaded from (or created in) a TLS directory.
pub struct Pki {
    /// PEM of the cluster CA certificate.
    pub ca_cert_pem: String,
    /// PEM of the API server serving certificate.
    pub serving_cert_pem: String,
    /// PEM of the admin (`system:admin`, `system:masters`) client certificate.
    pub admin_cert_pem: String,
    /// The directory everything was loaded from.
    pub tls_dir: PathBuf,
    serving_key_pem: String,
    admin_key_pem: String,
    ca_der: Vec<u8>,
    ca_subject_der: Vec<u8>,
    ca_key: KeyPair,
    /// Issuer parameters (subject, key usages, key id method) of the CA for rcgen.
    ca_issuer_params: CertificateParams,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("tls_dir", &self.tls_dir)
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("keys", &"[elided]")
            .finish()
    }
}

/// A leaf certificate's state on disk and why it must be reissued, if it must.
fn leaf_problem(
    cert_pem: &str,
    key_pem: &str,
    ca_subject_der: &[u8],
    now: u64,
    check: impl Fn(&X509Certificate<'_>) -> Option<String>,
) -> Option<String> {
    let der = match pem_certs(cert_pem, "leaf") {
        Ok(certs) => certs[0].clone(),
        Err(e) => return Some(e.to_string()),
    };
    let cert = match parse_x509(&der, "leaf") {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    if cert.tbs_certificate.issuer.as_raw() != ca_subject_der {
        return Some("not issued by the cluster ca".into());
    }
    let not_after = cert.validity().not_after.timestamp();
    let renew_at = now.saturating_add(RENEW_BEFORE_DAYS * DAY);
    if not_after < i64::try_from(renew_at).unwrap_or(i64::MAX) {
        return Some(format!("expires within {RENEW_BEFORE_DAYS} days"));
    }
    match KeyPair::from_pem(key_pem) {
        Ok(key) if key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref() => {}
        Ok(_) => return Some("key does not match certificate".into()),
        Err(e) => return Some(format!("unreadable key: {e}")),
    }
    check(&cert)
}

fn cert_sans(cert: &X509Certificate<'_>) -> Vec<San> {
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.push(San::Dns(d.to_ascii_lowercase())),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => {
                        let mut a = [0u8; 4];
                        a.copy_from_slice(b);
                        out.push(San::Ip(IpAddr::from(a)));
                    }
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        out.push(San::Ip(IpAddr::from(a)));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    out
}

impl Pki {
    /// Loads the PKI from `tls_dir`, creating whatever is missing: the CA on first start,
    /// and the serving / admin certificates whenever they are missing, unreadable, not
    /// issued by the CA, expire within 90 days, or (serving) lack a requested SAN.
    /// The cluster CA of an existing PKI directory, only to issue certificates from (its leaf
    /// certificate fields are empty).
    pub fn load_ca(tls_dir: &Path) -> Result<Pki, PkiError> {
        let read = |f: &str| {
            let p = tls_dir.join(f);
            fs::read_to_string(&p).map_err(io_err(&p))
        };
        let ca_cert_pem = read(CA_CERT_FILE)?;
        let ca_key_pem = read(CA_KEY_FILE)?;
        Pki::from_ca(tls_dir, ca_cert_pem, &ca_key_pem)
    }

    pub fn load_or_create(tls_dir: &Path, sans: &SanInput) -> Result<Pki, PkiError> {
        let wanted_sans = serving_sans(sans)?;
        fs::create_dir_all(tls_dir).map_err(io_err(tls_dir))?;
        fs::set_permissions(tls_dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io_err(tls_dir))?;

        let (ca_cert_pem, ca_key_pem) = load_or_create_ca(tls_dir)?;
        let mut pki = Pki::from_ca(tls_dir, ca_cert_pem, &ca_key_pem)?;
        let now = unix_now();

        // Serving certificate.
        let cert_path = tls_dir.join(SERVING_CERT_FILE);
        let key_path = tls_dir.join(SERVING_KEY_FILE);
        let existing = (read_optional(&cert_path)?, read_optional(&key_path)?);
        let problem = match &existing {
            (Some(c), Some(k)) => leaf_problem(c, k, &pki.ca_subject_der, now, |cert| {
                let have = cert_sans(cert);
                let missing: Vec<String> = wanted_sans
                    .iter()
                    .filter(|s| !have.contains(s))
                    .map(|s| match s {
                        San::Dns(d) => d.clone(),
                        San::Ip(ip) => ip.to_string(),
                    })
                    .collect();
                (!missing.is_empty()).then(|| format!("does not cover {}", missing.join(", ")))
            }),
            _ => Some("missing".into()),
        };
        match (problem, existing) {
            (None, (Some(c), Some(k))) => {
                pki.serving_cert_pem = c;
                pki.serving_key_pem = k;
            }
            (problem, _) => {
                tracing::info!(
                    path = %cert_path.display(),
                    reason = problem.as_deref().unwrap_or("missing"),
                    "issuing api server serving certificate"
                );
                let (c, k) = pki.issue(SERVING_CN, &[], &wanted_sans, LEAF_VALIDITY_DAYS, true)?;
                write_private_file(&key_path, k.as_bytes(), KEY_MODE)?;
                write_private_file(&cert_path, c.as_bytes(), CERT_MODE)?;
                pki.serving_cert_pem = c;
                pki.serving_key_pem = k;
            }
        }

        // Admin client certificate.
        let cert_path = tls_dir.join(ADMIN_CERT_FILE);
        let key_path = tls_dir.join(ADMIN_KEY_FILE);
        let existing = (read_optional(&cert_path)?, read_optional(&key_path)?);
        let problem = match &existing {
            (Some(c), Some(k)) => {
                leaf_problem(c, k, &pki.ca_subject_der, now, |cert| match identity_from_cert(cert.as_raw()) {
                    Ok((user, groups)) if user == ADMIN_USER && groups == [ADMIN_GROUP] => None,
                    Ok(_) => Some("wrong subject".into()),
                    Err(e) => Some(e.to_string()),
                })
            }
            _ => Some("missing".into()),
        };
        match (problem, existing) {
            (None, (Some(c), Some(k))) => {
                pki.admin_cert_pem = c;
                pki.admin_key_pem = k;
            }
            (problem, _) => {
                tracing::info!(
                    path = %cert_path.display(),
                    reason = problem.as_deref().unwrap_or("missing"),
                    "issuing admin client certificate"
                );
                let (c, k) = pki.issue_client_cert(ADMIN_USER, &[ADMIN_GROUP], LEAF_VALIDITY_DAYS)?;
                write_private_file(&key_path, k.as_bytes(), KEY_MODE)?;
                write_private_file(&cert_path, c.as_bytes(), CERT_MODE)?;
                pki.admin_cert_pem = c;
                pki.admin_key_pem = k;
            }
        }
        Ok(pki)
    }

    /// Builds a `Pki` (without leaf certificates yet) from a CA certificate and key.
    fn from_ca(tls_dir: &Path, ca_cert_pem: String, ca_key_pem: &str) -> Result<Pki, PkiError> {
        let cert_what = tls_dir.join(CA_CERT_FILE).display().to_string();
        let key_what = tls_dir.join(CA_KEY_FILE).display().to_string();
        let ca_der = pem_certs(&ca_cert_pem, &cert_what)?[0].to_vec();
        let ca_key = KeyPair::from_pem(ca_key_pem)
            .map_err(|e| PkiError::InvalidKey { what: key_what, reason: e.to_string() })?;
        let cert = parse_x509(&ca_der, &cert_what)?;
        if !cert.is_ca() {
            return Err(PkiError::InvalidCert { what: cert_what, reason: "not a ca certificate".into() });
        }
        if ca_key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::KeyMismatch { what: cert_what });
        }
        let ca_subject_der = cert.tbs_certificate.subject.as_raw().to_vec();
        let ski = cert.iter_extensions().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
        // rcgen only uses these for the issuer name (which we fix up in `sign` when it
        // differs from the CA's exact subject bytes), the authority key identifier and
        // the check that the issuer may sign certificates.
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(cn) = cert.subject().iter_common_name().next() {
            if let Ok(cn) = cn.as_str() {
                dn.push(DnType::CommonName, cn);
            }
        }
        params.distinguished_name = dn;
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = match ski {
            Some(id) => KeyIdMethod::PreSpecified(id),
            None => KeyIdMethod::Sha256,
        };
        drop(cert);
        Ok(Pki {
            ca_cert_pem,
            serving_cert_pem: String::new(),
            admin_cert_pem: String::new(),
            tls_dir: tls_dir.to_path_buf(),
            serving_key_pem: String::new(),
            admin_key_pem: String::new(),
            ca_der,
            ca_subject_der,
            ca_key,
            ca_issuer_params: params,
        })
    }

    /// PEM (PKCS#8) of the serving key.
    pub fn serving_key_pem(&self) -> &str {
        &self.serving_key_pem
    }

    /// PEM (PKCS#8) of the admin client key.
    pub fn admin_key_pem(&self) -> &str {
        &self.admin_key_pem
    }

    /// DER of the CA certificate.
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Issues a leaf certificate signed by the CA. Returns (cert_pem, key_pem).
    fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        sans: &[San],
        days: u32,
        server: bool,
    ) -> Result<(String, String), PkiError> {
        let what =
            if server { format!("serving certificate for {cn:?}") } else { format!("client certificate for {cn:?}") };
        if cn.is_empty() {
            return Err(PkiError::InvalidRequest { what, reason: "empty common name".into() });
        }
        if days == 0 {
            return Err(PkiError::InvalidRequest { what, reason: "validity must be at least one day".into() });
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        if let [org] = orgs {
            dn.push(DnType::OrganizationName, *org);
        }
        params.distinguished_name = dn;
        params.serial_number = Some(random_serial());
        set_validity(&mut params, unix_now(), u64::from(days));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages =
            vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = sans.iter().map(San::to_rcgen).collect::<Result<Vec<_>, _>>()?;

        let key = KeyPair::generate().map_err(gen_err(&what))?;
        let issuer = Issuer::from_params(&self.ca_issuer_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(gen_err(&what))?;
        let mut der = cert.der().to_vec();

        // Fix up what rcgen cannot express: several organizations, and an issuer name
        // that must equal the CA's subject byte for byte (for a CA not created by rcgen).
        let subject_fix = (orgs.len() > 1).then(|| encode_subject(cn, orgs));
        let issuer_fix = {
            let parsed = parse_x509(&der, &what)?;
            (parsed.tbs_certificate.issuer.as_raw() != self.ca_subject_der.as_slice())
                .then(|| self.ca_subject_der.clone())
        };
        if subject_fix.is_some() || issuer_fix.is_some() {
            der = resign(&der, issuer_fix.as_deref(), subject_fix.as_deref(), &self.ca_key)?;
        }
        Ok((pem_encode("CERTIFICATE", &der), key.serialize_pem()))
    }

    /// rustls server config: ALPN ["h2", "http/1.1"], ring provider, client certificates
    /// optional (anonymous allowed at TLS level) but if presented must chain to the CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let provider = ring_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(self.ca_der.clone()))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()?;
        let chain = pem_certs(&self.serving_cert_pem, SERVING_CERT_FILE)?;
        let key = pem_key(&self.serving_key_pem, SERVING_KEY_FILE)?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = alpn();
        Ok(cfg)
    }

    /// Sign a client certificate (CN = user, O = groups) valid `days`; returns (cert_pem, key_pem).
    pub fn issue_client_cert(&self, cn: &str, orgs: &[&str], days: u32) -> Result<(String, String), PkiError> {
        self.issue(cn, orgs, &[], days, false)
    }

    /// Sign a serving certificate for DNS names / IPs (for node agents later).
    /// Each entry of `sans` is an IP if it parses as one, else a DNS name.
    pub fn issue_serving_cert(&self, cn: &str, sans: &[String], days: u32) -> Result<(String, String), PkiError> {
        let mut list = Vec::new();
        for s in sans {
            push_unique(&mut list, San::parse(s)?);
        }
        self.issue(cn, &[], &list, days, true)
    }

    /// A kubeconfig YAML that kubectl uses as is: cluster `default` with server URL and
    /// certificate-authority-data, user `default` with embedded admin client-certificate-data /
    /// client-key-data, context `default`, current-context `default` (base64 data, like k3s).
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        self.kubeconfig_for(server_url, &self.admin_cert_pem, &self.admin_key_pem)
    }

    /// Same for an arbitrary client cert/key.
    pub fn kubeconfig_for(&self, server_url: &str, cert_pem: &str, key_pem: &str) -> String {
        render_kubeconfig(server_url, &self.ca_cert_pem, cert_pem, key_pem)
    }
}

/// Loads the CA cert and key PEMs, creating a new CA when neither exists.
///
/// A key without a certificate is a leftover of an interrupted first start (the key is
/// written first) and is replaced; a certificate without its key is an error, since a new
/// CA would invalidate everything the old one issued.
fn load_or_create_ca(tls_dir: &Path) -> Result<(String, String), PkiError> {
    let cert_path = tls_dir.join(CA_CERT_FILE);
    let key_path = tls_dir.join(CA_KEY_FILE);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert), Some(key)) => Ok((cert, key)),
        (Some(_), None) => Err(PkiError::IncompleteCa { present: cert_path, missing: key_path }),
        (None, _) => {
            let now = unix_now();
            if now < SANE_CLOCK_FLOOR {
                tracing::warn!(
                    unix_time = now,
                    "system clock looks wrong; the new cluster ca is dated from it and may \
                     become unusable once the clock is corrected"
                );
            }
            let what = "cluster ca";
            let key = KeyPair::generate().map_err(gen_err(what))?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, format!("kelp-server-ca@{now}"));
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
            params.serial_number = Some(random_serial());
            set_validity(&mut params, now, CA_VALIDITY_DAYS);
            let cert = params.self_signed(&key).map_err(gen_err(what))?;
            let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
            tracing::info!(path = %cert_path.display(), "created cluster ca");
            write_private_file(&key_path, key_pem.as_bytes(), KEY_MODE)?;
            write_private_file(&cert_path, cert_pem.as_bytes(), CERT_MODE)?;
            Ok((cert_pem, key_pem))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sans(extra: &[&str]) -> SanInput {
        SanInput {
            hostname: "edge-node-1".into(),
            node_ips: vec!["192.168.1.10".parse().expect("ip")],
            service_ip: IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1)),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).expect("read file")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    fn first_der(pem: &str) -> Vec<u8> {
        pem_certs(pem, "test").expect("pem")[0].to_vec()
    }

    #[test]
    fn create_then_reload_keeps_everything() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("tls");
        let pki = Pki::load_or_create(&dir, &sans(&[])).expect("create");
        for f in [CA_CERT_FILE, CA_KEY_FILE, SERVING_CERT_FILE, SERVING_KEY_FILE, ADMIN_CERT_FILE, ADMIN_KEY_FILE] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        assert_eq!(mode(&dir), 0o700);
        for f in [CA_KEY_FILE, SERVING_KEY_FILE, ADMIN_KEY_FILE] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert_eq!(pki.ca_cert_pem, read(&dir, CA_CERT_FILE));

        let ca_der = first_der(&pki.ca_cert_pem);
        let ca = parse_x509(&ca_der, "ca").expect("parse ca");
        assert!(ca.is_ca());
        let cn = ca.subject().iter_common_name().next().expect("cn");
        assert!(cn.as_str().expect("cn str").starts_with("kelp-server-ca@"));
        let lifetime = ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp();
        assert!(lifetime > 3649 * 86400, "ca lifetime {lifetime}");

        let again = Pki::load_or_create(&dir, &sans(&[])).expect("reload");
        assert_eq!(again.ca_cert_pem, pki.ca_cert_pem);
        assert_eq!(again.serving_cert_pem, pki.serving_cert_pem);
        assert_eq!(again.admin_cert_pem, pki.admin_cert_pem);
        assert_eq!(again.admin_key_pem(), pki.admin_key_pem());
    }

    #[test]
    fn serving_cert_covers_sans() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&["Api.Example.com", "203.0.113.7"])).expect("create");
        let der = first_der(&pki.serving_cert_pem);
        let cert = parse_x509(&der, "serving").expect("parse");
        let have = cert_sans(&cert);
        for want in [
            San::Dns("edge-node-1".into()),
            San::Dns("localhost".into()),
            San::Ip("127.0.0.1".parse().expect("ip")),
            San::Ip("::1".parse().expect("ip")),
            San::Ip("192.168.1.10".parse().expect("ip")),
            San::Dns("kubernetes".into()),
            San::Dns("kubernetes.default".into()),
            San::Dns("kubernetes.default.svc".into()),
            San::Dns("kubernetes.default.svc.cluster.local".into()),
            San::Ip("10.43.0.1".parse().expect("ip")),
            San::Dns("api.example.com".into()),
            San::Ip("203.0.113.7".parse().expect("ip")),
        ] {
            assert!(have.contains(&want), "missing {want:?} in {have:?}");
        }
        let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!((364 * 86400..367 * 86400).contains(&lifetime));
    }

    #[test]
    fn new_extra_san_reissues_with_same_ca() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&["a.example"])).expect("create");
        let again = Pki::load_or_create(tmp.path(), &sans(&["b.example", "a.example"])).expect("reload");
        assert_eq!(again.ca_cert_pem, pki.ca_cert_pem);
        assert_ne!(again.serving_cert_pem, pki.serving_cert_pem);
        assert_eq!(again.serving_cert_pem, read(tmp.path(), SERVING_CERT_FILE));
        assert_eq!(again.admin_cert_pem, pki.admin_cert_pem, "admin cert kept");
        let der = first_der(&again.serving_cert_pem);
        let cert = parse_x509(&der, "serving").expect("parse");
        assert!(cert_sans(&cert).contains(&San::Dns("b.example".into())));
        assert_eq!(cert.tbs_certificate.issuer.as_raw(), again.ca_subject_der.as_slice());

        // Removing a SAN does not force a reissue (the cert still covers what is wanted).
        let third = Pki::load_or_create(tmp.path(), &sans(&["b.example"])).expect("reload");
        assert_eq!(third.serving_cert_pem, again.serving_cert_pem);
    }

    #[test]
    fn damaged_leaf_is_reissued_but_missing_ca_key_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        fs::write(tmp.path().join(ADMIN_CERT_FILE), "garbage").expect("write");
        fs::remove_file(tmp.path().join(SERVING_KEY_FILE)).expect("rm");
        let again = Pki::load_or_create(tmp.path(), &sans(&[])).expect("reload");
        assert_eq!(again.ca_cert_pem, pki.ca_cert_pem);
        assert_ne!(again.serving_cert_pem, pki.serving_cert_pem);
        assert_ne!(again.admin_cert_pem, pki.admin_cert_pem);

        fs::remove_file(tmp.path().join(CA_KEY_FILE)).expect("rm");
        let err = Pki::load_or_create(tmp.path(), &sans(&[])).expect_err("no ca key");
        assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
        assert!(err.to_string().contains(CA_KEY_FILE), "{err}");
    }

    #[test]
    fn expiring_serving_cert_is_renewed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        let wanted = serving_sans(&sans(&[])).expect("sans");
        let (c, k) = pki.issue(SERVING_CN, &[], &wanted, 30, true).expect("issue");
        write_private_file(&tmp.path().join(SERVING_CERT_FILE), c.as_bytes(), CERT_MODE).expect("write");
        write_private_file(&tmp.path().join(SERVING_KEY_FILE), k.as_bytes(), KEY_MODE).expect("write");
        let again = Pki::load_or_create(tmp.path(), &sans(&[])).expect("reload");
        assert_ne!(again.serving_cert_pem, c);
    }

    #[test]
    fn admin_identity() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        let id = identity_from_cert(&first_der(&pki.admin_cert_pem)).expect("identity");
        assert_eq!(id, ("system:admin".to_string(), vec!["system:masters".to_string()]));

        let (cert, _) = pki.issue_client_cert("jane", &["dev", "ops", "system:authenticated"], 10).expect("issue");
        let id = identity_from_cert(&first_der(&cert)).expect("identity");
        assert_eq!(id.0, "jane");
        assert_eq!(id.1, vec!["dev", "ops", "system:authenticated"]);

        let (cert, _) = pki.issue_client_cert("nobody", &[], 10).expect("issue");
        assert_eq!(identity_from_cert(&first_der(&cert)).expect("identity"), ("nobody".to_string(), vec![]));
        assert!(pki.issue_client_cert("", &[], 10).is_err());
        assert!(pki.issue_client_cert("x", &[], 0).is_err());
        assert!(identity_from_cert(b"not a certificate").is_err());
    }

    #[test]
    fn kubeconfig_shape() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        let yaml = pki.admin_kubeconfig("https://127.0.0.1:6443");
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("yaml");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(v["apiVersion"].as_str(), Some("v1"));
        assert_eq!(v["kind"].as_str(), Some("Config"));
        assert_eq!(v["current-context"].as_str(), Some("default"));
        assert_eq!(v["clusters"][0]["name"].as_str(), Some("default"));
        assert_eq!(v["clusters"][0]["cluster"]["server"].as_str(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
            Some(b64(&pki.ca_cert_pem).as_str())
        );
        assert_eq!(v["contexts"][0]["name"].as_str(), Some("default"));
        assert_eq!(v["contexts"][0]["context"]["cluster"].as_str(), Some("default"));
        assert_eq!(v["contexts"][0]["context"]["user"].as_str(), Some("default"));
        assert_eq!(v["users"][0]["name"].as_str(), Some("default"));
        assert_eq!(v["users"][0]["user"]["client-certificate-data"].as_str(), Some(b64(&pki.admin_cert_pem).as_str()));
        assert_eq!(v["users"][0]["user"]["client-key-data"].as_str(), Some(b64(pki.admin_key_pem()).as_str()));
    }

    #[test]
    fn write_private_file_is_atomic_with_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("a/b/kube.yaml");
        write_private_file(&path, b"one", 0o644).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"one");
        assert_eq!(mode(&path), 0o644);
        write_private_file(&path, b"two", 0o600).expect("overwrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(mode(&path), 0o600);
        let leftovers: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("read dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn san_parsing() {
        assert_eq!(San::parse("10.0.0.1").expect("ip"), San::Ip("10.0.0.1".parse().expect("ip")));
        assert_eq!(San::parse("[fd00::1]").expect("ip6"), San::Ip("fd00::1".parse().expect("ip")));
        assert_eq!(San::parse("*.Edge.Local.").expect("dns"), San::Dns("*.edge.local".into()));
        assert!(San::parse("bad name").is_err());
        assert!(San::parse("a..b").is_err());
        let err = Pki::load_or_create(tempfile::tempdir().expect("tempdir").path(), &sans(&["no spaces allowed"]))
            .expect_err("bad san");
        assert!(err.to_string().contains("no spaces allowed"), "{err}");
    }

    #[test]
    fn der_resign_roundtrip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        // A long subject forces multi-byte DER lengths.
        let groups: Vec<String> = (0..20).map(|i| format!("group-{i:02}-{}", "x".repeat(20))).collect();
        let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let (cert, _) = pki.issue_client_cert("long", &refs, 1).expect("issue");
        let (cn, got) = identity_from_cert(&first_der(&cert)).expect("identity");
        assert_eq!(cn, "long");
        assert_eq!(got, groups);
    }

    async fn handshake(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
    ) -> (Result<Option<Vec<u8>>, String>, Result<Vec<u8>, String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let server_side = async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            let peer = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
            let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(peer)
        };
        let client_side = async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
            let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
            tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(buf)
        };
        tokio::join!(server_side, client_side)
    }

    #[tokio::test]
    async fn tls_handshake_with_client_cert() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        let client = client_config(&pki.ca_cert_pem, &pki.admin_cert_pem, pki.admin_key_pem()).expect("client");
        let (server, client) = handshake(pki.server_config().expect("server"), client).await;
        let peer = server.expect("server side").expect("client cert seen");
        assert_eq!(client.expect("client side"), b"pong");
        assert_eq!(
            identity_from_cert(&peer).expect("identity"),
            ("system:admin".to_string(), vec!["system:masters".to_string()])
        );

        // A multi-group certificate (re-signed DER) also verifies.
        let (c, k) = pki.issue_client_cert("bob", &["a", "b"], 1).expect("issue");
        let client = client_config(&pki.ca_cert_pem, &c, &k).expect("client");
        let (server, _) = handshake(pki.server_config().expect("server"), client).await;
        let peer = server.expect("server side").expect("client cert seen");
        assert_eq!(identity_from_cert(&peer).expect("identity").1, vec!["a", "b"]);
    }

    #[tokio::test]
    async fn tls_anonymous_client_allowed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(tmp.path(), &sans(&[])).expect("create");
        let client = anonymous_client_config(&pki.ca_cert_pem).expect("client");
        let (server, client) = handshake(pki.server_config().expect("server"), client).await;
        assert_eq!(server.expect("server side"), None);
        assert_eq!(client.expect("client side"), b"pong");
    }

    #[tokio::test]
    async fn tls_foreign_client_cert_rejected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(&tmp.path().join("a"), &sans(&[])).expect("create");
        let other = Pki::load_or_create(&tmp.path().join("b"), &sans(&[])).expect("create");
        assert_ne!(pki.ca_cert_pem, other.ca_cert_pem);
        let client = client_config(&pki.ca_cert_pem, &other.admin_cert_pem, other.admin_key_pem()).expect("client");
        let (server, client) = handshake(pki.server_config().expect("server"), client).await;
        let err = server.expect_err("server must reject the foreign client cert");
        assert!(err.to_lowercase().contains("cert"), "{err}");
        assert!(client.is_err(), "client must not get a response");

        // And the client refuses a server whose CA it does not trust.
        let client = client_config(&other.ca_cert_pem, &other.admin_cert_pem, other.admin_key_pem()).expect("client");
        let (_, client) = handshake(pki.server_config().expect("server"), client).await;
        assert!(client.is_err());
    }
}
