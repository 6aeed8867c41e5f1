//! Pod volumes under `<data_dir>/pods/<uid>/volumes/<plugin>/<name>`: emptyDir (disk, or tmpfs
//! for `medium: Memory` with its sizeLimit), hostPath with its types, configMap, secret (tmpfs),
//! downwardAPI, projected (serviceAccountToken bound to the pod and refreshed at 80 % of its
//! life, configMap, secret, downwardAPI; tmpfs). File contents are written like kubelet's
//! AtomicWriter — a timestamped directory, `..data` swapped to it by rename, user-visible names
//! as symlinks through `..data` — so updates reach running containers atomically.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use kube::api::PostParams;
use kube::Api;

use super::env::{self, Downward, Objects};

/// A volume that could not be set up (`FailedMount`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

/// A file a volume shows: path relative to the volume, content, mode.
type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// A token held for a projected volume source.
#[derive(Clone, Debug)]
struct Token {
    token: String,
    /// When to fetch a new one (80 % of its life).
    refresh_at: SystemTime,
}

/// Per-pod volume state kept by the pod worker between syncs.
#[derive(Default)]
pub struct PodVolumes {
    tokens: HashMap<String, Token>,
    /// Set-up volumes by name: host path.
    pub paths: HashMap<String, PathBuf>,
}

impl PodVolumes {
    /// The earliest token refresh time (the worker syncs again then).
    pub fn next_refresh(&self) -> Option<SystemTime> {
        self.tokens.values().map(|t| t.refresh_at).min()
    }
}

/// The plugin directory names kubelet uses.
fn plugin(v: &Volume) -> &'static str {
    if v.empty_dir.is_some() {
        "kubernetes.io~empty-dir"
    } else if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.projected.is_some() {
        "kubernetes.io~projected"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else {
        "kubernetes.io~unsupported"
    }
}

pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

fn io(ctx: &str, e: std::io::Error) -> String {
    format!("{ctx}: {e}")
}

/// Whether `p` is a mount point (its device differs from its parent's).
pub fn is_mount_point(p: &Path) -> bool {
    let (Ok(m), Some(parent)) = (std::fs::symlink_metadata(p), p.parent()) else { return false };
    std::fs::metadata(parent).map(|pm| pm.dev() != m.dev()).unwrap_or(false)
}

fn mount_tmpfs(dir: &Path, size: Option<u64>) -> Result<(), String> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let opts = match size {
        Some(s) => format!("mode=0777,size={s}"),
        None => "mode=0777".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting a tmpfs on {}: {e}", dir.display()))
}

/// A path relative to a volume: no absolute paths, no `..`.
fn safe_rel(p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() || path.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("invalid path {p:?}: must be relative and may not contain '..'"));
    }
    Ok(path.to_path_buf())
}

/// Writes `files` into `dir` atomically (kubelet's AtomicWriter). Returns whether anything changed.
pub fn atomic_write(dir: &Path, files: &Files, gid: Option<u32>) -> Result<bool, String> {
    std::fs::create_dir_all(dir).map_err(|e| io("creating the volume dir", e))?;
    let data = dir.join("..data");
    if let Ok(cur) = std::fs::read_link(&data) {
        let cur_dir = dir.join(&cur);
        let same = files.iter().all(|(p, (content, mode))| {
            let f = cur_dir.join(p);
            std::fs::read(&f).is_ok_and(|c| &c == content)
                && std::fs::metadata(&f).is_ok_and(|m| m.permissions().mode() & 0o7777 == *mode)
        }) && count_files(&cur_dir) == files.len();
        if same {
            return Ok(false);
        }
    }
    for p in files.keys() {
        safe_rel(p)?;
    }
    let now = chrono::Utc::now();
    let ts = format!("..{}.{}", now.format("%Y_%m_%d_%H_%M_%S"), rand::random::<u32>());
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir).map_err(|e| io("creating the data dir", e))?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", e))?;
    for (p, (content, mode)) in files {
        let f = ts_dir.join(p);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating a dir", e))?;
        }
        std::fs::write(&f, content).map_err(|e| io(&format!("writing {p}"), e))?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode)).map_err(|e| io("chmod", e))?;
        if let Some(g) = gid {
            std::os::unix::fs::lchown(&f, None, Some(g)).map_err(|e| io("chown", e))?;
        }
    }
    let old = std::fs::read_link(&data).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp).map_err(|e| io("symlink ..data_tmp", e))?;
    std::fs::rename(&tmp, &data).map_err(|e| io("renaming ..data_tmp", e))?;
    let tops: std::collections::BTreeSet<String> =
        files.keys().filter_map(|p| p.split('/').next().map(str::to_string)).collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{t}"), &link).map_err(|e| io("symlink", e))?;
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !tops.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old {
        if old != Path::new(&ts) {
            let _ = std::fs::remove_dir_all(dir.join(old));
        }
    }
    Ok(true)
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += count_files(&e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
        }
    }
    n
}

