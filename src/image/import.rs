//! Air-gap import of `docker save` archives (legacy, and Docker ≥ 25 with an OCI layout inside) and
//! OCI-layout tarballs, plain, gzip or zstd (sniffed). One streaming pass stores every regular file
//! under its computed sha256 (names inside the archive are not trusted); then the OCI `index.json`
//! wins when present (as containerd does), else the legacy `manifest.json`. Names come from
//! `io.containerd.image.name`, else an `org.opencontainers.image.ref.name` that is a full
//! reference, else the legacy `RepoTags`; an image without a name is stored under its id.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::digest::{sha256, Sha256Reader};
use super::manifest::{self, Descriptor, Parsed, Platform, DOCKER_CONFIG, DOCKER_MANIFEST, MAX_JSON};
use super::reference;
use super::store::{NewImage, Store, TmpPath};
use super::unpack::{clean_path, decompressed, sniff, Compression};
use super::ImageError;

/// A regular file of the archive, stored in the work dir.
struct Member {
    file: PathBuf,
    digest: String,
    size: u64,
}

struct Archive {
    members: HashMap<PathBuf, Member>,
    links: HashMap<PathBuf, PathBuf>,
    _work: TmpPath,
}

fn bad(file: &Path, m: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid { context: format!("importing {}", file.display()), message: m.to_string() }
}

impl Archive {
    fn read(store: &Store, path: &Path) -> Result<Archive, ImageError> {
        let file = File::open(path)
            .map_err(|source| ImageError::Io { context: format!("opening {}", path.display()), source })?;
        let reader = decompressed(file)
            .map_err(|source| ImageError::Io { context: format!("reading {}", path.display()), source })?;
        let work = store.tmp("import");
        fs::create_dir_all(work.path())
            .map_err(|source| ImageError::Io { context: "creating a work dir".into(), source })?;
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| bad(path, format!("not a tar archive: {e}")))?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| bad(path, format!("not a tar archive: {e}")))?;
            let name = clean_path(&entry.path_bytes()).map_err(|e| bad(path, e))?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let dest = work.path().join(n.to_string());
                    let mut out = File::create(&dest)
                        .map_err(|source| ImageError::Io { context: "writing a blob".into(), source })?;
                    let mut r = Sha256Reader::new(&mut entry);
                    io::copy(&mut r, &mut out)
                        .map_err(|source| ImageError::Io { context: format!("reading {}", path.display()), source })?;
                    let size = r.count;
                    members.insert(name, Member { file: dest, digest: r.finish(), size });
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry.link_name_bytes().map(|b| b.into_owned()).unwrap_or_default();
                    let t = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target));
                    // symlinks are relative to the link's directory, hardlinks to the root
                    let joined = if entry.header().entry_type() == tar::EntryType::Symlink {
                        name.parent().unwrap_or(Path::new("")).join(t)
                    } else {
                        t.to_path_buf()
                    };
                    links.insert(name, normalize_lexically(&joined));
                }
                _ => {}
            }
        }
        Ok(Archive { members, links, _work: work })
    }

    fn member(&self, name: &Path) -> Option<&Member> {
        let mut cur = normalize_lexically(name);
        for _ in 0..16 {
            if let Some(m) = self.members.get(&cur) {
                return Some(m);
            }
            cur = self.links.get(&cur)?.clone();
        }
        None
    }

    fn json(&self, name: &str, archive: &Path) -> Result<Option<Vec<u8>>, ImageError> {
        let Some(m) = self.member(Path::new(name)) else { return Ok(None) };
        if m.size > MAX_JSON {
            return Err(bad(archive, format!("{name} is larger than {MAX_JSON} bytes")));
        }
        fs::read(&m.file).map(Some).map_err(|source| ImageError::Io { context: format!("reading {name}"), source })
    }

    /// The blob with this digest under `blobs/<alg>/<hex>`, its content checked.
    fn blob(&self, d: &Descriptor, archive: &Path) -> Result<&Member, ImageError> {
        let rel = PathBuf::from("blobs").join(d.digest.replacen(':', "/", 1));
        let m = self.member(&rel).ok_or_else(|| bad(archive, format!("blob {} is missing", d.digest)))?;
        if m.digest != d.digest {
            return Err(bad(archive, format!("blob {} has digest {}", d.digest, m.digest)));
        }
        if m.size != d.size {
            return Err(bad(
                archive,
                format!("blob {} has {} bytes, its descriptor says {}", d.digest, m.size, d.size),
            ));
        }
        Ok(m)
    }
}

/// `a/./b/../c` → `a/c` without touching the filesystem (`..` above the root is dropped).
fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// One image found in the archive.
struct Found {
    names: Vec<String>,
    /// Digest of the top-level manifest or index (for repo digests), OCI only.
    top_digest: Option<String>,
    manifest: Vec<u8>,
    manifest_digest: String,
    config: Descriptor,
    layers: Vec<(PathBuf, String)>,
    config_bytes: Vec<u8>,
    label: String,
}

/// Imports every image of the archive; returns their names (or ids for unnamed images). Blocking.
pub fn import(store: &Store, path: &Path, platform: &Platform) -> Result<Vec<String>, ImageError> {
    let archive = Archive::read(store, path)?;
    let found = if archive.member(Path::new("index.json")).is_some() {
        oci_images(&archive, path, platform)?
    } else if archive.member(Path::new("manifest.json")).is_some() {
        docker_images(&archive, path)?
    } else {
        return Err(bad(path, "neither an OCI layout (index.json) nor a docker save archive (manifest.json)"));
    };
    let _content = store.content_shared()?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for img in found {
        match commit(store, &img) {
            Ok(id) => {
                if img.names.is_empty() {
                    out.push(id);
                } else {
                    out.extend(img.names.iter().cloned());
                }
            }
            Err(e) => errors.push(format!("{}: {e}", img.label)),
        }
    }
    if !errors.is_empty() {
        return Err(bad(path, errors.join("; ")));
    }
    Ok(out)
}

