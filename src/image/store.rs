//! The on-disk store: `blobs/sha256/<hex>` (manifests and configs), `layers/<hex of diff_id>/`
//! (unpacked overlay-format trees), `index.json` (images by id: names, repo digests, layers, last
//! use), `tmp/` for work in progress. Every write is a temporary file or directory renamed into
//! place. `index.lock` (flock, exclusive) serialises index updates between processes; `content.lock`
//! is held shared by pulls and imports and exclusive while unreferenced layers are deleted, so a
//! `kelp images rm` never deletes a layer a running pull is about to commit.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::digest::{sha256, sha256_hex};
use super::unpack::{unpack_layer, UnpackError};
use super::ImageError;

/// One image of the index.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Normalised names (`docker.io/library/busybox:latest`), unique across images.
    #[serde(default)]
    pub names: Vec<String>,
    /// `<registry>/<repository>@<digest of what was pulled or imported>`.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// The platform manifest's digest (a blob of the store).
    pub manifest: String,
    /// diff_ids, bottom first.
    pub layers: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub last_used: u64,
}

/// One unpacked layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// Bytes of file content.
    pub size: u64,
}

/// `index.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Index {
    /// By id (`sha256:<config digest>`).
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
    /// By diff_id.
    #[serde(default)]
    pub layers: BTreeMap<String, LayerRecord>,
}

impl Index {
    /// Bytes of the image's layers.
    pub fn image_size(&self, rec: &ImageRecord) -> u64 {
        rec.layers.iter().filter_map(|l| self.layers.get(l)).map(|l| l.size).sum()
    }
}

/// What a pull or an import commits.
pub struct NewImage {
    pub names: Vec<String>,
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub config: Vec<u8>,
    /// (diff_id, unpacked size), bottom first.
    pub layers: Vec<(String, u64)>,
    /// Layers unpacked for this image, moved into `layers/` by the commit (removed if it fails).
    pub staged: Vec<(String, TmpPath)>,
}

/// An flock held until dropped.
pub struct FileLock(#[allow(dead_code)] File);

fn flock(path: &Path, op: libc::c_int) -> io::Result<Option<FileLock>> {
    let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    loop {
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(Some(FileLock(f)));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if op & libc::LOCK_NB != 0 => return Ok(None),
            _ => return Err(e),
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// A temporary file or directory under `tmp/`, removed on drop unless taken.
pub struct TmpPath(Option<PathBuf>);

impl TmpPath {
    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("tmp path")
    }
}

impl Drop for TmpPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir_all(&p);
                }
                Ok(_) => {
                    let _ = fs::remove_file(&p);
                }
                Err(_) => {}
            }
        }
    }
}

