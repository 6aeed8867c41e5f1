//! Pod workers: one task per pod uid, so two syncs of one pod never overlap. A sync is
//! level-triggered: from the pod's spec and what the runtime and network have now it creates the
//! sandbox, sets up volumes, pulls images, runs init containers in order, then the containers,
//! restarts them per restartPolicy with back-off, kills on liveness failure, and posts the status.
//! A pod being deleted is stopped (preStop, SIGTERM, SIGKILL after the grace period), cleaned up,
//! and finally deleted from the API with grace period 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, PodStatus, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::Api;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::backoff::{self, Backoff};
use super::env::{self, ConfigError, Downward, Objects};
use super::events::{Kind as EventKind, Recorder, Subject};
use super::node::Capacity;
use super::probes::{self, Kind as ProbeKind};
use super::status::{self, Inputs, Waiting};
use super::volumes::{self, PodVolumes, SetupContext};
use super::AgentConfig;
use crate::image::{Credential, ImageError, ImageStore, PullPolicy};
use crate::network::{DnsConfig, PodNetwork, Sandbox, SandboxConfig};
use crate::runtime::{self, ContainerConfig, ContainerState, Runtime};

/// Labels the agent keeps on its containers.
pub const LABEL_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_TERMINATION_LOG: &str = "kelp.termination-log";

/// How often a pod is synced with nothing happening (config and secret volume updates).
const RESYNC: Duration = Duration::from_secs(30);

/// Shared by every worker.
pub struct Ctx {
    pub client: kube::Client,
    pub cfg: Arc<AgentConfig>,
    pub runtime: Arc<Runtime>,
    pub images: ImageStore,
    pub network: Arc<PodNetwork>,
    pub events: Recorder,
    pub allocatable: Capacity,
    pub host_ips: Vec<String>,
}

/// Where a pod comes from.
#[derive(Clone, Debug)]
pub enum Source {
    Api,
    /// A static pod: its status goes to the mirror pod of this name.
    File {
        mirror: String,
    },
}

struct Handle {
    tx: watch::Sender<Option<(Arc<Pod>, Source)>>,
    wake: Arc<Notify>,
    _task: JoinHandle<()>,
}

/// The pod workers of this node.
pub struct Manager {
    ctx: Arc<Ctx>,
    workers: Mutex<HashMap<String, Handle>>,
}

impl Manager {
    pub fn new(ctx: Arc<Ctx>) -> Arc<Manager> {
        Arc::new(Manager { ctx, workers: Mutex::default() })
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// A new or changed pod.
    pub fn update(self: &Arc<Self>, pod: Arc<Pod>, source: Source) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut w = self.workers.lock().expect("workers lock");
        if let Some(h) = w.get(&uid) {
            if h.tx.receiver_count() > 0 {
                // A change of the status alone (mostly our own posts) does not wake the worker.
                h.tx.send_if_modified(|cur| {
                    let wake = cur.as_ref().is_none_or(|(old, _)| !same_but_status(old, &pod));
                    *cur = Some((pod.clone(), source.clone()));
                    wake
                });
                return;
            }
        }
        let (tx, rx) = watch::channel(Some((pod, source)));
        let wake = Arc::new(Notify::new());
        let me = self.clone();
        let task = tokio::spawn(worker(me, uid.clone(), rx, wake.clone()));
        w.insert(uid, Handle { tx, wake, _task: task });
    }

    /// A pod that is gone (from the API or its manifest).
    pub fn remove(self: &Arc<Self>, uid: &str) {
        let w = self.workers.lock().expect("workers lock");
        if let Some(h) = w.get(uid) {
            let _ = h.tx.send(None);
        }
    }

    /// Wakes a pod's worker (a container exited, a probe flipped).
    pub fn wake(&self, uid: &str) {
        if let Some(h) = self.workers.lock().expect("workers lock").get(uid) {
            h.wake.notify_one();
        }
    }

    /// The pod `namespace/name` as this node runs it (from the API or a manifest).
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let w = self.workers.lock().expect("workers lock");
        w.values().find_map(|h| {
            let cur = h.tx.borrow();
            let (pod, _) = cur.as_ref()?;
            (pod.metadata.namespace.as_deref() == Some(namespace) && pod.metadata.name.as_deref() == Some(name))
                .then(|| pod.clone())
        })
    }

    /// Every pod this node runs.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        let w = self.workers.lock().expect("workers lock");
        w.values().filter_map(|h| h.tx.borrow().as_ref().map(|(p, _)| p.clone())).collect()
    }

    /// Pods with a worker.
    pub fn known(&self) -> HashSet<String> {
        self.workers.lock().expect("workers lock").keys().cloned().collect()
    }

    fn done(&self, uid: &str) {
        self.workers.lock().expect("workers lock").remove(uid);
    }
}

/// Whether two versions of a pod differ only in status and bookkeeping metadata.
fn same_but_status(a: &Pod, b: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.managed_fields = None;
        p
    };
    strip(a) == strip(b)
}

/// A worker's memory between syncs.
#[derive(Default)]
struct State {
    restarts: Backoff,
    pulls: Backoff,
    pull_errors: HashMap<String, String>,
    waiting: HashMap<String, Waiting>,
    volumes: PodVolumes,
    probes: HashMap<String, Vec<JoinHandle<()>>>,
    probe_results: probes::Shared,
    /// Containers being killed on purpose (liveness) by id.
    killed: HashSet<String>,
    last_status: Option<serde_json::Value>,
    api_status: Option<PodStatus>,
    terminal: Option<(String, String, String)>,
    image_refs: HashMap<String, String>,
    sandbox: Option<Sandbox>,
    finished: bool,
}

