//! Images: a content-addressed store, pulls with oci-client over rustls (registries.yaml mirrors
//! and credentials), air-gap tarball import, layers unpacked once into overlay-format directories.
//!
//! INTERFACE CONTRACT (used by `agent` and `kelp images`): the types and method signatures below
//! are what the agent codes against. Implementations may add fields/methods; changing these needs
//! a note to the lead.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod digest;
pub mod import;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod store;
pub mod unpack;

pub use manifest::Platform;
use registries::Registries;
use store::{ImageRecord, Index, Store};

/// Errors of the image store. The agent maps them to container waiting reasons.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `InvalidImageName`.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// Policy Never and the image is not present: `ErrImageNeverPull`.
    #[error("container image {0:?} is not present with pull policy of Never")]
    NeverPull(String),
    /// Anything that failed while pulling (auth, not found, digest mismatch, network): `ErrImagePull`.
    #[error("failed to pull image {name:?}: {message}")]
    Pull { name: String, message: String },
    /// No such image in the store.
    #[error("image {0:?} not found")]
    NotFound(String),
    /// Bad content or configuration.
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
    /// A filesystem error of the store.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

/// `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Registry credentials from an imagePullSecret (`.dockerconfigjson` / `.dockercfg`).
#[derive(Clone, Debug)]
pub struct Credential {
    /// Registry host as written in the secret (`https://index.docker.io/v1/`, `127.0.0.1:5001`, …).
    pub registry: String,
    pub username: String,
    pub password: String,
}

/// The parts of an image config a container needs.
#[derive(Clone, Debug, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<String>,
}

/// An image ready to run.
#[derive(Clone, Debug)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    /// The normalised name it was asked by, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// `<repo>@sha256:<manifest digest>` (containerStatuses[].imageID), when known.
    pub repo_digest: Option<String>,
    pub config: ImageConfig,
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// Bytes on disk (unpacked).
    pub size: u64,
}

/// One row of `kelp images ls`.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    pub id: String,
    pub names: Vec<String>,
    pub size: u64,
}

/// Configuration of the store.
#[derive(Clone, Debug)]
pub struct ImageStoreConfig {
    /// Store root, `<data-dir>/agent/images-store`... chosen by the agent.
    pub root: PathBuf,
    /// `registries.yaml` (k3s format); a missing file means no mirrors or credentials.
    pub registries_file: PathBuf,
}

/// The node's image store. Cheap to clone; safe to use from several tasks and from `kelp images`
/// in another process at the same time.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
    platform: Platform,
}

struct Inner {
    cfg: ImageStoreConfig,
    store: Store,
    registries: Registries,
    clients: pull::Clients,
    /// One pull per name at a time in this process.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn blocking_err(e: tokio::task::JoinError) -> ImageError {
    ImageError::Invalid { context: "image store task".into(), message: e.to_string() }
}

impl ImageStore {
    /// Opens (creating) the store at `cfg.root` and reads `cfg.registries_file` (a bad file is an
    /// error, a missing one means no mirrors or credentials).
    pub fn open(cfg: ImageStoreConfig) -> Result<Self, ImageError> {
        // oci-client's rustls needs a process-wide provider (a no-op when one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = Store::open(&cfg.root)?;
        let registries = Registries::load(&cfg.registries_file)?;
        Ok(ImageStore {
            inner: Arc::new(Inner { cfg, store, registries, clients: Default::default(), pulls: Default::default() }),
            platform: Platform::host(),
        })
    }

    /// The same store pulling and importing for another platform (default: the running one).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The store's configuration.
    pub fn config(&self) -> &ImageStoreConfig {
        &self.inner.cfg
    }

    /// Makes the image present per the pull policy and returns it.
    pub async fn ensure(&self, name: &str, policy: PullPolicy, creds: &[Credential]) -> Result<Image, ImageError> {
        let r = reference::parse(name)?;
        let normalized = r.whole();
        if policy != PullPolicy::Always {
            if let Some(img) = self.get(&normalized)? {
                self.touch(&img.id)?;
                return Ok(img);
            }
            if policy == PullPolicy::Never {
                return Err(ImageError::NeverPull(name.to_string()));
            }
        }
        let lock = self.inner.pulls.lock().expect("pulls").entry(normalized.clone()).or_default().clone();
        let _guard = lock.lock().await;
        if policy == PullPolicy::IfNotPresent {
            if let Some(img) = self.get(&normalized)? {
                return Ok(img);
            }
        }
        let puller = pull::Puller {
            store: &self.inner.store,
            registries: &self.inner.registries,
            clients: &self.inner.clients,
            platform: &self.platform,
        };
        let id = puller.pull(&r, &normalized, creds).await?;
        let mut img = self.get(&id)?.ok_or_else(|| ImageError::NotFound(normalized.clone()))?;
        img.name = normalized;
        if let Some(d) = r.digest() {
            img.repo_digest = Some(format!("{}@{d}", reference::repository(&r)));
        }
        Ok(img)
    }

    fn touch(&self, id: &str) -> Result<(), ImageError> {
        self.inner.store.update(|index| {
            if let Some(rec) = index.images.get_mut(id) {
                rec.last_used = store::now();
            }
            Ok(())
        })
    }

