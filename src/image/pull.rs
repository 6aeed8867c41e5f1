//! Pulling with oci-client: endpoints from registries.yaml in order, credentials from
//! imagePullSecrets and registries.yaml, `auth` first (so a wrong password is reported as such),
//! the raw manifest resolved to the platform here, blobs streamed to files with their size capped
//! at the descriptor's and their digest checked, layers unpacked in parallel.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tokio::io::AsyncWrite;

use super::manifest::{self, Descriptor, Parsed, Platform, ACCEPT, MAX_JSON};
use super::reference::{credential_host, repository};
use super::registries::{Endpoint, EndpointAuth, Registries, Scheme, TlsConfig};
use super::store::{self, NewImage, Store};
use super::{Credential, ImageError};

/// Layers downloaded and unpacked at the same time.
const PARALLEL_LAYERS: usize = 3;

/// oci-client clients, one per (scheme, host, TLS settings): token caches survive between pulls.
#[derive(Default)]
pub struct Clients {
    map: std::sync::Mutex<HashMap<ClientKey, Arc<Client>>>,
}

type ClientKey = (Scheme, String, Option<TlsConfig>);
/// A layer pulled: diff_id, unpacked size, the staged directory when it was not present.
type LayerDone = (String, u64, Option<store::TmpPath>);

impl Clients {
    fn get(&self, ep: &Endpoint) -> Result<Arc<Client>, String> {
        let key = (ep.scheme, ep.host.clone(), ep.config.tls.clone());
        if let Some(c) = self.map.lock().expect("clients").get(&key) {
            return Ok(c.clone());
        }
        let mut cfg = ClientConfig {
            protocol: if ep.scheme == Scheme::Http { ClientProtocol::Http } else { ClientProtocol::Https },
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            user_agent: concat!("kelp/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        if let Some(tls) = &ep.config.tls {
            if tls.cert_file.is_some() || tls.key_file.is_some() {
                return Err(format!(
                    "configs.{:?}.tls: client certificates (cert_file/key_file) are not supported",
                    ep.host
                ));
            }
            if let Some(ca) = &tls.ca_file {
                let data = std::fs::read(ca).map_err(|e| format!("reading ca_file {}: {e}", ca.display()))?;
                cfg.extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data });
            }
            cfg.accept_invalid_certificates = tls.insecure_skip_verify;
        }
        let client =
            Arc::new(Client::try_from(cfg).map_err(|e| format!("HTTP client for {}: {}", ep.url(), chain(&e)))?);
        self.map.lock().expect("clients").insert(key, client.clone());
        Ok(client)
    }
}

/// An error with its sources, one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// What a pull needs from the store.
pub struct Puller<'a> {
    pub store: &'a Store,
    pub registries: &'a Registries,
    pub clients: &'a Clients,
    pub platform: &'a Platform,
}

/// Which credentials to try on an endpoint: matching imagePullSecrets, then registries.yaml's; none
/// means anonymous.
fn auths_for(ep: &Endpoint, registry: &str, creds: &[Credential]) -> Result<Vec<RegistryAuth>, String> {
    let mut out = Vec::new();
    let want = if ep.is_default { registry.to_string() } else { ep.host.clone() };
    for c in creds {
        if credential_host(&c.registry) == want {
            out.push(RegistryAuth::Basic(c.username.clone(), c.password.clone()));
        }
    }
    if let Some(a) = &ep.config.auth {
        match a.resolve(&ep.host).map_err(|e| e.to_string())? {
            Some(EndpointAuth::Basic(u, p)) => out.push(RegistryAuth::Basic(u, p)),
            Some(EndpointAuth::Bearer(t)) => out.push(RegistryAuth::Bearer(t)),
            None => {}
        }
    }
    if out.is_empty() {
        out.push(RegistryAuth::Anonymous);
    }
    Ok(out)
}