async fn worker(m: Arc<Manager>, uid: String, mut rx: watch::Receiver<Option<(Arc<Pod>, Source)>>, wake: Arc<Notify>) {
    let mut st = State::default();
    let mut last: Option<(Arc<Pod>, Source)> = None;
    loop {
        let cur = rx.borrow_and_update().clone();
        let next = match &cur {
            Some((pod, source)) => {
                last = Some((pod.clone(), source.clone()));
                if pod.metadata.deletion_timestamp.is_some() {
                    terminate(&m.ctx, pod, source, &mut st, true).await;
                    if st.finished {
                        break;
                    }
                    Some(Duration::from_secs(2))
                } else {
                    sync(&m, pod, source, &mut st, &wake).await
                }
            }
            None => {
                // Gone from the API (or its manifest): stop everything; nothing to post.
                if let Some((pod, source)) = &last {
                    terminate(&m.ctx, pod, source, &mut st, false).await;
                } else {
                    st.finished = true;
                }
                if st.finished {
                    break;
                }
                Some(Duration::from_secs(2))
            }
        };
        let sleep = next.unwrap_or(RESYNC).min(RESYNC);
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = wake.notified() => {},
            _ = tokio::time::sleep(sleep) => {},
        }
    }
    for (_, hs) in st.probes.drain() {
        hs.into_iter().for_each(|h| h.abort());
    }
    m.done(&uid);
}

fn subject(pod: &Pod, container: Option<&str>, init: bool) -> Subject {
    Subject {
        kind: "Pod",
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        field_path: container.map(|c| format!("spec.{}{{{c}}}", if init { "initContainers" } else { "containers" })),
    }
}

fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default()
    )
}

/// The pod's containers in the runtime.
async fn pod_containers(ctx: &Ctx, uid: &str) -> Vec<runtime::ContainerStatus> {
    match ctx.runtime.list_pod(uid).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(message = "could not list containers", error = %e);
            Vec::new()
        }
    }
}

fn newest<'a>(cs: &'a [runtime::ContainerStatus], name: &str) -> Option<&'a runtime::ContainerStatus> {
    cs.iter().filter(|c| c.name == name).max_by_key(|c| c.attempt)
}

fn finished_at(c: &runtime::ContainerStatus) -> Option<SystemTime> {
    match c.state {
        ContainerState::Exited { finished_at, .. } => Some(finished_at),
        _ => None,
    }
}

fn exit_code(c: &runtime::ContainerStatus) -> Option<i32> {
    match c.state {
        ContainerState::Exited { exit_code, .. } => Some(exit_code),
        _ => None,
    }
}

