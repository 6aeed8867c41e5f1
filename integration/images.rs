//! The image store against real local registries (docker-registry, started per test on a free
//! port) and the fixture tarballs of integration/fixtures/build-images.sh.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::images::{fixtures, Registry, RegistryKind, BUSYBOX, PASSWORD, USER};
use kelp::image::{Credential, Image, ImageError, ImageStore, ImageStoreConfig, Platform, PullPolicy};

struct TestStore {
    dir: tempfile::TempDir,
    store: ImageStore,
}

fn store_with(registries_yaml: Option<&str>) -> TestStore {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new().prefix("kelp-images-").tempdir().unwrap();
    let reg = dir.path().join("registries.yaml");
    if let Some(y) = registries_yaml {
        fs::write(&reg, y).unwrap();
    }
    let store = ImageStore::open(ImageStoreConfig { root: dir.path().join("store"), registries_file: reg }).unwrap();
    TestStore { dir, store }
}

fn store() -> TestStore {
    store_with(None)
}

/// The digests the fixture builder produces (it is deterministic).
fn busybox_index_digest() -> String {
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(fixtures().join("busybox-oci/index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn blob(digest: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(fixtures().join("busybox-oci/blobs/sha256").join(&digest[7..])).unwrap()).unwrap()
}

/// (manifest digest, config digest) of the busybox image for `arch`.
fn busybox_platform(arch: &str) -> (String, String) {
    let idx = blob(&busybox_index_digest());
    let m = idx["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == arch).unwrap();
    let md = m["digest"].as_str().unwrap().to_string();
    let cd = blob(&md)["config"]["digest"].as_str().unwrap().to_string();
    (md, cd)
}

fn host_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// The unpacked layers hold what the fixture builder wrote, in overlay format.
fn check_busybox_tree(img: &Image) {
    assert_eq!(img.layers.len(), 3, "{img:?}");
    let (l1, l2, l3) = (&img.layers[0], &img.layers[1], &img.layers[2]);
    // layer 1: files, modes, owners, links, devices, mtimes
    let bb = fs::metadata(l1.join("bin/busybox")).unwrap();
    assert!(bb.is_file() && bb.mode() & 0o7777 == 0o755 && bb.len() > 500_000);
    assert_eq!(fs::read_link(l1.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    let host = fs::metadata(l1.join("etc/hostname")).unwrap();
    assert_eq!(fs::metadata(l1.join("etc/hostname.hardlink")).unwrap().ino(), host.ino());
    assert_eq!(host.nlink(), 2);
    let owned = fs::metadata(l1.join("etc/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid(), owned.mode() & 0o7777), (1000, 1000, 0o640));
    let null = fs::metadata(l1.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (libc::makedev(1, 3), 0o666));
    let fifo = fs::symlink_metadata(l1.join("dev/kelp-fifo")).unwrap();
    assert!(fifo.file_type().is_fifo() && fifo.mode() & 0o7777 == 0o600);
    let tmp = fs::metadata(l1.join("tmp")).unwrap();
    assert_eq!((tmp.mode() & 0o7777, tmp.mtime()), (0o1777, 1_700_000_000));
    assert_eq!(fs::metadata(l1.join("etc")).unwrap().mtime(), 1_700_000_000);
    assert_eq!(fs::read_to_string(l1.join("data/a")).unwrap(), "a from layer1\n");
    // layer 2: whiteouts as 0:0 char devices, opaque dir
    for wh in ["data/a", "data/sub"] {
        let m = fs::symlink_metadata(l2.join(wh)).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0, "{wh} is not a whiteout");
    }
    assert!(!l2.join("data/.wh.a").exists());
    assert_eq!(xattr::get(l2.join("opq"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    assert!(xattr::get(l2.join("data"), "trusted.overlay.opaque").unwrap().is_none());
    assert_eq!(fs::read_to_string(l2.join("opq/z")).unwrap(), "z from layer2\n");
    // layer 3
    assert_eq!(fs::read_to_string(l3.join("etc/hostname")).unwrap(), "layer3\n");
    assert_eq!(img.config.cmd, ["/bin/sh"]);
    assert_eq!(img.config.env, ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    assert!(img.size > 500_000);
}

fn pull_err(r: Result<Image, ImageError>) -> String {
    match r {
        Err(ImageError::Pull { message, .. }) => message,
        other => panic!("expected a pull error, got {other:?}"),
    }
}

#[tokio::test]
async fn anonymous_pull_policies_and_names() {
    let reg = Registry::start(RegistryKind::Plain);
    let s = store();
    let name = format!("{}/kelp-test/busybox:latest", reg.addr());
    assert!(matches!(
        s.store.ensure(&name, PullPolicy::Never, &[]).await,
        Err(ImageError::NeverPull(n)) if n == name
    ));
    let img = s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap();
    let (_, config) = busybox_platform(host_arch());
    assert_eq!(img.id, config);
    assert_eq!(img.name, name);
    assert_eq!(
        img.repo_digest.as_deref(),
        Some(format!("{}/kelp-test/busybox@{}", reg.addr(), busybox_index_digest()).as_str())
    );
    check_busybox_tree(&img);
    // by id, by short id, by digest reference
    assert_eq!(s.store.get(&img.id).unwrap().unwrap().id, img.id);
    assert_eq!(s.store.get(&img.id[7..19]).unwrap().unwrap().id, img.id);
    let by_digest = format!("{}/kelp-test/busybox@{}", reg.addr(), busybox_index_digest());
    assert_eq!(s.store.get(&by_digest).unwrap().unwrap().id, img.id);
    // pulled by digest: same image, no new name
    let img2 = s.store.ensure(&by_digest, PullPolicy::Always, &[]).await.unwrap();
    assert_eq!(img2.id, img.id);
    assert_eq!(s.store.list().unwrap().len(), 1);
    assert_eq!(s.store.list().unwrap()[0].names, std::slice::from_ref(&name));
    // invalid names
    for bad in ["Busybox", "busybox:", "a b"] {
        assert!(matches!(
            s.store.ensure(bad, PullPolicy::IfNotPresent, &[]).await,
            Err(ImageError::InvalidName { .. })
        ));
    }
    // a missing image is a pull error naming the image
    let missing = format!("{}/kelp-test/nothing:latest", reg.addr());
    let msg = pull_err(s.store.ensure(&missing, PullPolicy::IfNotPresent, &[]).await);
    assert!(msg.contains("manifest") || msg.contains("not found") || msg.contains("unknown"), "{msg}");
    // with the registry gone: IfNotPresent and Never use the store, Always fails
    drop(reg);
    assert_eq!(s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap().id, img.id);
    assert_eq!(s.store.ensure(&name, PullPolicy::Never, &[]).await.unwrap().id, img.id);
    pull_err(s.store.ensure(&name, PullPolicy::Always, &[]).await);
}

#[tokio::test]
async fn tls_registry_with_the_ca_from_registries_yaml_and_zstd_layers() {
    let reg = Registry::start(RegistryKind::Tls);
    let name = format!("{}/kelp-test/busybox:zstd", reg.addr());
    // unknown CA: refused
    let s = store();
    let msg = pull_err(s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await);
    assert!(msg.contains("https://"), "{msg}");
    let yaml = format!("configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n", reg.addr(), reg.ca().display());
    let s = store_with(Some(&yaml));
    let img = s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap();
    check_busybox_tree(&img);
    // insecure_skip_verify
    let s = store_with(Some("configs:\n  \"*\":\n    tls: {insecure_skip_verify: true}\n"));
    check_busybox_tree(&s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap());
}

#[tokio::test]
async fn basic_auth_from_pull_secrets_and_registries_yaml() {
    let reg = Registry::start(RegistryKind::Basic);
    let name = format!("{}/kelp-test/busybox:latest", reg.addr());
    let s = store();
    let msg = pull_err(s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await);
    assert!(msg.to_lowercase().contains("auth"), "{msg}");
    let wrong = [Credential { registry: reg.addr(), username: USER.into(), password: "wrong".into() }];
    let msg = pull_err(s.store.ensure(&name, PullPolicy::IfNotPresent, &wrong).await);
    assert!(msg.to_lowercase().contains("auth"), "{msg}");
    // a secret for another registry is not used
    let other = [Credential { registry: "other.example.com".into(), username: USER.into(), password: PASSWORD.into() }];
    pull_err(s.store.ensure(&name, PullPolicy::IfNotPresent, &other).await);
    let good = [Credential {
        registry: format!("http://{}/v2/", reg.addr()),
        username: USER.into(),
        password: PASSWORD.into(),
    }];
    check_busybox_tree(&s.store.ensure(&name, PullPolicy::IfNotPresent, &good).await.unwrap());

    let yaml = format!("configs:\n  \"{}\":\n    auth: {{username: {USER}, password: {PASSWORD}}}\n", reg.addr());
    let s = store_with(Some(&yaml));
    check_busybox_tree(&s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap());
}

#[tokio::test]
async fn bearer_token_auth() {
    let reg = Registry::start(RegistryKind::Token);
    let s = store();
    // anonymous tokens for public/*
    let public = format!("{}/public/busybox:latest", reg.addr());
    check_busybox_tree(&s.store.ensure(&public, PullPolicy::IfNotPresent, &[]).await.unwrap());
    // private repository: anonymous token has no access
    let name = format!("{}/kelp-test/busybox:amd64", reg.addr());
    pull_err(s.store.ensure(&name, PullPolicy::IfNotPresent, &[]).await);
    // a wrong password is reported by the token server's answer
    let wrong = [Credential { registry: reg.addr(), username: USER.into(), password: "nope".into() }];
    let msg = pull_err(s.store.ensure(&name, PullPolicy::IfNotPresent, &wrong).await);
    assert!(msg.contains("authenticating"), "{msg}");
    let good = [Credential { registry: reg.addr(), username: USER.into(), password: PASSWORD.into() }];
    let img = s.store.ensure(&name, PullPolicy::IfNotPresent, &good).await.unwrap();
    check_busybox_tree(&img);
    assert_eq!(img.id, busybox_platform("amd64").1);
}

#[tokio::test]
async fn mirrors_with_rewrites_keep_the_original_name() {
    let reg = Registry::start(RegistryKind::Plain);
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{0}\"]\n    rewrite:\n      \"^library/(.*)$\": \"kelp-test/$1\"\n  \"*\":\n    endpoint: [\"http://127.0.0.1:1\", \"http://{0}\"]\n",
        reg.addr()
    );
    let s = store_with(Some(&yaml));
    let img = s.store.ensure("busybox", PullPolicy::IfNotPresent, &[]).await.unwrap();
    assert_eq!(img.name, "docker.io/library/busybox:latest");
    assert_eq!(
        img.repo_digest.as_deref(),
        Some(format!("docker.io/library/busybox@{}", busybox_index_digest()).as_str())
    );
    check_busybox_tree(&img);
    // "*" for a registry without its own entry; the first endpoint is down, the second serves
    let img =
        s.store.ensure("registry.kelp.invalid/kelp-test/busybox:docker", PullPolicy::IfNotPresent, &[]).await.unwrap();
    assert_eq!(img.name, "registry.kelp.invalid/kelp-test/busybox:docker");
    check_busybox_tree(&img);
    let names: HashSet<String> = s.store.list().unwrap().into_iter().flat_map(|i| i.names).collect();
    assert!(
        names.contains("docker.io/library/busybox:latest")
            && names.contains("registry.kelp.invalid/kelp-test/busybox:docker")
    );
    // the mirror's requests carry ?ns=<registry>
    let log = reg.log();
    assert!(log.is_empty() || !log.contains("panic"), "{log}");
}

#[tokio::test]
async fn platform_selection_from_the_index() {
    let reg = Registry::start(RegistryKind::Plain);
    for tag in ["latest", "docker"] {
        let name = format!("{}/kelp-test/busybox:{tag}", reg.addr());
        let s = store();
        let arm = s.store.clone().with_platform(Platform::parse("linux/arm64/v8").unwrap());
        let img = arm.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap();
        let elf = fs::read(img.layers[0].join("bin/busybox")).unwrap();
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 0xb7, "{tag}: not an aarch64 binary");
        let s2 = store();
        let amd = s2.store.clone().with_platform(Platform::parse("linux/amd64").unwrap());
        let img2 = amd.ensure(&name, PullPolicy::IfNotPresent, &[]).await.unwrap();
        let elf = fs::read(img2.layers[0].join("bin/busybox")).unwrap();
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 0x3e, "{tag}: not an x86-64 binary");
        assert_ne!(img.id, img2.id);
        let s3 = store();
        let riscv = s3.store.clone().with_platform(Platform::parse("linux/riscv64").unwrap());
        let msg = pull_err(riscv.ensure(&name, PullPolicy::IfNotPresent, &[]).await);
        assert!(msg.contains("no match for platform linux/riscv64"), "{msg}");
    }
}

fn registry_blob(storage: &Path, digest: &str) -> PathBuf {
    let hex = &digest[7..];
    storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
}

fn store_is_empty(s: &TestStore) {
    assert!(s.store.list().unwrap().is_empty());
    let root = s.dir.path().join("store");
    for d in ["layers", "tmp"] {
        let left: Vec<_> = fs::read_dir(root.join(d)).unwrap().collect();
        assert!(left.is_empty(), "{d} not empty: {left:?}");
    }
}

#[tokio::test]
async fn tampered_blobs_are_rejected_and_nothing_is_committed() {
    let reg = Registry::start_copy(RegistryKind::Plain);
    let (manifest, _) = busybox_platform("amd64");
    let layer = blob(&manifest)["layers"][2]["digest"].as_str().unwrap().to_string();
    let path = registry_blob(reg.storage(), &layer);
    let mut data = fs::read(&path).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let s = store();
    let amd = s.store.clone().with_platform(Platform::parse("linux/amd64").unwrap());
    let msg =
        pull_err(amd.ensure(&format!("{}/kelp-test/busybox:amd64", reg.addr()), PullPolicy::IfNotPresent, &[]).await);
    assert!(msg.to_lowercase().contains("digest"), "{msg}");
    store_is_empty(&s);

    // a blob longer than its descriptor: refused while streaming (a fresh registry process: the
    // first one cached the blob's size)
    data[n / 2] ^= 0xff;
    data.extend_from_slice(&[0; 64 << 10]);
    fs::write(&path, &data).unwrap();
    let reg2 = Registry::start_on(RegistryKind::Plain, reg.storage(), true);
    let msg =
        pull_err(amd.ensure(&format!("{}/kelp-test/busybox:amd64", reg2.addr()), PullPolicy::IfNotPresent, &[]).await);
    assert!(msg.contains("larger than its descriptor"), "{msg}");
    store_is_empty(&s);
}

#[tokio::test]
async fn hostile_layers_are_refused() {
    let s = store();
    let err = s.store.import(&fixtures().join("hostile.oci.tar")).await.unwrap_err().to_string();
    for tag in ["dotdot", "symlink", "hardlink", "absolute"] {
        assert!(err.contains(&format!("docker.io/kelp-test/hostile:{tag}")), "{tag} missing in {err}");
    }
    assert!(err.contains("\"..\"") && err.contains("symlink escape") && err.contains("absolute path"), "{err}");
    assert!(!Path::new("/tmp/kelp-escape-dotdot").exists());
    assert!(!Path::new("/etc/kelp-escape-symlink").exists());
    assert!(!Path::new("/etc/kelp-escape-absolute").exists());
    store_is_empty(&s);
    // and from a registry
    let reg = Registry::start(RegistryKind::Plain);
    let msg = pull_err(
        s.store.ensure(&format!("{}/kelp-test/hostile:dotdot", reg.addr()), PullPolicy::IfNotPresent, &[]).await,
    );
    assert!(msg.contains("refusing layer entry"), "{msg}");
    store_is_empty(&s);
}

#[tokio::test]
async fn import_every_tarball_format() {
    let (_, amd_config) = busybox_platform("amd64");
    for file in [
        "busybox.oci.tar",
        "busybox.oci.tar.gz",
        "busybox.oci.tar.zst",
        "busybox.docker.tar",
        "busybox.docker.tar.gz",
        "busybox.docker.tar.zst",
        "busybox.docker25.tar",
    ] {
        let s = store();
        let amd = s.store.clone().with_platform(Platform::parse("linux/amd64").unwrap());
        let names = amd.import(&fixtures().join(file)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(names, [BUSYBOX], "{file}");
        let img = amd.get(BUSYBOX).unwrap().unwrap();
        check_busybox_tree(&img);
        assert_eq!(img.name, BUSYBOX);
        if file.contains("oci") {
            assert_eq!(img.id, amd_config, "{file}");
            assert_eq!(
                img.repo_digest.as_deref(),
                Some(format!("docker.io/kelp-test/busybox@{}", busybox_index_digest()).as_str())
            );
        }
        // `busybox` short names resolve to docker.io/…
        assert!(amd.get("kelp-test/busybox").unwrap().is_some());
        // importing again is harmless
        assert_eq!(amd.import(&fixtures().join(file)).await.unwrap(), [BUSYBOX]);
        assert_eq!(amd.list().unwrap().len(), 1);
    }
    // an OCI tar whose index has only a tag: imported without a name, by id
    let s = store();
    let amd = s.store.clone().with_platform(Platform::parse("linux/amd64").unwrap());
    let out = amd.import(&fixtures().join("busybox-bare.oci.tar")).await.unwrap();
    assert_eq!(out, std::slice::from_ref(&amd_config));
    assert!(amd.list().unwrap()[0].names.is_empty());
    // not an image archive
    let junk = s.dir.path().join("junk.tar");
    fs::write(&junk, b"this is not a tarball at all").unwrap();
    assert!(amd.import(&junk).await.is_err());
}

#[tokio::test]
async fn gc_keeps_images_in_use() {
    let reg = Registry::start(RegistryKind::Plain);
    let s = store();
    let amd = s.store.clone().with_platform(Platform::parse("linux/amd64").unwrap());
    amd.import(&fixtures().join("busybox.oci.tar")).await.unwrap();
    let arm = s.store.clone().with_platform(Platform::parse("linux/arm64").unwrap());
    let arm_img =
        arm.ensure(&format!("{}/kelp-test/busybox:latest", reg.addr()), PullPolicy::IfNotPresent, &[]).await.unwrap();
    let amd_img = amd.get(BUSYBOX).unwrap().unwrap();
    assert_eq!(s.store.list().unwrap().len(), 2);
    // the amd64 image is in use (by name): only the arm64 one goes
    let in_use: HashSet<String> = [BUSYBOX.to_string()].into();
    let freed = s.store.gc(&in_use, u64::MAX).unwrap();
    assert!(freed >= arm_img.size - 1000, "freed {freed} of {}", arm_img.size);
    assert!(s.store.get(&arm_img.id).unwrap().is_none());
    assert!(!arm_img.layers[0].exists());
    check_busybox_tree(&s.store.get(BUSYBOX).unwrap().unwrap());
    // in use by id
    let in_use: HashSet<String> = [amd_img.id.clone()].into();
    assert_eq!(s.store.gc(&in_use, u64::MAX).unwrap(), 0);
    assert!(s.store.get(&amd_img.id).unwrap().is_some());
    // nothing in use, but nothing needed: nothing goes
    assert_eq!(s.store.gc(&HashSet::new(), 0).unwrap(), 0);
    assert_eq!(s.store.list().unwrap().len(), 1);
    // nothing in use: everything goes, layers too
    assert!(s.store.gc(&HashSet::new(), 1).unwrap() > 0);
    store_is_empty(&s);
}

fn kelp(args: &[&str]) -> std::process::Output {
    Command::new(crate::support::kelp_bin()).args(args).output().unwrap()
}

#[tokio::test]
async fn kelp_images_import_ls_rm() {
    let dir = tempfile::Builder::new().prefix("kelp-images-cli-").tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // two imports at once into one store (a node and an operator)
    let a = fixtures().join("busybox.oci.tar.zst");
    let b = fixtures().join("busybox.docker25.tar");
    let mut c1 = Command::new(crate::support::kelp_bin())
        .args(["images", "--data-dir", data, "import"])
        .arg(&a)
        .spawn()
        .unwrap();
    let mut c2 = Command::new(crate::support::kelp_bin())
        .args(["images", "--data-dir", data, "import"])
        .arg(&b)
        .spawn()
        .unwrap();
    assert!(c1.wait().unwrap().success() && c2.wait().unwrap().success());
    let out = kelp(&["images", "--data-dir", data, "ls"]);
    assert!(out.status.success(), "{out:?}");
    let ls = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(ls.starts_with("IMAGE"), "{ls}");
    assert_eq!(ls.lines().filter(|l| l.starts_with(BUSYBOX)).count(), 1, "{ls}");
    let out = kelp(&["images", "--data-dir", data, "rm", "docker.io/kelp-test/nothing:latest"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = kelp(&["images", "--data-dir", data, "rm", "kelp-test/busybox"]);
    assert!(out.status.success(), "{out:?}");
    let ls = String::from_utf8_lossy(&kelp(&["images", "--data-dir", data, "ls"]).stdout).into_owned();
    assert_eq!(ls.lines().count(), 1, "{ls}");
    let layers: Vec<_> = fs::read_dir(dir.path().join("agent/image-store/layers")).unwrap().collect();
    assert!(layers.is_empty(), "layers left: {layers:?}");
}
