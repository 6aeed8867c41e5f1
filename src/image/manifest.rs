//! Manifests, indexes and image configs (OCI and Docker schema 2), and platform selection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ImageConfig, ImageError};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media types asked for when pulling a manifest.
pub const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
/// Largest manifest or config accepted (containerd's limit for JSON).
pub const MAX_JSON: u64 = 20 << 20;

/// A content descriptor.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OS/architecture/variant triple.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in OCI terms.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "riscv64" => ("riscv64", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: variant.map(str::to_string) }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(v.to_string()) })
            }
            _ => Err(ImageError::Invalid {
                context: "platform".into(),
                message: format!("{s:?} is not os/arch[/variant]"),
            }),
        }
    }

    fn norm_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) | (_, Some("")) => None,
            (_, v) => v,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A manifest or an index, as far as kelp needs it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
}

/// What a parsed document is.
#[derive(Debug)]
pub enum Parsed {
    Index(Vec<Descriptor>),
    Image { config: Descriptor, layers: Vec<Descriptor> },
}

/// Parses a manifest or index document.
pub fn parse(bytes: &[u8], what: &str) -> Result<Parsed, ImageError> {
    let bad = |m: String| ImageError::Invalid { context: what.to_string(), message: m };
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a manifest: {e}")))?;
    if m.schema_version != 2 {
        return Err(bad(format!(
            "unsupported manifest schemaVersion {} (Docker schema 1 is not supported)",
            m.schema_version
        )));
    }
    let mt = m.media_type.as_deref().unwrap_or("");
    if let Some(list) = m.manifests {
        if !mt.is_empty() && mt != OCI_INDEX && mt != DOCKER_LIST {
            return Err(bad(format!("unexpected media type {mt} for an index")));
        }
        return Ok(Parsed::Index(list));
    }
    if !mt.is_empty() && mt != OCI_MANIFEST && mt != DOCKER_MANIFEST {
        return Err(bad(format!("unsupported manifest media type {mt}")));
    }
    let config = m.config.ok_or_else(|| bad("manifest without a config".into()))?;
    if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
        return Err(bad(format!("not a container image (config media type {})", config.media_type)));
    }
    let layers = m.layers.unwrap_or_default();
    for l in &layers {
        check_layer_type(&l.media_type).map_err(bad)?;
    }
    Ok(Parsed::Image { config, layers })
}

fn check_layer_type(mt: &str) -> Result<(), String> {
    match mt {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(()),
        m if m.contains("foreign") || m.contains("nondistributable") => {
            Err(format!("foreign (non-distributable) layers are not supported ({m})"))
        }
        m => Err(format!("unsupported layer media type {m:?}")),
    }
}

/// Picks the manifest for `want` from an index: same OS and architecture; the exact variant first,
/// then one without a variant (arm64 `v8` counts as none).
pub fn select(list: &[Descriptor], want: &Platform) -> Result<Descriptor, ImageError> {
    let candidates: Vec<&Descriptor> = list
        .iter()
        .filter(|d| d.media_type.is_empty() || d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
        .filter(|d| d.platform.as_ref().is_some_and(|p| p.os == want.os && p.architecture == want.architecture))
        .collect();
    let variant = |d: &&Descriptor| d.platform.as_ref().and_then(|p| p.norm_variant().map(str::to_string));
    let want_v = want.norm_variant().map(str::to_string);
    candidates
        .iter()
        .find(|d| variant(d) == want_v)
        .or_else(|| candidates.iter().find(|d| variant(d).is_none()))
        .or_else(|| if want_v.is_none() { candidates.first() } else { None })
        .map(|d| (*d).clone())
        .ok_or_else(|| {
            let have: Vec<String> = list.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_string())).collect();
            ImageError::Invalid {
                context: "image index".into(),
                message: format!("no match for platform {want} in the manifest list (has {})", have.join(", ")),
            }
        })
}

/// The image config parts kelp reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// Parses an image config and checks it has one diff_id per layer.
pub fn parse_config(bytes: &[u8], layers: usize) -> Result<ConfigFile, ImageError> {
    let bad = |m: String| ImageError::Invalid { context: "image config".into(), message: m };
    let c: ConfigFile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if c.rootfs.kind != "layers" {
        return Err(bad(format!("rootfs type {:?} is not \"layers\"", c.rootfs.kind)));
    }
    if c.rootfs.diff_ids.len() != layers {
        return Err(bad(format!("{} diff_ids for {} layers", c.rootfs.diff_ids.len(), layers)));
    }
    for d in &c.rootfs.diff_ids {
        if super::digest::sha256_hex(d).is_none() {
            return Err(bad(format!("unsupported diff_id {d:?}")));
        }
    }
    Ok(c)
}

impl From<&ConfigFile> for ImageConfig {
    fn from(c: &ConfigFile) -> Self {
        let cc = c.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: cc.entrypoint.unwrap_or_default(),
            cmd: cc.cmd.unwrap_or_default(),
            env: cc.env.unwrap_or_default(),
            user: cc.user.filter(|u| !u.is_empty()),
            working_dir: cc.working_dir.filter(|w| !w.is_empty()),
            stop_signal: cc.stop_signal.filter(|s| !s.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{}", variant.unwrap_or("")),
            size: 1,
            platform: Some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn platform_selection() {
        let list = vec![d("amd64", None), d("arm", Some("v6")), d("arm", Some("v7")), d("arm64", Some("v8"))];
        assert_eq!(select(&list, &Platform::parse("linux/amd64").unwrap()).unwrap().digest, "sha256:amd64");
        assert_eq!(select(&list, &Platform::parse("linux/arm64").unwrap()).unwrap().digest, "sha256:arm64v8");
        assert_eq!(select(&list, &Platform::parse("linux/arm64/v8").unwrap()).unwrap().digest, "sha256:arm64v8");
        assert_eq!(select(&list, &Platform::parse("linux/arm/v7").unwrap()).unwrap().digest, "sha256:armv7");
        let err = select(&list, &Platform::parse("linux/riscv64").unwrap()).unwrap_err().to_string();
        assert!(err.contains("no match for platform linux/riscv64"), "{err}");
        assert!(select(&[d("arm", Some("v6"))], &Platform::parse("linux/arm/v7").unwrap()).is_err());
        assert!(Platform::parse("linux").is_err());
    }

    #[test]
    fn manifests_are_checked() {
        assert!(parse(br#"{"schemaVersion":1}"#, "m").is_err());
        let helm = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(parse(helm, "m").unwrap_err().to_string().contains("not a container image"));
        let ok = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:01","size":2}]}"#;
        assert!(matches!(parse(ok, "m").unwrap(), Parsed::Image { layers, .. } if layers.len() == 1));
        let cfg = br#"{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Entrypoint":["/bin/sh"],"Cmd":null,"User":"","WorkingDir":"/w"}}"#;
        let c = parse_config(cfg, 0).unwrap();
        let ic = ImageConfig::from(&c);
        assert_eq!(ic.entrypoint, ["/bin/sh"]);
        assert!(ic.cmd.is_empty() && ic.user.is_none());
        assert_eq!(ic.working_dir.as_deref(), Some("/w"));
        assert!(parse_config(cfg, 1).is_err());
    }
}