/// Converts a wall-clock time to the monotonic clock (for back-off arithmetic).
fn instant_of(t: SystemTime) -> Instant {
    let ago = SystemTime::now().duration_since(t).unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// One sync; returns when to sync again at the latest.
async fn sync(
    m: &Arc<Manager>,
    pod: &Arc<Pod>,
    source: &Source,
    st: &mut State,
    wake: &Arc<Notify>,
) -> Option<Duration> {
    let ctx = &m.ctx;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    if st.api_status.is_none() {
        st.api_status = pod.status.clone();
    }
    let api_phase = st.api_status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    if api_phase == "Succeeded" || api_phase == "Failed" {
        // Terminal: nothing runs again; make sure nothing does and release the sandbox.
        stop_all(ctx, pod, st, Duration::from_secs(0)).await;
        release(ctx, &uid, st).await;
        return None;
    }
    let mut requeue: Option<Duration> = None;
    let want = |d: Duration, r: &mut Option<Duration>| *r = Some(r.map_or(d, |x| x.min(d)));

    // activeDeadlineSeconds.
    if let (Some(ads), Some(start)) =
        (spec.active_deadline_seconds, st.api_status.as_ref().and_then(|s| s.start_time.as_ref()))
    {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(start.0.as_second().max(0) as u64);
        let deadline = started + Duration::from_secs(ads.max(0) as u64);
        match deadline.duration_since(SystemTime::now()) {
            Ok(left) => want(left + Duration::from_millis(50), &mut requeue),
            Err(_) => {
                let msg = "Pod was active on the node longer than the specified deadline";
                ctx.events.record(&subject(pod, None, false), EventKind::Normal, "DeadlineExceeded", msg);
                st.terminal = Some(("Failed".into(), "DeadlineExceeded".into(), msg.into()));
                stop_all(ctx, pod, st, grace_of(pod)).await;
                post_status(ctx, pod, source, st, false).await;
                release(ctx, &uid, st).await;
                return None;
            }
        }
    }

    // Sandbox.
    let existing = match &st.sandbox {
        Some(_) => ctx.network.sandbox(&uid).await,
        None => None,
    };
    let made = match existing {
        Some(s) => Ok(s),
        None => ctx.network.create_sandbox(&sandbox_config(&ctx.cfg, pod)).await,
    };
    let sandbox = match made {
        Ok(s) => s,
        Err(e) => {
            ctx.events.record(
                &subject(pod, None, false),
                EventKind::Warning,
                "FailedCreatePodSandBox",
                &format!("Failed to create pod sandbox: {e}"),
            );
            post_status(ctx, pod, source, st, false).await;
            return Some(Duration::from_secs(5));
        }
    };
    st.sandbox = Some(sandbox.clone());
    let downward = downward(ctx, pod, &sandbox);

    // Volumes.
    let mut objects = Objects::new(ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group).map(|g| g as u32);
    let cx = SetupContext { client: Some(&ctx.client), data_dir: &ctx.cfg.data_dir, downward: &downward, fs_group };
    if let Err(e) = volumes::setup(&cx, pod, &mut objects, &mut st.volumes).await {
        ctx.events.record(&subject(pod, None, false), EventKind::Warning, "FailedMount", &e.to_string());
        post_status(ctx, pod, source, st, false).await;
        return Some(Duration::from_secs(5));
    }
    if let Some(t) = st.volumes.next_refresh() {
        want(t.duration_since(SystemTime::now()).unwrap_or_default(), &mut requeue);
    }

    let containers = pod_containers(ctx, &uid).await;
    manage_probes(m, pod, &containers, st, wake, &sandbox);

    // Liveness / startup failures: kill, then restart below.
    for c in &containers {
        let failed = st.probe_results.lock().ok().and_then(|r| r.get(&c.id).and_then(|x| x.failed.clone()));
        if let (Some(msg), ContainerState::Running { .. }) = (failed, &c.state) {
            if st.killed.insert(c.id.clone()) {
                let spec_c = spec.containers.iter().find(|x| x.name == c.name);
                ctx.events.record(&subject(pod, Some(&c.name), false), EventKind::Normal, "Killing", &msg);
                let grace = Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64);
                kill_container(ctx, pod, spec_c, c, grace, st, false).await;
            }
        }
    }
    let containers = pod_containers(ctx, &uid).await;
    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());

    // Init containers, in order (once the app containers ran, only sidecars are looked after).
    let apps_started = spec.containers.iter().any(|c| newest(&containers, &c.name).is_some());
    let mut initialized = true;
    for ic in spec.init_containers.iter().flatten() {
        let sidecar = is_sidecar(ic);
        if apps_started {
            break;
        }
        match newest(&containers, &ic.name) {
            // A sidecar lets the next init container start once it has started (startup probe).
            Some(c) if sidecar && matches!(c.state, ContainerState::Running { .. }) => {
                let started = ic.startup_probe.is_none()
                    || st.probe_results.lock().ok().and_then(|r| r.get(&c.id).map(|x| x.started)).unwrap_or(false);
                if started {
                    continue;
                }
                initialized = false;
                break;
            }
            Some(c) if !sidecar && exit_code(c) == Some(0) => continue,
            Some(c) if matches!(c.state, ContainerState::Running { .. } | ContainerState::Created) => {
                initialized = false;
                break;
            }
            Some(c) => {
                initialized = false;
                // Sidecars restart whatever the pod's restartPolicy.
                if sidecar || policy != "Never" {
                    match restart(ctx, pod, ic, true, &sandbox, &mut objects, &downward, st, Some(c)).await {
                        Some(d) => want(d, &mut requeue),
                        // A started sidecar does not end by itself: go on with the next soon.
                        None if sidecar => want(Duration::from_millis(100), &mut requeue),
                        None => {}
                    }
                }
                break;
            }
            None => {
                initialized = false;
                match restart(ctx, pod, ic, true, &sandbox, &mut objects, &downward, st, None).await {
                    Some(d) => want(d, &mut requeue),
                    None if sidecar => want(Duration::from_millis(100), &mut requeue),
                    None => {}
                }
                break;
            }
        }
    }
    if initialized {
        // Sidecars that stopped after initialization come back (always).
        for ic in spec.init_containers.iter().flatten().filter(|c| is_sidecar(c)) {
            if let Some(rc) = newest(&containers, &ic.name).filter(|rc| exit_code(rc).is_some()) {
                if let Some(d) = restart(ctx, pod, ic, true, &sandbox, &mut objects, &downward, st, Some(rc)).await {
                    want(d, &mut requeue);
                }
            }
        }
        for c in &spec.containers {
            match newest(&containers, &c.name) {
                None => {
                    if let Some(d) = restart(ctx, pod, c, false, &sandbox, &mut objects, &downward, st, None).await {
                        want(d, &mut requeue);
                    }
                }
                Some(rc) => match exit_code(rc) {
                    None => {}
                    Some(code) => {
                        let again = policy == "Always" || (policy == "OnFailure" && code != 0);
                        if again {
                            if let Some(d) =
                                restart(ctx, pod, c, false, &sandbox, &mut objects, &downward, st, Some(rc)).await
                            {
                                want(d, &mut requeue);
                            }
                        } else {
                            st.waiting.remove(&c.name);
                        }
                    }
                },
            }
        }
    }
    // Probes for what started in this pass.
    let now_running = pod_containers(ctx, &uid).await;
    manage_probes(m, pod, &now_running, st, wake, &sandbox);
    if now_running.iter().any(|c| matches!(c.state, ContainerState::Created)) {
        // Not running yet: look again soon (probes, status).
        want(Duration::from_millis(200), &mut requeue);
    }
    let terminal = post_status(ctx, pod, source, st, false).await;
    if terminal {
        // Sidecars outlive the app containers: stop them now, and report them stopped.
        let sidecar_running = pod_containers(ctx, &uid).await.iter().any(|rc| {
            matches!(rc.state, ContainerState::Running { .. })
                && spec.init_containers.iter().flatten().any(|c| c.name == rc.name && is_sidecar(c))
        });
        if sidecar_running {
            stop_all(ctx, pod, st, grace_of(pod)).await;
            post_status(ctx, pod, source, st, false).await;
        }
        release(ctx, &uid, st).await;
    }
    requeue
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// Starts or restarts a container, honouring the back-off. Returns when to look again.
#[allow(clippy::too_many_arguments)]
async fn restart(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    init: bool,
    sandbox: &Sandbox,
    objects: &mut Objects,
    d: &Downward,
    st: &mut State,
    previous: Option<&runtime::ContainerStatus>,
) -> Option<Duration> {
    if let Some(prev) = previous {
        let since = finished_at(prev).map(instant_of).unwrap_or_else(Instant::now);
        if let Some((left, full)) = st.restarts.check(&c.name, since, Instant::now()) {
            let msg = format!(
                "back-off {} restarting failed container={} pod={}",
                backoff::go_duration(full),
                c.name,
                pod_desc(pod)
            );
            if st.waiting.get(&c.name).map(|w| w.reason.as_str()) != Some("CrashLoopBackOff") {
                ctx.events.record(
                    &subject(pod, Some(&c.name), init),
                    EventKind::Warning,
                    "BackOff",
                    &format!("Back-off restarting failed container {} in pod {}", c.name, pod_desc(pod)),
                );
            }
            st.waiting.insert(c.name.clone(), Waiting { reason: "CrashLoopBackOff".into(), message: msg });
            return Some(left);
        }
        // The old instance's successor: forget probe results of the old id.
        st.killed.remove(&prev.id);
    }
    let attempt = previous.map(|p| p.attempt + 1).unwrap_or(0);
    match start_container(ctx, pod, c, init, sandbox, objects, d, st, attempt).await {
        Ok(()) => {
            st.waiting.remove(&c.name);
            None
        }
        Err((reason, message, retry)) => {
            st.waiting.insert(c.name.clone(), Waiting { reason, message });
            Some(retry)
        }
    }
}