/// The store's directories.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Creates the layout if needed and removes temporary files of processes that are gone.
    pub fn open(root: &Path) -> Result<Store, ImageError> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        }
        let store = Store { root: root.to_path_buf() };
        store.clean_tmp();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn clean_tmp(&self) {
        let Ok(rd) = fs::read_dir(self.root.join("tmp")) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            // SAFETY: kill with signal 0 only checks that the process exists.
            let alive = pid.is_some_and(|p| {
                p > 0
                    && (unsafe { libc::kill(p, 0) } == 0
                        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
            });
            if !alive {
                drop(TmpPath(Some(e.path())));
            }
        }
    }

    /// A fresh path under `tmp/` (not created).
    pub fn tmp(&self, what: &str) -> TmpPath {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        TmpPath(Some(self.root.join("tmp").join(format!("{}-{n}-{what}", std::process::id()))))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(digest).ok_or_else(|| ImageError::Invalid {
            context: "digest".into(),
            message: format!("unsupported digest {digest:?}"),
        })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(diff_id).ok_or_else(|| ImageError::Invalid {
            context: "diff_id".into(),
            message: format!("unsupported digest {diff_id:?}"),
        })?;
        Ok(self.root.join("layers").join(hex))
    }

    /// Writes a blob after checking its digest.
    pub fn put_blob(&self, digest: &str, data: &[u8]) -> Result<(), ImageError> {
        let actual = sha256(data);
        if actual != digest {
            return Err(ImageError::Invalid {
                context: "storing a blob".into(),
                message: format!("content has digest {actual}, expected {digest}"),
            });
        }
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        let tmp = self.tmp("blob");
        let mut f = File::create(tmp.path()).map_err(io_err("writing a blob"))?;
        f.write_all(data).and_then(|_| f.sync_all()).map_err(io_err("writing a blob"))?;
        fs::rename(tmp.path(), &path).map_err(io_err(format!("storing {}", path.display())))?;
        Ok(())
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(io_err(format!("reading {}", p.display())))
    }

    /// Unpacks the layer blob at `blob` into a temporary directory (blocking); returns it and the
    /// unpacked size. [`Store::commit`] moves it into `layers/<diff_id>`.
    pub fn stage_layer(&self, blob: &Path, diff_id: &str) -> Result<(TmpPath, u64), ImageError> {
        self.layer_dir(diff_id)?;
        let tmp = self.tmp("layer");
        let unpacked = unpack_layer(blob, tmp.path(), diff_id).map_err(|e| match e {
            UnpackError::Io { context, source } => {
                ImageError::Io { context: format!("unpacking layer {diff_id}: {context}"), source }
            }
            other => ImageError::Invalid { context: format!("layer {diff_id}"), message: other.to_string() },
        })?;
        Ok((tmp, unpacked.size))
    }

    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<Index, ImageError> {
        let p = self.root.join("index.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ImageError::Invalid { context: p.display().to_string(), message: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io_err(format!("reading {}", p.display()))(e)),
        }
    }

    /// Read-modify-write of the index under the index lock; written only when `f` succeeds.
    pub fn update<T>(&self, f: impl FnOnce(&mut Index) -> Result<T, ImageError>) -> Result<T, ImageError> {
        let _lock = flock(&self.root.join("index.lock"), libc::LOCK_EX).map_err(io_err("locking the image index"))?;
        let mut index = self.read_index()?;
        let out = f(&mut index)?;
        let data = serde_json::to_vec_pretty(&index)
            .map_err(|e| ImageError::Invalid { context: "writing the image index".into(), message: e.to_string() })?;
        let tmp = self.tmp("index");
        let mut file = File::create(tmp.path()).map_err(io_err("writing the image index"))?;
        file.write_all(&data).and_then(|_| file.sync_all()).map_err(io_err("writing the image index"))?;
        fs::rename(tmp.path(), self.root.join("index.json")).map_err(io_err("writing the image index"))?;
        Ok(out)
    }

    /// Held (shared) by pulls and imports from the first layer to the commit.
    pub fn content_shared(&self) -> Result<FileLock, ImageError> {
        flock(&self.root.join("content.lock"), libc::LOCK_SH)
            .map_err(io_err("locking the image store"))
            .map(|l| l.expect("blocking lock"))
    }

    /// Exclusive content lock; `None` when `wait` is false and a pull or import is running.
    pub fn content_exclusive(&self, wait: bool) -> Result<Option<FileLock>, ImageError> {
        let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        flock(&self.root.join("content.lock"), op).map_err(io_err("locking the image store"))
    }

    /// Commits an image whose layers are unpacked: blobs, then the index entry. Its names move
    /// from any other image to this one (an image left without names is kept, listed as `<none>`,
    /// until removed or collected).
    pub fn commit(&self, img: NewImage) -> Result<String, ImageError> {
        self.put_blob(&img.manifest_digest, &img.manifest)?;
        self.put_blob(&img.config_digest, &img.config)?;
        // Concurrent unpacks of one layer (other tasks or processes) are harmless: the first
        // rename wins, the others' copies are dropped.
        for (diff_id, staged) in &img.staged {
            let dest = self.layer_dir(diff_id)?;
            match fs::rename(staged.path(), &dest) {
                Ok(()) => {}
                Err(_) if dest.is_dir() => {}
                Err(e) => return Err(io_err(format!("storing layer {}", dest.display()))(e)),
            }
        }
        for (diff_id, _) in &img.layers {
            let d = self.layer_dir(diff_id)?;
            if !d.is_dir() {
                return Err(ImageError::Invalid {
                    context: "committing an image".into(),
                    message: format!("layer {diff_id} is missing"),
                });
            }
        }
        let id = img.config_digest.clone();
        self.update(|index| {
            for (diff_id, size) in &img.layers {
                index.layers.entry(diff_id.clone()).or_insert(LayerRecord { size: *size });
            }
            for (other_id, rec) in index.images.iter_mut() {
                if *other_id != id {
                    rec.names.retain(|n| !img.names.contains(n));
                }
            }
            let t = now();
            let rec =
                index.images.entry(id.clone()).or_insert_with(|| ImageRecord { created: t, ..Default::default() });
            rec.manifest = img.manifest_digest.clone();
            rec.layers = img.layers.iter().map(|(d, _)| d.clone()).collect();
            rec.last_used = t;
            for n in &img.names {
                if !rec.names.contains(n) {
                    rec.names.push(n.clone());
                }
            }
            for r in &img.repo_digests {
                if !rec.repo_digests.contains(r) {
                    rec.repo_digests.push(r.clone());
                }
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// Deletes layers and blobs no image of the index refers to (caller holds the exclusive content
    /// lock). Returns the bytes of layers deleted.
    pub fn prune(&self) -> Result<u64, ImageError> {
        let (freed, keep_blobs) = self.update(|index| {
            let used_layers: HashSet<String> = index.images.values().flat_map(|r| r.layers.iter().cloned()).collect();
            let mut freed = 0;
            index.layers.retain(|d, rec| {
                let keep = used_layers.contains(d);
                if !keep {
                    freed += rec.size;
                }
                keep
            });
            let mut blobs = HashSet::new();
            for (id, rec) in &index.images {
                blobs.insert(id.trim_start_matches("sha256:").to_string());
                blobs.insert(rec.manifest.trim_start_matches("sha256:").to_string());
            }
            Ok((freed, (used_layers, blobs)))
        })?;
        let (used_layers, blobs) = keep_blobs;
        let used_hex: HashSet<String> =
            used_layers.iter().map(|d| d.trim_start_matches("sha256:").to_string()).collect();
        if let Ok(rd) = fs::read_dir(self.root.join("layers")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !used_hex.contains(&name) {
                    // Renamed first: a half-deleted layer is never visible under its name.
                    let t = self.tmp("deleted-layer");
                    if fs::rename(e.path(), t.path()).is_err() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.root.join("blobs/sha256")) {
            for e in rd.flatten() {
                if !blobs.contains(&e.file_name().to_string_lossy().into_owned()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(freed)
    }
}
