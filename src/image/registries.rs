//! `registries.yaml` in k3s's format: `mirrors` (endpoint lists per registry, regex rewrites of the
//! repository path, `"*"` for registries without their own entry) and `configs` (auth and TLS per
//! endpoint host, `"*"` as fallback). The registry's own default endpoint is tried last, without
//! rewrites; loopback registries (`localhost`, `127.0.0.1`, `[::1]`) are tried over HTTPS and then
//! plain HTTP, as containerd does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::ImageError;

/// The file as written.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegistriesFile {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

/// `mirrors.<registry>`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Regex on the repository path → replacement (`$1` …), applied on mirror endpoints.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// `configs.<host>`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct HostConfig {
    pub auth: Option<AuthConfig>,
    pub tls: Option<TlsConfig>,
}

/// `configs.<host>.auth`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    pub username: Option<String>,
    pub password: Option<String>,
    /// base64 of `user:password`.
    pub auth: Option<String>,
    /// A pre-issued bearer token.
    pub token: Option<String>,
    /// An OAuth2 refresh token (not supported: refused with an error when used).
    pub identitytoken: Option<String>,
}

/// `configs.<host>.tls`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Credentials for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointAuth {
    Basic(String, String),
    Bearer(String),
}

impl AuthConfig {
    /// The credentials this entry gives.
    pub fn resolve(&self, host: &str) -> Result<Option<EndpointAuth>, ImageError> {
        let bad =
            |m: String| ImageError::Invalid { context: format!("registries.yaml configs.{host:?}.auth"), message: m };
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(EndpointAuth::Bearer(token.to_string())));
        }
        if let Some(user) = self.username.as_deref().filter(|u| !u.is_empty()) {
            return Ok(Some(EndpointAuth::Basic(user.to_string(), self.password.clone().unwrap_or_default())));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("auth is not base64: {e}")))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("auth is not UTF-8".into()))?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| bad("auth is not base64 of user:password".into()))?;
            return Ok(Some(EndpointAuth::Basic(u.to_string(), p.to_string())));
        }
        if self.identitytoken.as_deref().is_some_and(|t| !t.is_empty()) {
            return Err(bad(
                "identitytoken (OAuth2 refresh tokens) is not supported; use username/password or token".into()
            ));
        }
        Ok(None)
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// One place to try, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// `host[:port]`.
    pub host: String,
    /// The repository path to ask this endpoint for (rewritten on mirrors).
    pub repository: String,
    /// The registry's own endpoint (no `?ns=`, no rewrite).
    pub is_default: bool,
    /// `configs` entry for this host (or `"*"`).
    pub config: HostConfig,
}

impl Endpoint {
    /// `scheme://host`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.scheme == Scheme::Http { "http" } else { "https" }, self.host)
    }
}

/// A loaded registries.yaml.
#[derive(Clone, Debug, Default)]
pub struct Registries {
    file: RegistriesFile,
    rewrites: BTreeMap<String, Vec<(regex::Regex, String)>>,
    source: String,
}

fn strip_host(key: &str) -> String {
    let k = key.trim();
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    k.trim_end_matches('/').to_ascii_lowercase()
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').filter(|(h, p)| !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()));
    let name = h.map(|(h, _)| h).unwrap_or(host);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]" | "::1") || name.starts_with("127.")
}