fn pull_policy(c: &Container) -> PullPolicy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        _ => {
            let img = c.image.clone().unwrap_or_default();
            let tag_latest = !img.contains('@')
                && (img.rsplit('/').next().is_some_and(|l| !l.contains(':')) || img.ends_with(":latest"));
            if tag_latest {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            }
        }
    }
}

/// Registry credentials from the pod's imagePullSecrets.
async fn credentials(pod: &Pod, objects: &mut Objects) -> Vec<Credential> {
    let mut out = Vec::new();
    for r in pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()) {
        let Ok(Some(sec)) = objects.secret(&r.name).await else { continue };
        let data = sec.data.clone().unwrap_or_default();
        let raw = data.get(".dockerconfigjson").or_else(|| data.get(".dockercfg"));
        let Some(raw) = raw else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw.0) else { continue };
        let auths = v.get("auths").cloned().unwrap_or(v);
        for (registry, a) in auths.as_object().into_iter().flatten() {
            let (mut user, mut pass) = (
                a["username"].as_str().unwrap_or_default().to_string(),
                a["password"].as_str().unwrap_or_default().to_string(),
            );
            if let Some(auth) = a["auth"].as_str() {
                if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(auth) {
                    if let Some((u, p)) = String::from_utf8_lossy(&dec).split_once(':') {
                        user = u.to_string();
                        pass = p.to_string();
                    }
                }
            }
            out.push(Credential { registry: registry.clone(), username: user, password: pass });
        }
    }
    out
}

type StartError = (String, String, Duration);

#[allow(clippy::too_many_arguments)]
async fn start_container(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    init: bool,
    sandbox: &Sandbox,
    objects: &mut Objects,
    d: &Downward,
    st: &mut State,
    attempt: u32,
) -> Result<(), StartError> {
    let subj = subject(pod, Some(&c.name), init);
    let image_name = c.image.clone().unwrap_or_default();
    // Image.
    let policy = pull_policy(c);
    let present = ctx.images.get(&image_name).ok().flatten();
    let image = match (&present, policy) {
        (Some(img), PullPolicy::IfNotPresent | PullPolicy::Never) => {
            ctx.events.record(
                &subj,
                EventKind::Normal,
                "Pulled",
                &format!("Container image {image_name:?} already present on machine"),
            );
            img.clone()
        }
        _ => {
            let key = format!("pull/{image_name}");
            // The wait runs from the last attempt.
            let long_ago = Instant::now().checked_sub(backoff::MAX * 4).unwrap_or_else(Instant::now);
            if let Some((left, _)) = st.pulls.check(&key, long_ago, Instant::now()) {
                if st.pull_errors.contains_key(&key) {
                    let err = st.pull_errors.get(&key).cloned().unwrap_or_default();
                    ctx.events.record(
                        &subj,
                        EventKind::Normal,
                        "BackOff",
                        &format!("Back-off pulling image {image_name:?}"),
                    );
                    ctx.events.record(&subj, EventKind::Warning, "Failed", "Error: ImagePullBackOff");
                    return Err((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image {image_name:?}: ErrImagePull: {err}"),
                        left,
                    ));
                }
            }
            if policy != PullPolicy::Never {
                ctx.events.record(&subj, EventKind::Normal, "Pulling", &format!("Pulling image {image_name:?}"));
            }
            let creds = credentials(pod, objects).await;
            let t0 = Instant::now();
            match ctx.images.ensure(&image_name, policy, &creds).await {
                Ok(img) => {
                    st.pulls.reset(&key);
                    st.pull_errors.remove(&key);
                    if policy != PullPolicy::Never {
                        let secs = t0.elapsed().as_secs_f64();
                        ctx.events.record(&subj, EventKind::Normal, "Pulled", &format!(
                            "Successfully pulled image {image_name:?} in {secs:.3}s ({secs:.3}s including waiting). Image size: {} bytes.",
                            img.size
                        ));
                    }
                    img
                }
                Err(e) => {
                    let (reason, retry) = match &e {
                        ImageError::InvalidName { .. } => ("InvalidImageName", Duration::from_secs(300)),
                        ImageError::NeverPull(_) => ("ErrImageNeverPull", Duration::from_secs(10)),
                        // Look again shortly: the container then shows ImagePullBackOff until the
                        // back-off allows the next pull.
                        _ => ("ErrImagePull", Duration::from_secs(1)),
                    };
                    let msg = e.to_string();
                    ctx.events.record(
                        &subj,
                        EventKind::Warning,
                        "Failed",
                        &format!("Failed to pull image {image_name:?}: {msg}"),
                    );
                    ctx.events.record(&subj, EventKind::Warning, "Failed", &format!("Error: {reason}"));
                    st.pull_errors.insert(key, msg.clone());
                    return Err((reason.into(), msg, retry));
                }
            }
        }
    };
    if let Some(r) = &image.repo_digest {
        st.image_refs.insert(image.id.clone(), r.clone());
    }
    let config_err = |e: ConfigError, ctx: &Ctx| {
        ctx.events.record(&subj, EventKind::Warning, "Failed", &format!("Error: {}", e.0));
        ("CreateContainerConfigError".to_string(), e.0, Duration::from_secs(10))
    };
    let cfg = match container_config(ctx, pod, c, sandbox, objects, d, st, &image, attempt).await {
        Ok(cfg) => cfg,
        Err(e) => return Err(config_err(e, ctx)),
    };
    match ctx.runtime.start(cfg).await {
        Ok(rc) => {
            ctx.events.record(&subj, EventKind::Normal, "Created", &format!("Created container: {}", c.name));
            ctx.events.record(&subj, EventKind::Normal, "Started", &format!("Started container {}", c.name));
            if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                if let Err(msg) = run_hook(ctx, h, c, &rc.id, sandbox, Duration::from_secs(30)).await {
                    ctx.events.record(&subj, EventKind::Warning, "FailedPostStartHook", &msg);
                    let _ = ctx.runtime.stop(&rc.id, Duration::from_secs(2), None).await;
                }
            }
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            ctx.events.record(&subj, EventKind::Warning, "Failed", &format!("Error: {msg}"));
            Err(("CreateContainerError".into(), msg, backoff::INITIAL))
        }
    }
}