fn commit(store: &Store, img: &Found) -> Result<String, ImageError> {
    let cfg = manifest::parse_config(&img.config_bytes, img.layers.len())?;
    let mut layers = Vec::new();
    let mut staged = Vec::new();
    let index = store.read_index()?;
    for ((file, _), diff_id) in img.layers.iter().zip(&cfg.rootfs.diff_ids) {
        let size = match index.layers.get(diff_id) {
            Some(rec) if store.layer_dir(diff_id)?.is_dir() => rec.size,
            _ => {
                let (dir, size) = store.stage_layer(file, diff_id)?;
                staged.push((diff_id.clone(), dir));
                size
            }
        };
        layers.push((diff_id.clone(), size));
    }
    let repo_digests = match &img.top_digest {
        Some(d) => img
            .names
            .iter()
            .filter_map(|n| reference::parse(n).ok())
            .map(|r| format!("{}@{d}", reference::repository(&r)))
            .collect(),
        None => Vec::new(),
    };
    store.commit(NewImage {
        names: img.names.clone(),
        repo_digests,
        manifest_digest: img.manifest_digest.clone(),
        manifest: img.manifest.clone(),
        config_digest: img.config.digest.clone(),
        config: img.config_bytes.clone(),
        layers,
        staged,
    })
}

fn oci_images(a: &Archive, path: &Path, platform: &Platform) -> Result<Vec<Found>, ImageError> {
    let index = a.json("index.json", path)?.unwrap_or_default();
    let Parsed::Index(list) = manifest::parse(&index, "index.json").map_err(|e| bad(path, e))? else {
        return Err(bad(path, "index.json is not an image index"));
    };
    let mut out = Vec::new();
    for top in list {
        let names = oci_names(&top.annotations);
        let label = names.first().cloned().unwrap_or_else(|| top.digest.clone());
        let mut desc = top.clone();
        let mut bytes = read_member(a.blob(&desc, path)?)?;
        if let Parsed::Index(inner) = manifest::parse(&bytes, &label).map_err(|e| bad(path, e))? {
            desc = manifest::select(&inner, platform).map_err(|e| bad(path, format!("{label}: {e}")))?;
            bytes = read_member(a.blob(&desc, path)?)?;
        }
        let Parsed::Image { config, layers } = manifest::parse(&bytes, &label).map_err(|e| bad(path, e))? else {
            return Err(bad(path, format!("{label}: nested index")));
        };
        let config_bytes = read_member(a.blob(&config, path)?)?;
        let layers = layers
            .iter()
            .map(|l| a.blob(l, path).map(|m| (m.file.clone(), l.digest.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(Found {
            names,
            top_digest: Some(top.digest.clone()),
            manifest: bytes,
            manifest_digest: desc.digest.clone(),
            config,
            layers,
            config_bytes,
            label,
        });
    }
    Ok(out)
}

fn oci_names(ann: &BTreeMap<String, String>) -> Vec<String> {
    let candidate = ann
        .get("io.containerd.image.name")
        .or_else(|| ann.get("org.opencontainers.image.ref.name").filter(|n| n.contains('/') || n.contains(':')));
    candidate.and_then(|n| reference::normalize(n).ok()).into_iter().collect()
}

fn read_member(m: &Member) -> Result<Vec<u8>, ImageError> {
    if m.size > MAX_JSON {
        return Err(ImageError::Invalid {
            context: "import".into(),
            message: format!("{} is too large for a manifest", m.digest),
        });
    }
    fs::read(&m.file).map_err(|source| ImageError::Io { context: "reading a blob".into(), source })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_images(a: &Archive, path: &Path) -> Result<Vec<Found>, ImageError> {
    let text = a.json("manifest.json", path)?.unwrap_or_default();
    let entries: Vec<LegacyEntry> =
        serde_json::from_slice(&text).map_err(|e| bad(path, format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let cfg = a.member(Path::new(&e.config)).ok_or_else(|| bad(path, format!("config {} is missing", e.config)))?;
        let config_bytes = read_member(cfg)?;
        let config = Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: cfg.digest.clone(),
            size: cfg.size,
            ..Default::default()
        };
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        for l in &e.layers {
            let m = a.member(Path::new(l)).ok_or_else(|| bad(path, format!("layer {l} is missing")))?;
            let mut head = [0u8; 4];
            let n = File::open(&m.file).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
            let media_type = match sniff(&head[..n]) {
                Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Zstd => "application/vnd.docker.image.rootfs.diff.tar.zstd",
                Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            };
            descs.push(serde_json::json!({"mediaType": media_type, "digest": m.digest, "size": m.size}));
            layers.push((m.file.clone(), m.digest.clone()));
        }
        // A Docker schema 2 manifest for the image, as containerd synthesises.
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": config.digest, "size": config.size},
            "layers": descs,
        }))
        .map_err(|e| bad(path, e))?;
        let names: Vec<String> = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| reference::normalize(t).map_err(|err| bad(path, err)))
            .collect::<Result<_, _>>()?;
        let label = names.first().cloned().unwrap_or_else(|| config.digest.clone());
        out.push(Found {
            names,
            top_digest: None,
            manifest_digest: sha256(&manifest),
            manifest,
            config,
            layers,
            config_bytes,
            label,
        });
    }
    Ok(out)
}