/// Applies `items` (or every key) of a map to files, with modes.
fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    what: &str,
    out: &mut Files,
) -> Result<(), String> {
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    return Err(
                        format!("configmap references non-existent config key: {}", it.key).replace("configmap", what)
                    );
                };
                safe_rel(&it.path)?;
                out.insert(it.path.clone(), (v.clone(), it.mode.map(|m| m as u32).unwrap_or(default_mode)));
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode));
            }
        }
    }
    Ok(())
}

async fn configmap_files(
    objects: &mut Objects,
    name: &str,
    optional: bool,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    out: &mut Files,
) -> Result<(), String> {
    let cm = objects.configmap(name).await.map_err(|e| format!("failed to get configmap {name}: {e}"))?;
    let Some(cm) = cm else {
        if optional {
            return Ok(());
        }
        return Err(format!("configmap {name:?} not found"));
    };
    let mut data: BTreeMap<String, Vec<u8>> =
        cm.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    data.extend(cm.binary_data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    project(&data, items, mode, "configmap", out)
}

async fn secret_files(
    objects: &mut Objects,
    name: &str,
    optional: bool,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    out: &mut Files,
) -> Result<(), String> {
    let s = objects.secret(name).await.map_err(|e| format!("failed to get secret {name}: {e}"))?;
    let Some(s) = s else {
        if optional {
            return Ok(());
        }
        return Err(format!("secret {name:?} not found"));
    };
    let data: BTreeMap<String, Vec<u8>> =
        s.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    project(&data, items, mode, "secret", out)
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    d: &Downward,
    out: &mut Files,
) -> Result<(), String> {
    for it in items {
        safe_rel(&it.path)?;
        let value = if let Some(f) = &it.field_ref {
            env::field_ref(pod, &f.field_path, d).map_err(|e| e.0)?
        } else if let Some(r) = &it.resource_field_ref {
            let c = r.container_name.clone().unwrap_or_default();
            env::resource_field_ref(pod, &c, &r.resource, r.divisor.as_ref().map(|q| q.0.as_str()), d)
                .map_err(|e| e.0)?
        } else {
            String::new()
        };
        out.insert(it.path.clone(), (value.into_bytes(), it.mode.map(|m| m as u32).unwrap_or(mode)));
    }
    Ok(())
}

/// Context a volume set-up needs.
pub struct SetupContext<'a> {
    pub client: Option<&'a kube::Client>,
    pub data_dir: &'a Path,
    pub downward: &'a Downward,
    pub fs_group: Option<u32>,
}

/// Sets up (or refreshes) every volume of the pod; idempotent. The first failure is returned.
pub async fn setup(
    cx: &SetupContext<'_>,
    pod: &Pod,
    objects: &mut Objects,
    state: &mut PodVolumes,
) -> Result<(), VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    for v in spec.volumes.iter().flatten() {
        let err = |message: String| VolumeError { volume: v.name.clone(), message };
        let path = if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            host_path(&p, hp.type_.as_deref().unwrap_or("")).map_err(err)?;
            p
        } else {
            let dir = pod_dir(cx.data_dir, &uid).join("volumes").join(plugin(v)).join(&v.name);
            if v.empty_dir.is_none()
                && v.config_map.is_none()
                && v.secret.is_none()
                && v.projected.is_none()
                && v.downward_api.is_none()
            {
                return Err(err("volume type not supported by this node".into()));
            }
            std::fs::create_dir_all(&dir).map_err(|e| err(io("creating the volume dir", e)))?;
            self::fill(cx, pod, v, &dir, objects, state).await.map_err(err)?;
            dir
        };
        state.paths.insert(v.name.clone(), path);
    }
    Ok(())
}