/// The runtime's configuration for one container.
#[allow(clippy::too_many_arguments)]
async fn container_config(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    sandbox: &Sandbox,
    objects: &mut Objects,
    d: &Downward,
    st: &mut State,
    image: &crate::image::Image,
    attempt: u32,
) -> Result<ContainerConfig, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let services = if spec.enable_service_links != Some(false) {
        service_vars(&ctx.client, &ns).await
    } else {
        service_vars(&ctx.client, "").await
    };
    let (env, warnings) = env::resolve(pod, c, objects, &services, d).await?;
    for w in warnings {
        ctx.events.record(
            &subject(pod, Some(&c.name), false),
            EventKind::Warning,
            "InvalidEnvironmentVariableNames",
            &w,
        );
    }
    let args = env::argv(c, &image.config.entrypoint, &image.config.cmd, &env)?;
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    // One PID namespace for the pod's containers when asked (its init reaps orphans).
    let shared_pid = if spec.share_process_namespace == Some(true) && spec.host_pid != Some(true) {
        let path = ctx.runtime.ensure_pid_namespace(&uid).await.map_err(|e| ConfigError(e.to_string()))?;
        Some(path)
    } else {
        None
    };

    // Security.
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let img_user = env::image_user(image.config.user.as_deref(), &image.layers)?;
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let uid_n = run_as_user.map(|u| u as u32).unwrap_or(img_user.uid);
    let gid_n = sc.run_as_group.or(psc.run_as_group).map(|g| g as u32).unwrap_or(img_user.gid);
    if sc.run_as_non_root.or(psc.run_as_non_root) == Some(true) {
        if run_as_user.is_none() {
            if let Some(n) = &img_user.name {
                return Err(ConfigError(format!(
                    "container has runAsNonRoot and image has non-numeric user ({n}), cannot verify user is non-root (pod: {:?}, container: {})",
                    pod_desc(pod), c.name
                )));
            }
        }
        if uid_n == 0 {
            return Err(ConfigError(format!(
                "container has runAsNonRoot and image will run as root (pod: {:?}, container: {})",
                pod_desc(pod),
                c.name
            )));
        }
    }
    let mut additional_gids: Vec<u32> =
        psc.supplemental_groups.clone().unwrap_or_default().into_iter().map(|g| g as u32).collect();
    if let Some(g) = psc.fs_group {
        additional_gids.push(g as u32);
    }
    let privileged = sc.privileged == Some(true);
    let seccomp_profile = sc.seccomp_profile.clone().or(psc.seccomp_profile.clone());
    let seccomp = match seccomp_profile.as_ref().map(|p| p.type_.as_str()) {
        Some("Unconfined") => runtime::Seccomp::Unconfined,
        Some("Localhost") => {
            let rel = seccomp_profile.as_ref().and_then(|p| p.localhost_profile.clone()).unwrap_or_default();
            if rel.is_empty() || rel.contains("..") || rel.starts_with('/') {
                return Err(ConfigError(format!("invalid localhostProfile {rel:?}")));
            }
            let p = ctx.cfg.data_dir.join("seccomp").join(rel);
            if !p.exists() {
                return Err(ConfigError(format!("failed to load seccomp profile {}: no such file", p.display())));
            }
            runtime::Seccomp::Localhost(p)
        }
        Some("RuntimeDefault") => runtime::Seccomp::RuntimeDefault,
        _ if privileged => runtime::Seccomp::Unconfined,
        _ => runtime::Seccomp::RuntimeDefault,
    };
    let caps = sc.capabilities.clone().unwrap_or_default();
    let security = runtime::Security {
        privileged,
        add_capabilities: caps.add.unwrap_or_default(),
        drop_capabilities: caps.drop.unwrap_or_default(),
        read_only_rootfs: sc.read_only_root_filesystem == Some(true),
        no_new_privs: if sc.allow_privilege_escalation == Some(false) { Some(true) } else { None },
        seccomp,
        unmasked: sc.proc_mount.as_deref() == Some("Unmasked"),
    };

    // Mounts.
    let mut mounts = Vec::new();
    let env_map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut targets = HashSet::new();
    for vm in c.volume_mounts.iter().flatten() {
        let vol = spec.volumes.iter().flatten().find(|v| v.name == vm.name);
        let Some(path) = st.volumes.paths.get(&vm.name) else {
            return Err(ConfigError(format!("cannot find volume {:?} to mount into container {:?}", vm.name, c.name)));
        };
        let sub = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(e)) if !e.is_empty() => Some(env::expand(e, &|n: &str| env_map.get(n).map(|v| v.to_string()))),
            _ => None,
        };
        let source = volumes::mount_source(path, sub.as_deref()).map_err(ConfigError)?;
        let always_ro = vol.is_some_and(|v| {
            v.config_map.is_some() || v.secret.is_some() || v.projected.is_some() || v.downward_api.is_some()
        });
        let propagation = match vm.mount_propagation.as_deref() {
            Some("HostToContainer") => runtime::Propagation::HostToContainer,
            Some("Bidirectional") => runtime::Propagation::Bidirectional,
            _ => runtime::Propagation::Private,
        };
        targets.insert(vm.mount_path.clone());
        mounts.push(runtime::Mount {
            destination: vm.mount_path.clone(),
            kind: runtime::MountKind::Bind { source, propagation },
            read_only: vm.read_only == Some(true) || (always_ro && sub.is_none()),
        });
    }
    let bind = |dest: &str, source: &PathBuf, ro: bool| runtime::Mount {
        destination: dest.to_string(),
        kind: runtime::MountKind::Bind { source: source.clone(), propagation: runtime::Propagation::Private },
        read_only: ro,
    };
    if !targets.contains("/etc/hosts") {
        mounts.push(bind("/etc/hosts", &sandbox.hosts_file, false));
    }
    if !targets.contains("/etc/resolv.conf") {
        mounts.push(bind("/etc/resolv.conf", &sandbox.resolv_conf, false));
    }
    if !targets.contains("/etc/hostname") {
        mounts.push(bind("/etc/hostname", &sandbox.hostname_file, false));
    }
    let term_path =
        c.termination_message_path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/dev/termination-log".into());
    let term_dir = volumes::pod_dir(&ctx.cfg.data_dir, &uid).join("containers").join(&c.name);
    std::fs::create_dir_all(&term_dir).map_err(|e| ConfigError(format!("creating {}: {e}", term_dir.display())))?;
    let term_file = term_dir.join(format!("{attempt}-{:08x}", rand::random::<u32>()));
    std::fs::write(&term_file, b"").map_err(|e| ConfigError(format!("creating {}: {e}", term_file.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&term_file, std::fs::Permissions::from_mode(0o666));
    }
    if !targets.contains(&term_path) {
        mounts.push(bind(&term_path, &term_file, false));
    }

    // Resources.
    let res = c.resources.clone().unwrap_or_default();
    let q = |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone())
    };
    let cpu_req = q(&res.requests, "cpu").or_else(|| q(&res.limits, "cpu"));
    let cpu_lim = q(&res.limits, "cpu");
    let mem_lim = q(&res.limits, "memory");
    let bad = |k: &str, e: String| ConfigError(format!("invalid {k}: {e}"));
    let shares = match cpu_req {
        Some(r) => (super::quantity::millicores(&r).map_err(|e| bad("cpu request", e))? * 1024 / 1000).max(2) as u64,
        None => 2,
    };
    let quota = match cpu_lim {
        Some(l) => Some((super::quantity::millicores(&l).map_err(|e| bad("cpu limit", e))? * 100).max(1000)),
        None => None,
    };
    let memory_limit = match mem_lim {
        Some(l) => Some(super::quantity::bytes(&l).map_err(|e| bad("memory limit", e))?),
        None => None,
    };

    let host_network = spec.host_network == Some(true);
    let log_path = ctx.cfg.pod_log_dir.join(format!("{ns}_{name}_{uid}")).join(&c.name).join(format!("{attempt}.log"));
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_NAMESPACE.to_string(), ns.clone());
    labels.insert(LABEL_NAME.to_string(), name.clone());
    labels.insert(LABEL_TERMINATION_LOG.to_string(), term_file.display().to_string());
    Ok(ContainerConfig {
        pod_uid: uid,
        pod_namespace: ns,
        pod_name: name.clone(),
        name: c.name.clone(),
        attempt,
        layers: image.layers.clone(),
        image_id: image.id.clone(),
        args,
        env: env::merge_image_env(&image.config.env, &env),
        cwd,
        uid: uid_n,
        gid: gid_n,
        additional_gids,
        hostname: hostname(pod),
        mounts,
        namespaces: runtime::Namespaces {
            net: if host_network { None } else { sandbox.net_ns.clone() },
            ipc: if spec.host_ipc == Some(true) { None } else { Some(sandbox.ipc_ns.clone()) },
            uts: if host_network { None } else { sandbox.uts_ns.clone() },
            pid: shared_pid,
            host_pid: spec.host_pid == Some(true),
        },
        resources: runtime::Resources {
            cpu_shares: Some(shares),
            cpu_quota: quota,
            cpu_period: quota.map(|_| 100_000),
            memory_limit,
            pids_limit: None,
        },
        security,
        tty: c.tty == Some(true),
        stdin: c.stdin == Some(true),
        stdin_once: c.stdin_once == Some(true),
        log_path,
        labels,
    })
}

