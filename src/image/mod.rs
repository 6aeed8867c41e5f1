//! Images: a content-addressed store, pulls with oci-client over rustls (registries.yaml mirrors
//! and credentials), air-gap tarball import, layers unpacked once into overlay-format directories.
//!
//! INTERFACE CONTRACT (used by `agent` and `kelp images`): the types and method signatures below
//! are what the agent codes against. Implementations may add fields/methods; changing these needs
//! a note to the lead.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

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
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

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
    _cfg: ImageStoreConfig,
}

impl ImageStore {
    pub fn open(cfg: ImageStoreConfig) -> Result<Self, ImageError> {
        Ok(ImageStore { _cfg: cfg })
    }

    /// Makes the image present per the pull policy and returns it.
    pub async fn ensure(&self, name: &str, _policy: PullPolicy, _creds: &[Credential]) -> Result<Image, ImageError> {
        Err(ImageError::NotFound(name.to_string()))
    }

    /// The image by name or id, if present.
    pub fn get(&self, _name: &str) -> Result<Option<Image>, ImageError> {
        Ok(None)
    }

    /// Imports a `docker save` / OCI-layout tarball (plain, .gz, .zst); returns the image names.
    pub async fn import(&self, _file: &Path) -> Result<Vec<String>, ImageError> {
        Ok(Vec::new())
    }

    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        Ok(Vec::new())
    }

    /// Removes an image by name or id (its layers once no other image uses them).
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        Err(ImageError::NotFound(name.to_string()))
    }

    /// Frees at least `bytes` by removing least recently used images whose id is not in `in_use`;
    /// returns the bytes freed.
    pub fn gc(&self, _in_use: &HashSet<String>, _bytes: u64) -> Result<u64, ImageError> {
        Ok(0)
    }
}