impl Puller<'_> {
    /// Pulls `r` (normalised; the name it is stored under is `name`) and commits it; returns the id.
    pub async fn pull(&self, r: &Reference, name: &str, creds: &[Credential]) -> Result<String, ImageError> {
        let fail = |message: String| ImageError::Pull { name: name.to_string(), message };
        let endpoints = self.registries.endpoints(r.registry(), r.repository())?;
        let mut errors = Vec::new();
        for ep in &endpoints {
            let auths = match auths_for(ep, r.registry(), creds) {
                Ok(a) => a,
                Err(e) => {
                    errors.push(format!("{}: {e}", ep.url()));
                    continue;
                }
            };
            for auth in auths {
                match self.pull_from(ep, r, name, &auth).await {
                    Ok(id) => return Ok(id),
                    Err(EndpointError::Fatal(e)) => return Err(e),
                    Err(EndpointError::Retry(e)) => {
                        tracing::debug!(image = name, endpoint = %ep.url(), error = %e, "pull attempt failed");
                        errors.push(format!("{}: {e}", ep.url()));
                    }
                }
            }
        }
        Err(fail(errors.join("; ")))
    }

    async fn pull_from(
        &self,
        ep: &Endpoint,
        r: &Reference,
        name: &str,
        auth: &RegistryAuth,
    ) -> Result<String, EndpointError> {
        let client = self.clients.get(ep).map_err(EndpointError::Retry)?;
        let mut er = match (r.tag(), r.digest()) {
            (_, Some(d)) => Reference::with_digest(r.registry().to_string(), ep.repository.clone(), d.to_string()),
            (Some(t), None) => Reference::with_tag(r.registry().to_string(), ep.repository.clone(), t.to_string()),
            (None, None) => Reference::with_tag(r.registry().to_string(), ep.repository.clone(), "latest".into()),
        };
        if !ep.is_default {
            er.set_mirror_registry(ep.host.clone());
        }
        let retry = |what: &str, e: &oci_client::errors::OciDistributionError| {
            EndpointError::Retry(format!("{what}: {}", chain(e)))
        };
        client.auth(&er, auth, RegistryOperation::Pull).await.map_err(|e| retry("authenticating", &e))?;
        let (top, top_digest) =
            client.pull_manifest_raw(&er, auth, ACCEPT).await.map_err(|e| retry("fetching the manifest", &e))?;
        if top.len() as u64 > MAX_JSON {
            return Err(EndpointError::Retry("manifest too large".into()));
        }
        let invalid = |e: ImageError| EndpointError::Retry(e.to_string());
        let (manifest_bytes, manifest_digest) = match manifest::parse(&top, "manifest").map_err(invalid)? {
            Parsed::Index(list) => {
                let d = manifest::select(&list, self.platform).map_err(invalid)?;
                let (b, dg) = client
                    .pull_manifest_raw(&er.clone_with_digest(d.digest.clone()), auth, ACCEPT)
                    .await
                    .map_err(|e| retry("fetching the platform manifest", &e))?;
                if b.len() as u64 != d.size || dg != d.digest {
                    return Err(EndpointError::Retry(format!(
                        "platform manifest {} has {} bytes and digest {dg}, the index says {} bytes",
                        d.digest,
                        b.len(),
                        d.size
                    )));
                }
                (b.to_vec(), dg)
            }
            Parsed::Image { .. } => (top.to_vec(), top_digest.clone()),
        };
        let Parsed::Image { config, layers } =
            manifest::parse(&manifest_bytes, "platform manifest").map_err(invalid)?
        else {
            return Err(EndpointError::Retry("an index nested in an index is not supported".into()));
        };
        if config.size > MAX_JSON {
            return Err(EndpointError::Retry(format!("image config of {} bytes is too large", config.size)));
        }
        let repo = repository(r);
        let names = if r.digest().is_some() { Vec::new() } else { vec![name.to_string()] };
        let repo_digest = format!("{repo}@{top_digest}");

        // Already here (same config and layers): only the names and repo digest are new.
        let id = config.digest.clone();
        let index = self.store.read_index().map_err(EndpointError::Fatal)?;
        let present = index.images.get(&id).is_some_and(|rec| {
            rec.manifest == manifest_digest
                && rec.layers.iter().all(|l| self.store.layer_dir(l).is_ok_and(|d| d.is_dir()))
        });

        let tmp_cfg = self.store.tmp("config");
        fetch_blob(&client, &er, &config, tmp_cfg.path()).await.map_err(EndpointError::Retry)?;
        let config_bytes = std::fs::read(tmp_cfg.path())
            .map_err(|source| EndpointError::Fatal(ImageError::Io { context: "reading the config".into(), source }))?;
        let cfg = manifest::parse_config(&config_bytes, layers.len()).map_err(invalid)?;

        let store = self.store.clone();
        let _content = tokio::task::spawn_blocking(move || store.content_shared())
            .await
            .map_err(|e| {
                EndpointError::Fatal(ImageError::Invalid { context: "locking".into(), message: e.to_string() })
            })?
            .map_err(EndpointError::Fatal)?;
        let mut staged = Vec::new();
        let sizes: Vec<(String, u64)> = if present {
            cfg.rootfs.diff_ids.iter().map(|d| (d.clone(), index.layers.get(d).map(|l| l.size).unwrap_or(0))).collect()
        } else {
            let jobs = layers.iter().cloned().zip(cfg.rootfs.diff_ids.iter().cloned()).map(|(desc, diff_id)| {
                let client = client.clone();
                let er = er.clone();
                let index = &index;
                async move {
                    if let Some(rec) = index.layers.get(&diff_id) {
                        if self.store.layer_dir(&diff_id).is_ok_and(|d| d.is_dir()) {
                            return Ok((diff_id, rec.size, None));
                        }
                    }
                    if desc.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                        tracing::debug!(layer = %desc.digest, "ignoring the layer's urls: pulled from the registry");
                    }
                    let tmp = self.store.tmp("blob");
                    fetch_blob(&client, &er, &desc, tmp.path()).await.map_err(EndpointError::Retry)?;
                    let store = self.store.clone();
                    let d = diff_id.clone();
                    let (dir, size) = tokio::task::spawn_blocking(move || {
                        let r = store.stage_layer(tmp.path(), &d);
                        drop(tmp);
                        r
                    })
                    .await
                    .map_err(|e| {
                        EndpointError::Fatal(ImageError::Invalid {
                            context: "unpacking".into(),
                            message: e.to_string(),
                        })
                    })?
                    .map_err(|e| match e {
                        ImageError::Invalid { context, message } => EndpointError::Fatal(ImageError::Pull {
                            name: name.to_string(),
                            message: format!("{context}: {message}"),
                        }),
                        other => EndpointError::Fatal(other),
                    })?;
                    Ok::<_, EndpointError>((diff_id, size, Some(dir)))
                }
            });
            let results: Vec<Result<LayerDone, EndpointError>> =
                futures::stream::iter(jobs).buffered(PARALLEL_LAYERS).collect().await;
            let mut out = Vec::new();
            let mut first_err = None;
            for r in results {
                match r {
                    Ok((diff_id, size, dir)) => {
                        if let Some(dir) = dir {
                            staged.push((diff_id.clone(), dir));
                        }
                        out.push((diff_id, size));
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            out
        };
        let store = self.store.clone();
        let new = NewImage {
            names,
            repo_digests: vec![repo_digest],
            manifest_digest,
            manifest: manifest_bytes,
            config_digest: config.digest.clone(),
            config: config_bytes,
            layers: sizes,
            staged,
        };
        tokio::task::spawn_blocking(move || store.commit(new))
            .await
            .map_err(|e| {
                EndpointError::Fatal(ImageError::Invalid { context: "committing".into(), message: e.to_string() })
            })?
            .map_err(EndpointError::Fatal)
    }
}

/// Why one endpoint attempt failed: `Retry` goes on with the next endpoint or credential, `Fatal`
/// (the content itself is bad, or the local store failed) stops the pull.
enum EndpointError {
    Retry(String),
    Fatal(ImageError),
}

/// Streams a blob into `path`, aborting past the descriptor's size; oci-client checks the digest.
async fn fetch_blob(client: &Client, r: &Reference, desc: &Descriptor, path: &Path) -> Result<(), String> {
    let file = tokio::fs::File::create(path).await.map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut w = Limited { file, written: 0, limit: desc.size };
    let od = OciDescriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: desc.size as i64,
        ..Default::default()
    };
    client.pull_blob(r, &od, &mut w).await.map_err(|e| format!("fetching blob {}: {}", desc.digest, chain(&e)))?;
    if w.written != desc.size {
        return Err(format!("blob {} has {} bytes, its descriptor says {}", desc.digest, w.written, desc.size));
    }
    Ok(())
}

/// A file writer refusing to grow past `limit` bytes.
struct Limited {
    file: tokio::fs::File,
    written: u64,
    limit: u64,
}

impl AsyncWrite for Limited {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.written + buf.len() as u64 > self.limit {
            return Poll::Ready(Err(io::Error::other(format!(
                "blob is larger than its descriptor's {} bytes",
                self.limit
            ))));
        }
        let this = &mut *self;
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.written += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}