/// `KUBERNETES_SERVICE_*` always; the namespace's services too when service links are on
/// (`ns` empty = only the `kubernetes` service).
async fn service_vars(client: &kube::Client, ns: &str) -> Vec<(String, String)> {
    let mut svcs: Vec<Service> = Vec::new();
    if !ns.is_empty() {
        if let Ok(l) = Api::<Service>::namespaced(client.clone(), ns).list(&ListParams::default()).await {
            svcs.extend(
                l.items.into_iter().filter(|s| !(ns == "default" && s.metadata.name.as_deref() == Some("kubernetes"))),
            );
        }
    }
    let mut out = env::service_env(&svcs);
    if let Ok(k) = Api::<Service>::namespaced(client.clone(), "default").get("kubernetes").await {
        out.extend(env::service_env(&[k]));
    }
    out
}

fn hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    h.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// The sandbox of a pod: hostname, DNS per dnsPolicy/dnsConfig, host aliases.
pub fn sandbox_config(cfg: &AgentConfig, pod: &Pod) -> SandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.clone().unwrap_or_else(|| "ClusterFirst".into());
    let host_resolv = || {
        let s = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut d = DnsConfig::default();
        for l in s.lines() {
            let mut it = l.split_whitespace();
            match it.next() {
                Some("nameserver") => d.nameservers.extend(it.next().map(str::to_string)),
                Some("search") => d.searches.extend(it.map(str::to_string)),
                Some("options") => d.options.extend(it.map(str::to_string)),
                _ => {}
            }
        }
        d
    };
    let cluster = || DnsConfig {
        nameservers: vec![cfg.cluster_dns.to_string()],
        searches: vec![
            format!("{ns}.svc.{}", cfg.cluster_domain),
            format!("svc.{}", cfg.cluster_domain),
            cfg.cluster_domain.clone(),
        ],
        options: vec!["ndots:5".into()],
    };
    let mut dns = match policy.as_str() {
        "None" => DnsConfig::default(),
        "Default" => host_resolv(),
        "ClusterFirstWithHostNet" => cluster(),
        _ if host_network => host_resolv(),
        _ => cluster(),
    };
    if let Some(dc) = &spec.dns_config {
        dns.nameservers.extend(dc.nameservers.clone().unwrap_or_default());
        for s in dc.searches.clone().unwrap_or_default() {
            if !dns.searches.contains(&s) {
                dns.searches.push(s);
            }
        }
        for o in dc.options.clone().unwrap_or_default() {
            let opt = match o.value {
                Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                None => o.name.unwrap_or_default(),
            };
            let key = opt.split(':').next().unwrap_or_default().to_string();
            dns.options.retain(|x| x.split(':').next() != Some(key.as_str()));
            dns.options.push(opt);
        }
    }
    let h = hostname(pod);
    let fqdn =
        spec.subdomain.as_ref().filter(|s| !s.is_empty()).map(|sd| format!("{h}.{sd}.{ns}.svc.{}", cfg.cluster_domain));
    SandboxConfig {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: ns,
        name: pod.metadata.name.clone().unwrap_or_default(),
        hostname: h,
        fqdn,
        host_network,
        dns,
        host_aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
            .collect(),
    }
}