impl Registries {
    /// Reads `path`; a missing file means no mirrors and no configs.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registries::default()),
            Err(source) => Err(ImageError::Io { context: format!("reading {}", path.display()), source }),
        }
    }

    /// Parses the YAML text (`source` names it in errors).
    pub fn parse(text: &str, source: &str) -> Result<Self, ImageError> {
        let bad = |m: String| ImageError::Invalid { context: source.to_string(), message: m };
        let file: RegistriesFile = if text.trim().is_empty() {
            RegistriesFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?
        };
        let mut rewrites = BTreeMap::new();
        for (registry, mirror) in &file.mirrors {
            let mut list = Vec::new();
            for (pattern, replacement) in &mirror.rewrite {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| bad(format!("mirrors.{registry:?}.rewrite {pattern:?}: {e}")))?;
                list.push((re, replacement.clone()));
            }
            for ep in &mirror.endpoint {
                parse_endpoint(ep).map_err(|m| bad(format!("mirrors.{registry:?}.endpoint {ep:?}: {m}")))?;
            }
            rewrites.insert(registry.clone(), list);
        }
        let configs = file.configs.iter().map(|(k, v)| (strip_host(k), v.clone())).collect();
        let mirrors = file.mirrors.iter().map(|(k, v)| (strip_host(k), v.clone())).collect();
        let rewrites = rewrites.into_iter().map(|(k, v)| (strip_host(&k), v)).collect();
        Ok(Registries { file: RegistriesFile { mirrors, configs }, rewrites, source: source.to_string() })
    }

    /// The `configs` entry for `host`, else `"*"`.
    pub fn config(&self, host: &str) -> HostConfig {
        let host = strip_host(host);
        self.file.configs.get(&host).or_else(|| self.file.configs.get("*")).cloned().unwrap_or_default()
    }

    /// Where to pull `registry`/`repository` from, in order.
    pub fn endpoints(&self, registry: &str, repository: &str) -> Result<Vec<Endpoint>, ImageError> {
        let registry = strip_host(registry);
        let key =
            if self.file.mirrors.contains_key(&registry) { Some(registry.clone()) } else { Some("*".to_string()) };
        let mut out = Vec::new();
        if let Some(mirror) = key.as_ref().and_then(|k| self.file.mirrors.get(k)) {
            let rewrites = key.as_ref().and_then(|k| self.rewrites.get(k)).map(Vec::as_slice).unwrap_or(&[]);
            for ep in &mirror.endpoint {
                let (scheme, host) = parse_endpoint(ep).map_err(|m| ImageError::Invalid {
                    context: self.source.clone(),
                    message: format!("endpoint {ep:?}: {m}"),
                })?;
                let is_default = host == registry || (registry == "docker.io" && is_docker_hub_host(&host));
                let repository = if is_default {
                    repository.to_string()
                } else {
                    rewrites
                        .iter()
                        .find(|(re, _)| re.is_match(repository))
                        .map(|(re, rep)| re.replace(repository, rep.as_str()).into_owned())
                        .unwrap_or_else(|| repository.to_string())
                };
                let config = self.config(&host);
                out.push(Endpoint { scheme, host, repository, is_default, config });
            }
        }
        if !out.iter().any(|e| e.is_default && e.scheme == Scheme::Https) {
            let config = self.config(&registry);
            out.push(Endpoint {
                scheme: Scheme::Https,
                host: registry.clone(),
                repository: repository.to_string(),
                is_default: true,
                config: config.clone(),
            });
            if is_loopback(&registry) && !out.iter().any(|e| e.is_default && e.scheme == Scheme::Http) {
                out.push(Endpoint {
                    scheme: Scheme::Http,
                    host: registry.clone(),
                    repository: repository.to_string(),
                    is_default: true,
                    config,
                });
            }
        }
        Ok(out)
    }
}

fn is_docker_hub_host(host: &str) -> bool {
    matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io")
}