async fn fill(
    cx: &SetupContext<'_>,
    pod: &Pod,
    v: &Volume,
    dir: &Path,
    objects: &mut Objects,
    state: &mut PodVolumes,
) -> Result<(), String> {
    let gid = cx.fs_group;
    if let Some(ed) = &v.empty_dir {
        if ed.medium.as_deref() == Some("Memory") {
            let size = match &ed.size_limit {
                Some(q) => Some(super::quantity::bytes(&q.0).map_err(|e| format!("invalid sizeLimit: {e}"))? as u64),
                None => None,
            };
            mount_tmpfs(dir, size)?;
        }
        let mut mode = 0o777;
        if let Some(g) = gid {
            std::os::unix::fs::chown(dir, None, Some(g)).map_err(|e| io("chown", e))?;
            mode |= 0o2000;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", e))?;
        return Ok(());
    }
    let mut files = Files::new();
    if let Some(cm) = &v.config_map {
        let mode = cm.default_mode.unwrap_or(0o644) as u32;
        configmap_files(objects, &cm.name, cm.optional == Some(true), cm.items.as_ref(), mode, &mut files).await?;
    } else if let Some(s) = &v.secret {
        mount_tmpfs(dir, None)?;
        let mode = s.default_mode.unwrap_or(0o644) as u32;
        let name = s.secret_name.clone().unwrap_or_default();
        secret_files(objects, &name, s.optional == Some(true), s.items.as_ref(), mode, &mut files).await?;
    } else if let Some(da) = &v.downward_api {
        let mode = da.default_mode.unwrap_or(0o644) as u32;
        downward_files(pod, da.items.as_deref().unwrap_or_default(), mode, cx.downward, &mut files)?;
    } else if let Some(p) = &v.projected {
        mount_tmpfs(dir, None)?;
        let mode = p.default_mode.unwrap_or(0o644) as u32;
        for (i, src) in p.sources.iter().flatten().enumerate() {
            if let Some(cm) = &src.config_map {
                configmap_files(objects, &cm.name, cm.optional == Some(true), cm.items.as_ref(), mode, &mut files)
                    .await?;
            } else if let Some(s) = &src.secret {
                secret_files(objects, &s.name, s.optional == Some(true), s.items.as_ref(), mode, &mut files).await?;
            } else if let Some(da) = &src.downward_api {
                downward_files(pod, da.items.as_deref().unwrap_or_default(), mode, cx.downward, &mut files)?;
            } else if let Some(t) = &src.service_account_token {
                safe_rel(&t.path)?;
                let key = format!("{}/{i}", v.name);
                let token =
                    token(cx, pod, t.audience.as_deref(), t.expiration_seconds.unwrap_or(3600), &key, state).await?;
                // Tokens are 0600 unless fsGroup / runAsUser say otherwise (upstream keeps the default mode).
                files.insert(t.path.clone(), (token.into_bytes(), mode));
            } else if src.cluster_trust_bundle.is_some() {
                return Err("projected source not supported by this node".into());
            }
        }
    }
    if let Some(g) = gid {
        for (_, m) in files.values_mut() {
            *m |= 0o040;
        }
        atomic_write(dir, &files, Some(g))?;
    } else {
        atomic_write(dir, &files, None)?;
    }
    Ok(())
}

async fn token(
    cx: &SetupContext<'_>,
    pod: &Pod,
    audience: Option<&str>,
    expiration: i64,
    key: &str,
    state: &mut PodVolumes,
) -> Result<String, String> {
    if let Some(t) = state.tokens.get(key) {
        if SystemTime::now() < t.refresh_at {
            return Ok(t.token.clone());
        }
    }
    let client = cx.client.ok_or("no API to request a service account token from")?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            expiration_seconds: Some(expiration),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let got: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &req)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    let status = got.status.ok_or("failed to fetch token: no token in the answer")?;
    let life = status.expiration_timestamp.0.duration_since(k8s_openapi::jiff::Timestamp::now()).as_secs_f64().max(1.0);
    let refresh_at = SystemTime::now() + Duration::from_secs_f64(life * 0.8);
    state.tokens.insert(key.to_string(), Token { token: status.token.clone(), refresh_at });
    Ok(status.token)
}

/// hostPath types: create or check what is at the path.
pub fn host_path(p: &Path, ty: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let md = std::fs::metadata(p);
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("hostPath type check failed: {} is not a {what}", p.display()))
        }
    };
    match ty {
        "" => Ok(()),
        "DirectoryOrCreate" => match md {
            Ok(m) => check(m.is_dir(), "directory"),
            Err(_) => {
                std::fs::create_dir_all(p).map_err(|e| io("creating the hostPath directory", e))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", e))
            }
        },
        "FileOrCreate" => match md {
            Ok(m) => check(m.is_file(), "file"),
            Err(_) => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io("creating the hostPath parent", e))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| io("creating the hostPath file", e))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).map_err(|e| io("chmod", e))
            }
        },
        _ => {
            let m = md.map_err(|_| format!("hostPath type check failed: {} does not exist", p.display()))?;
            let ft = m.file_type();
            match ty {
                "Directory" => check(ft.is_dir(), "directory"),
                "File" => check(ft.is_file(), "file"),
                "Socket" => check(ft.is_socket(), "socket"),
                "CharDevice" => check(ft.is_char_device(), "character device"),
                "BlockDevice" => check(ft.is_block_device(), "block device"),
                other => Err(format!("invalid hostPath type {other:?}")),
            }
        }
    }
}