fn downward(ctx: &Ctx, pod: &Pod, sandbox: &Sandbox) -> Downward {
    let pod_ips = match sandbox.ip {
        Some(ip) => vec![ip.to_string()],
        None => ctx.host_ips.iter().take(1).cloned().collect(),
    };
    Downward {
        node_name: ctx.cfg.node_name.clone(),
        host_ips: ctx.host_ips.clone(),
        pod_ips: if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            ctx.host_ips.clone()
        } else {
            pod_ips
        },
        node_cpu_millis: ctx.allocatable.cpu_millis,
        node_memory: ctx.allocatable.memory,
        node_ephemeral_storage: ctx.allocatable.ephemeral_storage,
    }
}

/// Starts probe tasks for running containers that have none; stops those of containers gone.
fn manage_probes(
    m: &Arc<Manager>,
    pod: &Pod,
    containers: &[runtime::ContainerStatus],
    st: &mut State,
    wake: &Arc<Notify>,
    sandbox: &Sandbox,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let running: HashSet<String> =
        containers.iter().filter(|c| matches!(c.state, ContainerState::Running { .. })).map(|c| c.id.clone()).collect();
    st.probes.retain(|id, hs| {
        if running.contains(id) {
            true
        } else {
            hs.iter().for_each(|h| h.abort());
            false
        }
    });
    if let Ok(mut r) = st.probe_results.lock() {
        r.retain(|id, _| running.contains(id));
    }
    let ip: IpAddr = sandbox
        .ip
        .or_else(|| m.ctx.host_ips.first().and_then(|h| h.parse().ok()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    for rc in containers {
        let ContainerState::Running { started_at, .. } = rc.state else { continue };
        if st.probes.contains_key(&rc.id) {
            continue;
        }
        let sidecars = spec.init_containers.iter().flatten().filter(|c| is_sidecar(c));
        let Some(c) = spec.containers.iter().chain(sidecars).find(|c| c.name == rc.name) else { continue };
        if let Ok(mut r) = st.probe_results.lock() {
            r.insert(rc.id.clone(), probes::Results { ready: false, started: c.startup_probe.is_none(), failed: None });
        }
        let mut hs = Vec::new();
        let elapsed = SystemTime::now().duration_since(started_at).unwrap_or_default();
        for (kind, probe) in [
            (ProbeKind::Startup, c.startup_probe.clone()),
            (ProbeKind::Liveness, c.liveness_probe.clone()),
            (ProbeKind::Readiness, c.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            let events = m.ctx.events.clone();
            let subj = subject(pod, Some(&c.name), false);
            let unhealthy: probes::Unhealthy = Arc::new(move |k: ProbeKind, msg: &str| {
                events.record(&subj, EventKind::Warning, "Unhealthy", &format!("{} probe failed: {msg}", k.title()));
            });
            hs.push(tokio::spawn(probes::run(
                kind,
                probe,
                c.clone(),
                probes::Target { container_id: rc.id.clone(), ip },
                m.ctx.runtime.clone(),
                st.probe_results.clone(),
                wake.clone(),
                unhealthy,
                elapsed,
            )));
        }
        st.probes.insert(rc.id.clone(), hs);
    }
}

/// Runs a lifecycle hook; Err = its failure message.
async fn run_hook(
    ctx: &Ctx,
    h: &LifecycleHandler,
    c: &Container,
    id: &str,
    sandbox: &Sandbox,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return match ctx.runtime.exec_sync(id, cmd.clone(), timeout).await {
            Ok((0, _)) => Ok(()),
            Ok((code, out)) => Err(format!(
                "Exec lifecycle hook ({cmd:?}) for Container {:?} failed - error: command exited with {code}, message: {:?}",
                c.name,
                String::from_utf8_lossy(&out)
            )),
            Err(e) => Err(format!("Exec lifecycle hook ({cmd:?}) for Container {:?} failed - error: {e}", c.name)),
        };
    }
    if let Some(g) = &h.http_get {
        let port = probes::port(&g.port, c)?;
        let ip = g.host.as_deref().and_then(|h| h.parse().ok()).or(sandbox.ip).unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let path = g.path.clone().unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> =
            g.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
        return match tokio::time::timeout(timeout, probes::http_get((ip, port).into(), &path, &headers)).await {
            Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
            Ok(Ok(code)) => {
                Err(format!("HTTP lifecycle hook ({path}) for Container {:?} failed - error: status {code}", c.name))
            }
            Ok(Err(e)) => Err(format!("HTTP lifecycle hook ({path}) for Container {:?} failed - error: {e}", c.name)),
            Err(_) => Err(format!("HTTP lifecycle hook ({path}) for Container {:?} timed out", c.name)),
        };
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    Ok(())
}

fn stop_signal(c: Option<&Container>) -> Option<i32> {
    let name = c.and_then(|c| c.lifecycle.as_ref()).and_then(|l| l.stop_signal.clone())?;
    let n = name.trim_start_matches("SIG");
    nix::sys::signal::Signal::iterator().find(|s| s.as_str().trim_start_matches("SIG") == n).map(|s| s as i32)
}

/// preStop (within the grace period), then the stop signal, SIGKILL after what is left.
async fn kill_container(
    ctx: &Ctx,
    pod: &Pod,
    c: Option<&Container>,
    rc: &runtime::ContainerStatus,
    grace: Duration,
    st: &mut State,
    event: bool,
) {
    if !matches!(rc.state, ContainerState::Running { .. }) {
        return;
    }
    let t0 = Instant::now();
    if event {
        ctx.events.record(
            &subject(pod, Some(&rc.name), false),
            EventKind::Normal,
            "Killing",
            &format!("Stopping container {}", rc.name),
        );
    }
    if let (Some(c), Some(sandbox)) = (c, st.sandbox.clone()) {
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
            if let Err(msg) = run_hook(ctx, h, c, &rc.id, &sandbox, grace).await {
                ctx.events.record(&subject(pod, Some(&rc.name), false), EventKind::Warning, "FailedPreStopHook", &msg);
            }
        }
    }
    let left = grace.saturating_sub(t0.elapsed());
    if let Err(e) = ctx.runtime.stop(&rc.id, left, stop_signal(c)).await {
        tracing::warn!(message = "could not stop a container", container = %rc.id, error = %e);
    }
}

/// Stops every running container of the pod at once.
async fn stop_all(ctx: &Ctx, pod: &Pod, st: &mut State, grace: Duration) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let containers = pod_containers(ctx, &uid).await;
    let spec = pod.spec.clone().unwrap_or_default();
    let running: Vec<&runtime::ContainerStatus> = containers
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. } | ContainerState::Created))
        .collect();
    if running.is_empty() {
        return;
    }
    let sandbox = st.sandbox.clone();
    let find = |name: &str| {
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == name).cloned()
    };
    // The app containers first, then the sidecars (they serve the apps until those are gone).
    let (sidecars, apps): (Vec<_>, Vec<_>) =
        running.into_iter().partition(|rc| find(&rc.name).is_some_and(|c| is_sidecar(&c)));
    for group in [apps, sidecars] {
        let futs = group.into_iter().map(|rc| {
            let c = find(&rc.name);
            let sandbox = sandbox.clone();
            async move {
                let mut tmp = State { sandbox, ..Default::default() };
                kill_container(ctx, pod, c.as_ref(), rc, grace, &mut tmp, true).await;
            }
        });
        futures::future::join_all(futs).await;
    }
}