/// `[http[s]://]host[:port][/v2[/]]` → scheme and host.
fn parse_endpoint(ep: &str) -> Result<(Scheme, String), String> {
    let ep = ep.trim();
    let (scheme, rest) = if let Some(r) = ep.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = ep.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if ep.contains("://") {
        return Err("only http:// and https:// endpoints are supported".into());
    } else {
        (Scheme::Https, ep)
    };
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, String::new()));
    if host.is_empty() {
        return Err("no host".into());
    }
    if !matches!(path.trim_end_matches('/'), "" | "/v2") {
        return Err(format!("path prefixes ({path}) are not supported"));
    }
    Ok((scheme, host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com:8443/v2"
    rewrite:
      "^library/(.*)": "hub/$1"
  registry.example.com:
    endpoint: ["https://registry.example.com"]
  "*":
    endpoint: ["http://fallback.local:5000"]
configs:
  "mirror.example.com:8443":
    auth: {username: u, password: p}
    tls: {ca_file: /etc/ca.pem}
  "https://127.0.0.1:5000/":
    auth: {auth: "dXNlcjpwYXNz"}
  "*":
    tls: {insecure_skip_verify: true}
"#;

    #[test]
    fn mirrors_in_order_with_rewrites_and_the_default_last() {
        let r = Registries::parse(FILE, "test").unwrap();
        let eps = r.endpoints("docker.io", "library/busybox").unwrap();
        let got: Vec<_> = eps.iter().map(|e| (e.url(), e.repository.as_str(), e.is_default)).collect();
        assert_eq!(
            got,
            vec![
                ("http://127.0.0.1:5000".to_string(), "hub/busybox", false),
                ("https://mirror.example.com:8443".to_string(), "hub/busybox", false),
                ("https://docker.io".to_string(), "library/busybox", true),
            ]
        );
        assert_eq!(
            eps[0].config.auth.as_ref().unwrap().resolve("x").unwrap(),
            Some(EndpointAuth::Basic("user".into(), "pass".into()))
        );
        assert_eq!(eps[1].config.tls.as_ref().unwrap().ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        // "*" config for hosts without their own entry
        assert!(eps[2].config.tls.as_ref().unwrap().insecure_skip_verify);
        // a rewrite that does not match leaves the path alone
        assert_eq!(r.endpoints("docker.io", "kelp/x").unwrap()[0].repository, "kelp/x");
    }

    #[test]
    fn default_endpoint_listed_once_and_star_mirror_only_without_own_entry() {
        let r = Registries::parse(FILE, "test").unwrap();
        let eps = r.endpoints("registry.example.com", "a/b").unwrap();
        assert_eq!(eps.len(), 1);
        assert!(eps[0].is_default);
        let eps = r.endpoints("quay.io", "a/b").unwrap();
        assert_eq!(
            eps.iter().map(Endpoint::url).collect::<Vec<_>>(),
            ["http://fallback.local:5000", "https://quay.io"]
        );
    }

    #[test]
    fn loopback_registries_fall_back_to_http() {
        let r = Registries::default();
        let eps = r.endpoints("127.0.0.1:5000", "a").unwrap();
        assert_eq!(
            eps.iter().map(Endpoint::url).collect::<Vec<_>>(),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        let eps = r.endpoints("registry.local:5000", "a").unwrap();
        assert_eq!(eps.len(), 1);
    }

    #[test]
    fn bad_files_are_errors() {
        for bad in [
            "mirrors: {docker.io: {endpoint: [\"https://m.example.com/prefix\"]}}",
            "mirrors: {docker.io: {endpoint: [\"ftp://m.example.com\"]}}",
            "mirrors: {docker.io: {rewrite: {\"(\": \"x\"}}}",
            "mirrors: [1, 2]",
        ] {
            assert!(matches!(Registries::parse(bad, "f"), Err(ImageError::Invalid { .. })), "{bad}");
        }
        assert!(Registries::parse("", "f").unwrap().endpoints("docker.io", "library/x").unwrap()[0].is_default);
        let r = Registries::parse("configs: {h: {auth: {identitytoken: abc}}}", "f").unwrap();
        assert!(r.config("h").auth.unwrap().resolve("h").is_err());
        let r = Registries::parse("configs: {h: {auth: {auth: \"!!\"}}}", "f").unwrap();
        assert!(r.config("h").auth.unwrap().resolve("h").is_err());
    }

    #[test]
    fn missing_file_is_empty() {
        let r = Registries::load(Path::new("/nonexistent/registries.yaml")).unwrap();
        assert_eq!(r.endpoints("docker.io", "library/x").unwrap().len(), 1);
    }
}
