//! PodStatus from what the node knows: the runtime's containers of the pod (every instance not
//! yet garbage collected), the pod worker's waiting reasons, probe results and the sandbox. Pure:
//! the same inputs give the same status, so the worker posts only when something changed.

use std::collections::HashMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::runtime::{self, ExitReason};

/// Why a container is not running, as the worker last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// Everything the status is computed from.
#[derive(Default)]
pub struct Inputs<'a> {
    /// Every runtime container of the pod (all names, all attempts).
    pub containers: Vec<&'a runtime::ContainerStatus>,
    /// The worker's reason per container name for a container that waits.
    pub waiting: HashMap<String, Waiting>,
    /// Readiness per runtime container id (absent = no result yet).
    pub ready: HashMap<String, bool>,
    /// Startup probe passed per runtime container id.
    pub started: HashMap<String, bool>,
    /// Termination messages per runtime container id.
    pub messages: HashMap<String, String>,
    /// imageID to show per image id (`repo@sha256:…`).
    pub image_refs: HashMap<String, String>,
    pub pod_ips: Vec<String>,
    pub host_ips: Vec<String>,
    /// The sandbox exists with its network (PodReadyToStartContainers).
    pub sandbox_ready: bool,
    /// A terminal phase decided by the worker (activeDeadlineSeconds): phase, reason, message.
    pub terminal: Option<(String, String, String)>,
    /// The pod is being stopped: no container will be restarted.
    pub stopping: bool,
    pub now: Option<SystemTime>,
}

pub fn time(t: SystemTime) -> Time {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs as i64).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

/// Instances of one container, newest first.
fn instances<'a>(inputs: &Inputs<'a>, name: &str) -> Vec<&'a runtime::ContainerStatus> {
    let mut v: Vec<&runtime::ContainerStatus> = inputs.containers.iter().copied().filter(|c| c.name == name).collect();
    v.sort_by_key(|c| std::cmp::Reverse(c.attempt));
    v
}

fn terminated(c: &runtime::ContainerStatus, message: Option<&String>) -> Option<ContainerStateTerminated> {
    match &c.state {
        runtime::ContainerState::Exited { exit_code, signal, reason, started_at, finished_at } => {
            let code = match signal {
                Some(s) if *exit_code == 0 || *exit_code == -1 => 128 + s,
                _ => *exit_code,
            };
            let reason = match reason {
                ExitReason::OomKilled => "OOMKilled",
                _ if code == 0 => "Completed",
                _ => "Error",
            };
            Some(ContainerStateTerminated {
                container_id: Some(format!("kelp://{}", c.id)),
                exit_code: code,
                finished_at: Some(time(*finished_at)),
                message: message.filter(|m| !m.is_empty()).cloned(),
                reason: Some(reason.into()),
                signal: None,
                started_at: Some(time(*started_at)),
            })
        }
        _ => None,
    }
}

fn has_probe(c: &Container, startup: bool) -> bool {
    if startup {
        c.startup_probe.is_some()
    } else {
        c.readiness_probe.is_some()
    }
}

/// One container's status. `default_reason` is the waiting reason when nothing ran yet.
fn container_status(inputs: &Inputs, c: &Container, default_reason: &str) -> ContainerStatus {
    let all = instances(inputs, &c.name);
    let image = c.image.clone().unwrap_or_default();
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        ..Default::default()
    };
    let waiting = inputs.waiting.get(&c.name);
    let wait_state = |w: Option<&Waiting>| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(w.map(|w| w.reason.clone()).unwrap_or_else(|| default_reason.to_string())),
            message: w.map(|w| w.message.clone()).filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    };
    let Some(cur) = all.first() else {
        st.state = Some(wait_state(waiting));
        return st;
    };
    st.restart_count = cur.attempt as i32;
    st.container_id = Some(format!("kelp://{}", cur.id));
    st.image_id = inputs.image_refs.get(&cur.image_id).cloned().unwrap_or_else(|| cur.image_id.clone());
    let prev_term = all.get(1).and_then(|p| terminated(p, inputs.messages.get(&p.id)));
    match &cur.state {
        runtime::ContainerState::Running { started_at, .. } => {
            let started = !has_probe(c, true) || inputs.started.get(&cur.id).copied().unwrap_or(false);
            st.started = Some(started);
            st.ready = started
                && if has_probe(c, false) { inputs.ready.get(&cur.id).copied().unwrap_or(false) } else { true }
                && !inputs.stopping;
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning { started_at: Some(time(*started_at)) }),
                ..Default::default()
            });
            st.last_state = prev_term.map(|t| ContainerState { terminated: Some(t), ..Default::default() });
        }
        runtime::ContainerState::Created => {
            st.state = Some(wait_state(
                waiting.or(Some(&Waiting { reason: "ContainerCreating".into(), message: String::new() })),
            ));
            st.last_state = prev_term.map(|t| ContainerState { terminated: Some(t), ..Default::default() });
        }
        runtime::ContainerState::Exited { .. } => {
            let term = terminated(cur, inputs.messages.get(&cur.id));
            if let Some(w) = waiting {
                st.state = Some(wait_state(Some(w)));
                st.last_state = term.map(|t| ContainerState { terminated: Some(t), ..Default::default() });
            } else {
                st.state = Some(ContainerState { terminated: term, ..Default::default() });
                st.last_state = prev_term.map(|t| ContainerState { terminated: Some(t), ..Default::default() });
            }
        }
    }
    st
}