/// A restartable init container (`restartPolicy: Always`): a sidecar.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Releases what a pod that will not run again holds: probes, sandbox.
async fn release(ctx: &Ctx, uid: &str, st: &mut State) {
    for (_, hs) in st.probes.drain() {
        hs.into_iter().for_each(|h| h.abort());
    }
    if let Err(e) = ctx.network.remove_sandbox(uid).await {
        tracing::warn!(message = "could not remove a sandbox", pod = %uid, error = %e);
    }
}

/// Stops a pod being deleted, removes its containers, sandbox and volumes, posts its last status
/// and, when it is in the API, deletes it for good (grace period 0).
async fn terminate(ctx: &Ctx, pod: &Pod, source: &Source, st: &mut State, in_api: bool) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    stop_all(ctx, pod, st, grace_of(pod)).await;
    let containers = pod_containers(ctx, &uid).await;
    if containers.iter().any(|c| !matches!(c.state, ContainerState::Exited { .. })) {
        return; // Not all stopped yet; the next pass retries.
    }
    if in_api {
        post_status(ctx, pod, source, st, true).await;
    }
    release(ctx, &uid, st).await;
    for c in &containers {
        if let Err(e) = ctx.runtime.remove(&c.id).await {
            tracing::warn!(message = "could not remove a container", container = %c.id, error = %e);
            return;
        }
    }
    if let Err(e) = ctx.runtime.remove_pod(&uid).await {
        tracing::warn!(message = "could not remove the pod cgroup", pod = %uid, error = %e);
        return;
    }
    if let Err(e) = volumes::teardown(&ctx.cfg.data_dir, &uid) {
        tracing::warn!(message = "could not tear down volumes", pod = %uid, error = %e);
        return;
    }
    if in_api {
        if let Source::Api = source {
            let api: Api<Pod> =
                Api::namespaced(ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                ..Default::default()
            };
            match api.delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(message = "could not delete the pod", error = %e);
                    return;
                }
            }
        }
    }
    st.finished = true;
}

/// Computes the status and posts it when it changed. Returns whether the phase is terminal.
async fn post_status(ctx: &Ctx, pod: &Pod, source: &Source, st: &mut State, stopping: bool) -> bool {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let containers = pod_containers(ctx, &uid).await;
    let results = st.probe_results.lock().map(|r| r.clone()).unwrap_or_default();
    let mut messages = HashMap::new();
    for c in &containers {
        if let (ContainerState::Exited { .. }, Some(p)) = (&c.state, c.labels.get(LABEL_TERMINATION_LOG)) {
            if let Ok(bytes) = std::fs::read(p) {
                let s = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
                messages.insert(c.id.clone(), s);
            }
        }
    }
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let pod_ips = match (&st.sandbox, host_network) {
        (_, true) => ctx.host_ips.clone(),
        (Some(s), false) => s.ip.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
        (None, false) => Vec::new(),
    };
    let inputs = Inputs {
        containers: containers.iter().collect(),
        waiting: st.waiting.clone(),
        ready: results.iter().map(|(k, v)| (k.clone(), v.ready)).collect(),
        started: results.iter().map(|(k, v)| (k.clone(), v.started)).collect(),
        messages,
        image_refs: st.image_refs.clone(),
        pod_ips,
        host_ips: ctx.host_ips.clone(),
        sandbox_ready: st.sandbox.is_some() && !stopping,
        terminal: st.terminal.clone(),
        stopping,
        now: None,
    };
    let status = status::compute(pod, st.api_status.as_ref(), &inputs);
    let terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    let mut value = serde_json::to_value(&status).unwrap_or_default();
    // Explicit nulls so a merge patch clears what no longer applies.
    for k in ["reason", "message", "podIP", "podIPs", "initContainerStatuses"] {
        if value.get(k).is_none() {
            value[k] = serde_json::Value::Null;
        }
    }
    if st.last_status.as_ref() == Some(&value) {
        return terminal;
    }
    let (ns, name) = match source {
        Source::Api => {
            (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default())
        }
        Source::File { mirror } => (pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()), mirror.clone()),
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": value}))).await {
        Ok(p) => {
            st.api_status = p.status;
            st.last_status = Some(value);
        }
        Err(e) => tracing::debug!(message = "could not post a pod status", pod = %name, error = %e),
    }
    terminal
}