/// The host path to bind for a volume mount (`subPath` resolved inside the volume, created when
/// missing; a path escaping the volume is refused).
pub fn mount_source(volume_path: &Path, sub_path: Option<&str>) -> Result<PathBuf, String> {
    let Some(sub) = sub_path.filter(|s| !s.is_empty()) else { return Ok(volume_path.to_path_buf()) };
    let rel = safe_rel(sub)?;
    let p = volume_path.join(rel);
    if std::fs::symlink_metadata(&p).is_err() {
        std::fs::create_dir_all(&p).map_err(|e| io("creating the subPath", e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).map_err(|e| io("chmod", e))?;
    }
    let real = p.canonicalize().map_err(|e| io("resolving the subPath", e))?;
    let base = volume_path.canonicalize().map_err(|e| io("resolving the volume", e))?;
    if !real.starts_with(&base) {
        return Err(format!("subpath {sub:?} escapes the volume"));
    }
    Ok(real)
}

/// Unmounts and removes everything of a pod under the data dir.
pub fn teardown(data_dir: &Path, uid: &str) -> Result<(), String> {
    let dir = pod_dir(data_dir, uid);
    let vols = dir.join("volumes");
    if let Ok(plugins) = std::fs::read_dir(&vols) {
        for p in plugins.flatten() {
            if let Ok(rd) = std::fs::read_dir(p.path()) {
                for v in rd.flatten() {
                    let path = v.path();
                    if is_mount_point(&path) {
                        nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
                            .map_err(|e| format!("unmounting {}: {e}", path.display()))?;
                    }
                }
            }
        }
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&format!("removing {}", dir.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(v: &[(&str, &str, u32)]) -> Files {
        v.iter().map(|(p, c, m)| (p.to_string(), (c.as_bytes().to_vec(), *m))).collect()
    }

    #[test]
    fn atomic_writer_swaps_data_and_prunes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vol");
        assert!(atomic_write(&dir, &files(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]), None).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(std::fs::metadata(dir.join("sub/b")).unwrap().permissions().mode() & 0o777, 0o400);
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(!atomic_write(&dir, &files(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]), None).unwrap(), "no change");
        assert!(atomic_write(&dir, &files(&[("a", "changed", 0o644)]), None).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "changed");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err(), "removed key is gone");
        assert!(!dir.join(&first).exists(), "old data dir removed");
        assert!(atomic_write(&dir, &files(&[("../x", "no", 0o644)]), None).is_err());
    }

    #[test]
    fn host_path_types() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("made");
        host_path(&dir, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        host_path(&dir, "Directory").unwrap();
        assert!(host_path(&dir, "File").unwrap_err().contains("is not a file"));
        let f = d.path().join("x/file");
        host_path(&f, "FileOrCreate").unwrap();
        host_path(&f, "File").unwrap();
        assert!(host_path(&f, "Socket").is_err());
        assert!(host_path(&d.path().join("missing"), "Directory").unwrap_err().contains("does not exist"));
        host_path(Path::new("/dev/null"), "CharDevice").unwrap();
        assert!(host_path(Path::new("/dev/null"), "BlockDevice").is_err());
        assert!(host_path(&dir, "Bogus").is_err());
    }

    #[test]
    fn sub_paths_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let p = mount_source(d.path(), Some("a/b")).unwrap();
        assert!(p.is_dir());
        std::os::unix::fs::symlink("/etc", d.path().join("evil")).unwrap();
        assert!(mount_source(d.path(), Some("evil")).unwrap_err().contains("escapes"));
        assert!(mount_source(d.path(), Some("../x")).is_err());
        assert_eq!(mount_source(d.path(), None).unwrap(), d.path());
    }

    #[test]
    fn projection_with_items_and_missing_keys() {
        let data: BTreeMap<String, Vec<u8>> = [("k".to_string(), b"v".to_vec())].into_iter().collect();
        let mut out = Files::new();
        let items = vec![KeyToPath { key: "k".into(), path: "dir/f".into(), mode: Some(0o600) }];
        project(&data, Some(&items), 0o644, "configmap", &mut out).unwrap();
        assert_eq!(out["dir/f"], (b"v".to_vec(), 0o600));
        let bad = vec![KeyToPath { key: "nope".into(), path: "f".into(), mode: None }];
        let e = project(&data, Some(&bad), 0o644, "secret", &mut Files::new()).unwrap_err();
        assert_eq!(e, "secret references non-existent config key: nope");
    }
}