fn condition(ty: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: ty.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

/// The whole status. `old` is the status in the API (start time, transition times, a terminal
/// phase already reached).
pub fn compute(pod: &Pod, old: Option<&PodStatus>, inputs: &Inputs) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    let now = inputs.now.unwrap_or_else(SystemTime::now);

    let inits = spec.init_containers.clone().unwrap_or_default();
    let init_statuses: Vec<ContainerStatus> =
        inits.iter().map(|c| container_status(inputs, c, "PodInitializing")).collect();
    let sidecar = |s: &ContainerStatus| inits.iter().any(|c| c.name == s.name && super::pods::is_sidecar(c));
    // An init container is done when it succeeded; a sidecar when it runs and has started.
    let init_done = |s: &ContainerStatus| {
        if sidecar(s) {
            s.state.as_ref().is_some_and(|st| st.running.is_some()) && s.started == Some(true)
        } else {
            s.state.as_ref().and_then(|st| st.terminated.as_ref()).is_some_and(|t| t.exit_code == 0)
        }
    };
    // Once app containers ran, the pod stays initialized (a restarting sidecar does not undo it).
    let apps_started = inputs.containers.iter().any(|rc| spec.containers.iter().any(|c| c.name == rc.name));
    let initialized = apps_started || init_statuses.iter().all(init_done);
    let init_failed = init_statuses.iter().filter(|s| !sidecar(s)).any(|s| {
        let term = s.state.as_ref().and_then(|st| st.terminated.as_ref()).or_else(|| {
            s.last_state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .filter(|_| s.state.as_ref().is_some_and(|st| st.waiting.is_some()))
        });
        term.is_some_and(|t| t.exit_code != 0)
    });
    let default_reason = if initialized { "ContainerCreating" } else { "PodInitializing" };
    let statuses: Vec<ContainerStatus> =
        spec.containers.iter().map(|c| container_status(inputs, c, default_reason)).collect();

    // Phase, as upstream's getPhase.
    let old_phase = old.and_then(|s| s.phase.clone()).unwrap_or_default();
    let (mut reason, mut message) = (None, None);
    let phase: String = if let Some((p, r, m)) = &inputs.terminal {
        reason = Some(r.clone());
        message = Some(m.clone());
        p.clone()
    } else if old_phase == "Succeeded" || old_phase == "Failed" {
        reason = old.and_then(|s| s.reason.clone());
        message = old.and_then(|s| s.message.clone());
        old_phase.clone()
    } else if !initialized {
        if init_failed && policy == "Never" { "Failed" } else { "Pending" }.into()
    } else {
        let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for s in &statuses {
            let st = s.state.clone().unwrap_or_default();
            if st.running.is_some() {
                running += 1;
            } else if let Some(t) = &st.terminated {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            } else if st.waiting.is_some() {
                if s.last_state.as_ref().and_then(|l| l.terminated.as_ref()).is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
        if waiting > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            if inputs.stopping {
                if stopped == succeeded {
                    "Succeeded"
                } else {
                    "Failed"
                }
            } else if policy == "Always" {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if policy == "Never" {
                "Failed"
            } else {
                "Running"
            }
        } else {
            "Pending"
        }
        .into()
    };

    // Conditions, keeping transition times of unchanged ones.
    // Sidecars count for readiness like app containers.
    let not_ready: Vec<&str> = init_statuses
        .iter()
        .filter(|s| sidecar(s))
        .chain(statuses.iter())
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let not_init: Vec<&str> = init_statuses.iter().filter(|s| !init_done(s)).map(|s| s.name.as_str()).collect();
    let completed = phase == "Succeeded";
    let all_ready = not_ready.is_empty() && !completed && phase != "Failed";
    let list = |v: &[&str]| format!("[{}]", v.join(" "));
    let ready_reason = if completed { "PodCompleted" } else { "ContainersNotReady" };
    let ready_msg =
        if completed { None } else { Some(format!("containers with unready status: {}", list(&not_ready))) };
    let mut conds = vec![
        condition("PodReadyToStartContainers", inputs.sandbox_ready, None, None),
        condition(
            "Initialized",
            initialized,
            Some(if completed { "PodCompleted" } else { "ContainersNotInitialized" }),
            Some(format!("containers with incomplete status: {}", list(&not_init))),
        ),
        condition("Ready", all_ready, Some(ready_reason), ready_msg.clone()),
        condition("ContainersReady", all_ready, Some(ready_reason), ready_msg),
        condition("PodScheduled", true, None, None),
    ];
    // Conditions this node does not own (readiness gates, DisruptionTarget, …) stay.
    let ours = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"];
    for c in old.and_then(|s| s.conditions.clone()).unwrap_or_default() {
        if !ours.contains(&c.type_.as_str()) {
            conds.push(c);
        }
    }
    for c in conds.iter_mut() {
        let prev = old.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|o| o.type_ == c.type_));
        if c.last_transition_time.is_none() {
            c.last_transition_time = Some(match prev {
                Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                    p.last_transition_time.clone().unwrap()
                }
                _ => time(now),
            });
        }
        if c.last_probe_time.is_none() {
            c.last_probe_time = None;
        }
    }

    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conds),
        container_statuses: Some(statuses),
        init_container_statuses: if inits.is_empty() { None } else { Some(init_statuses) },
        host_ip: inputs.host_ips.first().cloned(),
        host_ips: Some(inputs.host_ips.iter().map(|ip| HostIP { ip: ip.clone() }).collect()),
        pod_ip: inputs.pod_ips.first().cloned(),
        pod_ips: if inputs.pod_ips.is_empty() {
            None
        } else {
            Some(inputs.pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect())
        },
        start_time: old.and_then(|s| s.start_time.clone()).or_else(|| Some(time(now))),
        qos_class: old.and_then(|s| s.qos_class.clone()).or_else(|| Some(qos_class(pod))),
        observed_generation: pod.metadata.generation,
        ..Default::default()
    }
}