    /// Finds an image by name (normalised), `name@digest`, id or unique id prefix.
    fn find(index: &Index, name: &str) -> Option<String> {
        if let Ok(r) = reference::parse(name) {
            let n = r.whole();
            if let Some(d) = r.digest() {
                let want = format!("{}@{d}", reference::repository(&r));
                if let Some((id, _)) = index.images.iter().find(|(_, rec)| rec.repo_digests.contains(&want)) {
                    return Some(id.clone());
                }
            }
            if let Some((id, _)) = index.images.iter().find(|(_, rec)| rec.names.contains(&n)) {
                return Some(id.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<&String> =
                index.images.keys().filter(|id| id.trim_start_matches("sha256:").starts_with(hex)).collect();
            if matches.len() == 1 {
                return Some(matches[0].clone());
            }
        }
        None
    }

    fn image(&self, index: &Index, id: &str, rec: &ImageRecord, asked: &str) -> Result<Image, ImageError> {
        let config_bytes = self.inner.store.read_blob(id)?;
        let cfg = manifest::parse_config(&config_bytes, rec.layers.len())?;
        let name = reference::parse(asked)
            .ok()
            .map(|r| r.whole())
            .filter(|n| rec.names.contains(n))
            .or_else(|| rec.names.first().cloned())
            .unwrap_or_else(|| id.to_string());
        let repo = reference::parse(&name).ok().map(|r| reference::repository(&r));
        let repo_digest = rec
            .repo_digests
            .iter()
            .find(|d| repo.as_ref().is_some_and(|r| d.starts_with(&format!("{r}@"))))
            .or_else(|| rec.repo_digests.first())
            .cloned();
        let layers = rec.layers.iter().map(|l| self.inner.store.layer_dir(l)).collect::<Result<Vec<_>, _>>()?;
        Ok(Image {
            id: id.to_string(),
            name,
            repo_digest,
            config: ImageConfig::from(&cfg),
            layers,
            size: index.image_size(rec),
        })
    }

    /// The image by name or id, if present.
    pub fn get(&self, name: &str) -> Result<Option<Image>, ImageError> {
        let index = self.inner.store.read_index()?;
        let Some(id) = Self::find(&index, name) else { return Ok(None) };
        let rec = &index.images[&id];
        if !rec.layers.iter().all(|l| self.inner.store.layer_dir(l).is_ok_and(|d| d.is_dir())) {
            return Ok(None);
        }
        self.image(&index, &id, rec, name).map(Some)
    }

    /// Imports a `docker save` / OCI-layout tarball (plain, .gz, .zst); returns the image names.
    pub async fn import(&self, file: &Path) -> Result<Vec<String>, ImageError> {
        let store = self.inner.store.clone();
        let file = file.to_path_buf();
        let platform = self.platform.clone();
        tokio::task::spawn_blocking(move || import::import(&store, &file, &platform)).await.map_err(blocking_err)?
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let index = self.inner.store.read_index()?;
        let mut out: Vec<(u64, ImageSummary)> = index
            .images
            .iter()
            .map(|(id, rec)| {
                (rec.created, ImageSummary { id: id.clone(), names: rec.names.clone(), size: index.image_size(rec) })
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// Removes an image by name or id (its layers once no other image uses them). By name only that
    /// name goes, and the image with it once it has no name left (`docker rmi` semantics); by id
    /// the image goes with all its names.
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        self.inner.store.update(|index| {
            let id = Self::find(index, name).ok_or_else(|| ImageError::NotFound(name.to_string()))?;
            let by_name =
                reference::parse(name).ok().map(|r| r.whole()).filter(|n| index.images[&id].names.contains(n));
            let rec = index.images.get_mut(&id).expect("found");
            match by_name {
                Some(n) => {
                    rec.names.retain(|x| *x != n);
                    let repo = reference::parse(&n).ok().map(|r| reference::repository(&r));
                    if let Some(repo) = repo {
                        if !rec.names.iter().any(|x| x.starts_with(&format!("{repo}:"))) {
                            rec.repo_digests.retain(|d| !d.starts_with(&format!("{repo}@")));
                        }
                    }
                    if rec.names.is_empty() {
                        index.images.remove(&id);
                    }
                }
                None => {
                    index.images.remove(&id);
                }
            }
            Ok(())
        })?;
        // Layers no image needs any more; left for later when a pull or import is running.
        if let Some(_lock) = self.inner.store.content_exclusive(false)? {
            self.inner.store.prune()?;
        }
        Ok(())
    }

    /// Frees at least `bytes` by removing least recently used images whose id is not in `in_use`;
    /// returns the bytes freed. `in_use` may hold ids or names. Blocking: waits for running pulls
    /// and imports of other processes (call it from `spawn_blocking`).
    pub fn gc(&self, in_use: &HashSet<String>, bytes: u64) -> Result<u64, ImageError> {
        let _lock = self.inner.store.content_exclusive(true)?;
        let mut freed = self.inner.store.prune()?;
        while freed < bytes {
            let removed = self.inner.store.update(|index| {
                let used: HashSet<String> = index
                    .images
                    .iter()
                    .filter(|(id, rec)| in_use.contains(*id) || rec.names.iter().any(|n| in_use.contains(n)))
                    .map(|(id, _)| id.clone())
                    .chain(in_use.iter().filter_map(|n| Self::find(index, n)))
                    .collect();
                let victim = index
                    .images
                    .iter()
                    .filter(|(id, _)| !used.contains(*id))
                    .min_by_key(|(id, rec)| (rec.last_used, (*id).clone()))
                    .map(|(id, _)| id.clone());
                if let Some(v) = &victim {
                    tracing::info!(image = %v, "image garbage collection removes an unused image");
                    index.images.remove(v);
                }
                Ok(victim.is_some())
            })?;
            if !removed {
                break;
            }
            freed += self.inner.store.prune()?;
        }
        Ok(freed)
    }
}