/// Guaranteed when every container has equal cpu and memory requests and limits, BestEffort
/// when none has any, else Burstable.
pub fn qos_class(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<&Container> = spec.containers.iter().chain(spec.init_containers.iter().flatten()).collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.clone().unwrap_or_default();
        let req = r.requests.unwrap_or_default();
        let lim = r.limits.unwrap_or_default();
        for k in ["cpu", "memory"] {
            if req.contains_key(k) || lim.contains_key(k) {
                any = true;
            }
            let l = lim.get(k).map(|q| super::quantity::parse(&q.0).unwrap_or(-1.0));
            let q = req.get(k).map(|q| super::quantity::parse(&q.0).unwrap_or(-1.0)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerState as RS;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn pod(policy: &str, inits: &[&str], containers: &[&str]) -> Pod {
        let c = |n: &&str| serde_json::json!({"name": n, "image": "busybox"});
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "initContainers": inits.iter().map(c).collect::<Vec<_>>(),
                     "containers": containers.iter().map(c).collect::<Vec<_>>()}
        }))
        .unwrap()
    }

    fn rc(name: &str, attempt: u32, state: RS) -> runtime::ContainerStatus {
        runtime::ContainerStatus {
            id: format!("{name}-{attempt}"),
            pod_uid: "u".into(),
            name: name.into(),
            attempt,
            image_id: "sha256:abc".into(),
            state,
            log_path: Default::default(),
            labels: BTreeMap::new(),
        }
    }

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn running() -> RS {
        RS::Running { pid: 1, started_at: t(1) }
    }

    fn exited(code: i32, reason: ExitReason) -> RS {
        RS::Exited { exit_code: code, signal: None, reason, started_at: t(1), finished_at: t(2) }
    }

    fn cond<'a>(s: &'a PodStatus, ty: &str) -> &'a PodCondition {
        s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == ty).unwrap()
    }

    #[test]
    fn pending_until_initialized_then_running() {
        let p = pod("Always", &["init"], &["app"]);
        let mut i = Inputs { sandbox_ready: true, ..Default::default() };
        let s = compute(&p, None, &i);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized").status, "False");
        assert_eq!(cond(&s, "Initialized").message.as_deref(), Some("containers with incomplete status: [init]"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("PodInitializing"));

        let init = rc("init", 0, exited(0, ExitReason::Completed));
        let app = rc("app", 0, running());
        i.containers = vec![&init, &app];
        let s = compute(&p, None, &i);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "Ready").status, "True");
        let ics = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(ics.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(), Some("Completed"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.container_id.as_deref(), Some("kelp://app-0"));
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn sidecars_initialize_by_running_and_do_not_hold_completion() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": "Never",
                "initContainers": [{"name": "proxy", "image": "i", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "i"}]}
        }))
        .unwrap();
        let proxy = rc("proxy", 0, running());
        let mut i = Inputs { containers: vec![&proxy], sandbox_ready: true, ..Default::default() };
        let s = compute(&p, None, &i);
        assert_eq!(cond(&s, "Initialized").status, "True", "a started sidecar completes initialization");
        let app = rc("app", 0, running());
        i.containers = vec![&proxy, &app];
        let s = compute(&p, None, &i);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready").status, "True");
        let ics = &s.init_container_statuses.as_ref().unwrap()[0];
        assert!(ics.ready && ics.state.as_ref().unwrap().running.is_some());
        // The app is done: the pod succeeded although the sidecar still runs.
        let done = rc("app", 0, exited(0, ExitReason::Completed));
        i.containers = vec![&proxy, &done];
        assert_eq!(compute(&p, None, &i).phase.as_deref(), Some("Succeeded"));
        // A sidecar that stopped is not an init failure.
        let gone = rc("proxy", 0, exited(1, ExitReason::Error));
        i.containers = vec![&gone];
        let s = compute(&p, None, &i);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized").status, "False");
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let p = pod("Always", &[], &["app"]);
        let a0 = rc("app", 0, exited(1, ExitReason::Error));
        let a1 = rc("app", 1, exited(2, ExitReason::Error));
        let mut i = Inputs { containers: vec![&a0, &a1], sandbox_ready: true, ..Default::default() };
        i.waiting.insert(
            "app".into(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s restarting failed container=app pod=p_ns(u)".into(),
            },
        );
        let s = compute(&p, None, &i);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        assert_eq!(cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 2);
        assert!(!cs.ready);
        assert_eq!(cond(&s, "Ready").message.as_deref(), Some("containers with unready status: [app]"));
    }

    #[test]
    fn completion_and_failure_phases() {
        let ok = rc("app", 0, exited(0, ExitReason::Completed));
        let bad = rc("app", 0, exited(137, ExitReason::OomKilled));
        for (policy, c, phase) in [
            ("Never", &ok, "Succeeded"),
            ("OnFailure", &ok, "Succeeded"),
            ("Never", &bad, "Failed"),
            ("OnFailure", &bad, "Running"),
            ("Always", &ok, "Running"),
        ] {
            let p = pod(policy, &[], &["app"]);
            let i = Inputs { containers: vec![c], ..Default::default() };
            let s = compute(&p, None, &i);
            assert_eq!(s.phase.as_deref(), Some(phase), "{policy}");
            if phase == "Succeeded" {
                assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
            }
        }
        let p = pod("Never", &[], &["app"]);
        let s = compute(&p, None, &Inputs { containers: vec![&bad], ..Default::default() });
        let term = s.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
        assert_eq!(term.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(term.exit_code, 137);
    }

    #[test]
    fn failed_init_with_never_fails_the_pod_and_terminal_phases_stick() {
        let p = pod("Never", &["init"], &["app"]);
        let init = rc("init", 0, exited(3, ExitReason::Error));
        let s = compute(&p, None, &Inputs { containers: vec![&init], ..Default::default() });
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let again = compute(&p, Some(&s), &Inputs::default());
        assert_eq!(again.phase.as_deref(), Some("Failed"));
        let deadline = Inputs {
            terminal: Some((
                "Failed".into(),
                "DeadlineExceeded".into(),
                "Pod was active on the node longer than the specified deadline".into(),
            )),
            ..Default::default()
        };
        let s = compute(&pod("Always", &[], &["app"]), None, &deadline);
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
    }

    #[test]
    fn readiness_probe_gates_ready_and_transition_times_are_kept() {
        let mut p = pod("Always", &[], &["app"]);
        p.spec.as_mut().unwrap().containers[0].readiness_probe = Some(Default::default());
        let app = rc("app", 0, running());
        let mut i = Inputs { containers: vec![&app], sandbox_ready: true, now: Some(t(10)), ..Default::default() };
        let s1 = compute(&p, None, &i);
        assert_eq!(cond(&s1, "Ready").status, "False");
        i.ready.insert("app-0".into(), true);
        i.now = Some(t(20));
        let s2 = compute(&p, Some(&s1), &i);
        assert_eq!(cond(&s2, "Ready").status, "True");
        assert_eq!(cond(&s2, "Ready").last_transition_time, Some(time(t(20))));
        assert_eq!(cond(&s2, "PodScheduled").last_transition_time, Some(time(t(10))));
        assert_eq!(s2.start_time, Some(time(t(10))));
    }

    #[test]
    fn qos_classes() {
        let mk = |res: serde_json::Value| -> Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {}, "spec": {"containers": [{"name": "a", "resources": res}]}}),
            )
            .unwrap()
        };
        assert_eq!(qos_class(&mk(serde_json::json!({}))), "BestEffort");
        assert_eq!(qos_class(&mk(serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(
            qos_class(&mk(
                serde_json::json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(qos_class(&mk(serde_json::json!({"requests": {"cpu": "100m"}}))), "Burstable");
    }
}
