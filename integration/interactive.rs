//! Looking at running pods, end to end with real kubectl (1.27, 1.30, 1.31, 1.33) and real
//! containers: `logs` (-f, --tail, --previous, deploy/x, -l), `exec` (exit codes, stdin, a terminal
//! under tmux), `cp` both ways, `port-forward` (several ports, sequential and parallel requests, a
//! closed port), `top`, and who may do what (a `view` user can read logs but not exec; the agent
//! serves nobody but the API server). The Python client's exec and port-forward too.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cluster::{Cluster, IMAGE};
use crate::support::{fixtures, free_port, unique};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::{json, Value};

const VERSIONS: &[&str] = &["1.27", "1.30", "1.31", "1.33"];

/// Reads lines from a child's stdout on a thread, handing them over with their arrival time.
fn line_reader(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<(Instant, String)> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test]
async fn logs_follow_tail_previous_and_workload_selectors() {
    let c = Cluster::start("logs", &[]).await;
    c.run_pod(
        "two",
        json!({"containers": [
            {"name": "a", "command": ["sh", "-c", "i=0; while true; do echo a $i; echo oops $i >&2; i=$((i+1)); sleep 0.2; done"]},
            {"name": "b", "command": ["sh", "-c", "echo from b; sleep 3600"]},
        ]}),
    )
    .await;
    // Without a container, the API names the choices (kubectl picks the first one itself).
    let raw = c.server.kubectl("1.33", &["get", "--raw", &format!("/api/v1/namespaces/{}/pods/two/log", c.ns)]);
    let err = String::from_utf8_lossy(&raw.stderr);
    assert!(!raw.status.success());
    assert!(err.contains("a container name must be specified for pod two, choose one of: [a b]"), "{err}");
    let raw =
        c.server.kubectl("1.33", &["get", "--raw", &format!("/api/v1/namespaces/{}/pods/two/log?container=zz", c.ns)]);
    assert!(String::from_utf8_lossy(&raw.stderr).contains("container zz is not valid for pod two"));
    let raw = c.server.kubectl(
        "1.33",
        &["get", "--raw", &format!("/api/v1/namespaces/{}/pods/two/log?container=a&tailLines=-1", c.ns)],
    );
    assert!(String::from_utf8_lossy(&raw.stderr).contains("tailLines"), "{}", String::from_utf8_lossy(&raw.stderr));

    // Two seconds of output, so that --since=1s has something to leave out.
    c.wait(30, "a 10", || async {
        let out = c.kubectl("1.33", &["logs", "two", "-c", "a"]);
        String::from_utf8_lossy(&out.stdout).contains("a 10\n").then_some(())
    })
    .await;
    for v in VERSIONS {
        assert_eq!(c.kubectl_ok(v, &["logs", "two", "-c", "b"]), "from b\n");
        let tail = c.kubectl_ok(v, &["logs", "two", "-c", "a", "--tail=2"]);
        assert_eq!(tail.lines().count(), 2, "{tail}");
        assert!(tail.lines().all(|l| l.starts_with("a ") || l.starts_with("oops ")), "{tail}");
        let limited = c.kubectl_ok(v, &["logs", "two", "-c", "a", "--limit-bytes=3"]);
        assert_eq!(limited, "a 0");
        let since = c.kubectl_ok(v, &["logs", "two", "-c", "a", "--since=1s"]);
        assert!(!since.contains("a 0\n"), "--since=1s leaves out the first lines");
        let prev = c.kubectl(v, &["logs", "two", "-c", "a", "--previous"]);
        assert!(String::from_utf8_lossy(&prev.stderr)
            .contains("previous terminated container \"a\" in pod \"two\" not found"));

        // -f: lines arrive while they are written. Each line carries its write time
        // (--timestamps); the quickest of ten arrivals shows the stream is live, not buffered.
        let mut child = c
            .kubectl_cmd(v, &["logs", "-f", "two", "-c", "a", "--timestamps", "--tail=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = line_reader(&mut child);
        let mut best = Duration::MAX;
        for _ in 0..10 {
            let (at, line) = rx.recv_timeout(Duration::from_secs(10)).expect("a followed line");
            let ts = line.split(' ').next().unwrap();
            let written = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
            let now = chrono::Utc::now() - chrono::Duration::from_std(at.elapsed()).unwrap();
            let lag = (now - written.with_timezone(&chrono::Utc)).to_std().unwrap_or_default();
            best = best.min(lag);
        }
        assert!(
            best < Duration::from_secs(1),
            "kubectl {v} logs -f: the freshest line arrived {best:?} after it was written"
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    // --previous after a restart.
    c.run_pod(
        "crash",
        json!({"containers": [{"name": "c", "command": ["sh", "-c", "echo run $(date +%s%N); sleep 2; exit 1"]}]}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.ns);
    c.wait(60, "a restart", || async {
        let p = pods.get("crash").await.ok()?;
        (p.status?.container_statuses?.first()?.restart_count >= 1).then_some(())
    })
    .await;
    let prev = c.kubectl_ok("1.33", &["logs", "crash", "--previous"]);
    assert!(prev.starts_with("run "), "{prev}");

    // deploy/x and -l app=x: kubectl finds the pods through the API.
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": c.ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "w", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "echo hello from $(hostname); sleep 3600"]}]}}}
    });
    let file = c.server.dir.path().join("deploy.json");
    std::fs::write(&file, deploy.to_string()).unwrap();
    c.kubectl_ok("1.33", &["apply", "-f", file.to_str().unwrap()]);
    c.wait(90, "the deployment's pods to log", || async {
        let out = c.kubectl("1.33", &["logs", "-l", "app=web", "--prefix"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        (s.matches("hello from web-").count() == 2).then_some(())
    })
    .await;
    for v in VERSIONS {
        let one = c.kubectl_ok(v, &["logs", "deploy/web"]);
        assert!(one.starts_with("hello from web-"), "{one}");
    }
}

#[tokio::test]
async fn top_shows_the_cpu_of_a_busy_pod() {
    let c = Cluster::start("top", &[]).await;
    c.run_pod("busy", json!({"containers": [{"name": "spin", "command": ["sh", "-c", "while :; do :; done"]}]})).await;
    c.run_pod("idle", json!({"containers": [{"name": "nap", "command": ["sleep", "3600"]}]})).await;
    for v in VERSIONS {
        let line = c
            .wait(60, &format!("kubectl {v} top pods to show the busy pod"), || async {
                let out = c.kubectl(v, &["top", "pods", "--no-headers"]);
                let s = String::from_utf8_lossy(&out.stdout).into_owned();
                s.lines().find(|l| l.starts_with("busy ")).map(str::to_string)
            })
            .await;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let millicores: u64 = cols[1].trim_end_matches('m').parse().unwrap();
        assert!(millicores >= 100, "a spinning shell uses a good part of a core: {line}");
        let nodes = c.kubectl_ok(v, &["top", "nodes", "--no-headers"]);
        assert!(nodes.lines().any(|l| l.starts_with(&c.agent.node)), "{nodes}");
    }
    // Label selectors and one pod.
    let out = c.kubectl_ok("1.33", &["top", "pods", "-l", "app=idle", "--no-headers"]);
    assert!(out.starts_with("idle ") && !out.contains("busy"), "{out}");
    let pm: Value =
        serde_json::from_str(&c.server.kubectl_ok(
            "1.33",
            &["get", "--raw", &format!("/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/busy", c.ns)],
        ))
        .unwrap();
    assert_eq!(pm["kind"], "PodMetrics");
    assert_eq!(pm["containers"][0]["name"], "spin");
    // The agent's own summary, through nodes/proxy.
    let summary: Value = serde_json::from_str(
        &c.server.kubectl_ok("1.33", &["get", "--raw", &format!("/api/v1/nodes/{}/proxy/stats/summary", c.agent.node)]),
    )
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], json!(c.agent.node));
    assert!(summary["pods"].as_array().unwrap().iter().any(|p| p["podRef"]["name"] == "busy"));
}

#[tokio::test]
async fn only_the_api_server_reaches_the_agent_and_view_users_cannot_exec() {
    let c = Cluster::start("authz", &[]).await;
    c.run_pod("p", json!({"containers": [{"name": "c", "command": ["sh", "-c", "echo visible; sleep 3600"]}]})).await;
    let viewer = c.server.user_kubeconfig("viewer", &[]);
    c.kubectl_ok("1.33", &["create", "rolebinding", "viewer-view", "--clusterrole=view", "--user=viewer"]);
    let ns = c.ns.clone();
    let logs = c.server.kubectl_with("1.33", &viewer, &["-n", &ns, "logs", "p"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "visible\n", "{}", String::from_utf8_lossy(&logs.stderr));
    for v in VERSIONS {
        let exec = c.server.kubectl_with(v, &viewer, &["-n", &ns, "exec", "p", "--", "true"]);
        assert!(!exec.status.success());
        let err = String::from_utf8_lossy(&exec.stderr);
        assert!(err.contains("forbidden") && err.contains("pods/exec"), "kubectl {v}: {err}");
        let pf = c.server.kubectl_with(v, &viewer, &["-n", &ns, "port-forward", "p", &format!("{}:80", free_port())]);
        assert!(
            String::from_utf8_lossy(&pf.stderr).contains("pods/portforward"),
            "kubectl {v}: {}",
            String::from_utf8_lossy(&pf.stderr)
        );
    }
    // The agent's port: the admin's certificate (same CA, other identity) is refused; no certificate,
    // no TLS session.
    let node: k8s_openapi::api::core::v1::Node = Api::all(c.client.clone()).get(&c.agent.node).await.unwrap();
    let port = node.status.unwrap().daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port;
    let kc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(c.server.kubeconfig()).unwrap()).unwrap();
    use base64::Engine;
    let b64 = |k: &str| {
        base64::engine::general_purpose::STANDARD.decode(kc["users"][0]["user"][k].as_str().unwrap()).unwrap()
    };
    let cert = c.server.dir.path().join("admin.crt");
    let key = c.server.dir.path().join("admin.key");
    std::fs::write(&cert, b64("client-certificate-data")).unwrap();
    std::fs::write(&key, b64("client-key-data")).unwrap();
    let url = format!("https://127.0.0.1:{port}/pods");
    let admin =
        Command::new("curl").args(["-sk", "--cert"]).arg(&cert).arg("--key").arg(&key).arg(&url).output().unwrap();
    let body = String::from_utf8_lossy(&admin.stdout);
    assert!(body.contains("Forbidden") && !body.contains("PodList"), "{body}");
    let anonymous = Command::new("curl").args(["-sk", &url]).output().unwrap();
    assert!(!String::from_utf8_lossy(&anonymous.stdout).contains("PodList"));
    assert!(!anonymous.status.success(), "no client certificate, no TLS session");
}

/// Reads everything a child printed on stdout and stderr.
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (child.wait().unwrap(), out, err)
}

#[tokio::test]
async fn exec_exit_codes_stdin_terminal_and_cleanup() {
    let c = Cluster::start("exec", &[]).await;
    c.run_pod("sh", json!({"containers": [{"name": "c", "command": ["sleep", "3600"]}, {"name": "d", "command": ["sleep", "3600"]}]})).await;
    for v in VERSIONS {
        assert_eq!(c.kubectl_ok(v, &["exec", "sh", "-c", "c", "--", "echo", "hi"]), "hi\n");
        let out = c.kubectl(v, &["exec", "sh", "-c", "c", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "kubectl {v}: the command's exit code: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
        // stdin, to its end.
        let mut child = c
            .kubectl_cmd(v, &["exec", "-i", "sh", "-c", "c", "--", "sh", "-c", "cat; echo done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"line one\nline two\n").unwrap();
        let (st, out, err) = finish(child);
        assert!(st.success(), "kubectl {v} exec -i: {err}");
        assert_eq!(out, "line one\nline two\ndone\n");
        // The process is in the container: its hostname, pid namespace, cgroup, capabilities and
        // seccomp filter are those of the container's own process (pid 1 there).
        assert_eq!(c.kubectl_ok(v, &["exec", "sh", "-c", "c", "--", "hostname"]).trim(), "sh");
        let same = c.kubectl_ok(
            v,
            &["exec", "sh", "-c", "c", "--", "sh", "-c",
              "cat /proc/self/cgroup; grep -E 'Cap|Seccomp:' /proc/self/status; echo ---; cat /proc/1/cgroup; grep -E 'Cap|Seccomp:' /proc/1/status; cat /proc/1/cmdline"],
        );
        let (mine, init) = same.split_once("---\n").unwrap();
        assert!(init.ends_with("sleep\x003600\x00"), "pid 1 is the container's process: {init:?}");
        assert!(init.starts_with(mine), "exec'd process: {mine}\ncontainer: {init}");
        assert!(mine.contains("Seccomp:\t2"), "the RuntimeDefault filter applies: {mine}");
        // Bad input: a container the pod does not have.
        let bad = c.kubectl(v, &["exec", "sh", "-c", "zz", "--", "true"]);
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("container zz is not valid for pod sh"),
            "kubectl {v}: {}",
            String::from_utf8_lossy(&bad.stderr)
        );
    }
    // A terminal: `exec -it` under tmux, a real pty on the client side too.
    for v in VERSIONS {
        let session = tmux_start(&quoted(&c.kubectl_cmd(v, &["exec", "-it", "sh", "-c", "c", "--", "sh"])));
        let screen = tmux_until(&session, "echo T$((6*7)); tty; stty size", &["T42", "30 100"]);
        tmux(&session, &["send-keys", "-t", &session, "exit", "Enter"]);
        std::thread::sleep(Duration::from_millis(300));
        tmux_end(&session);
        assert!(screen.contains("T42"), "kubectl {v} exec -it: the shell answered:\n{screen}");
        assert!(screen.contains("/dev/pts/"), "kubectl {v} exec -it: a terminal:\n{screen}");
        assert!(screen.contains("30 100"), "kubectl {v} exec -it: the terminal has the client's size:\n{screen}");
    }
    // A client that goes away takes its process along.
    let mut child =
        c.kubectl_cmd("1.33", &["exec", "sh", "-c", "c", "--", "sleep", "4242"]).stdout(Stdio::null()).spawn().unwrap();
    c.wait(20, "the exec'd sleep to run", || async {
        let ps = c.kubectl_ok("1.33", &["exec", "sh", "-c", "c", "--", "ps"]);
        ps.contains("sleep 4242").then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    c.wait(20, "the exec'd sleep to be gone with its client", || async {
        let ps = c.kubectl_ok("1.33", &["exec", "sh", "-c", "c", "--", "ps"]);
        (!ps.contains("sleep 4242")).then_some(())
    })
    .await;
}

fn sha_tree(dir: &std::path::Path) -> Vec<(String, String)> {
    let out =
        Command::new("sh").arg("-c").arg("find . -type f | sort | xargs sha256sum").current_dir(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.to_string(), h.to_string())
        })
        .collect()
}

#[tokio::test]
async fn cp_round_trips_a_directory() {
    let c = Cluster::start("cp", &[]).await;
    c.run_pod("box", json!({"containers": [{"name": "c", "command": ["sleep", "3600"]}]})).await;
    let src = c.server.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a.txt"), "hello\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()).unwrap();
    std::fs::write(src.join("sub/deeper/c"), "").unwrap();
    let want = sha_tree(&src);
    for v in VERSIONS {
        let remote = format!("box:/tmp/d{}", v.replace('.', ""));
        c.kubectl_ok(v, &["cp", src.to_str().unwrap(), &remote]);
        let back = c.server.dir.path().join(format!("back{}", v.replace('.', "")));
        c.kubectl_ok(v, &["cp", &remote, back.to_str().unwrap()]);
        assert_eq!(sha_tree(&back), want, "kubectl {v} cp round trip");
    }
}

/// One HTTP/1.0 GET on 127.0.0.1:`port`; the body, or None when the connection fails or closes early.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

#[tokio::test]
async fn port_forward_several_ports_many_requests_and_a_closed_port() {
    let c = Cluster::start("pf", &[]).await;
    c.run_pod(
        "web",
        json!({"containers": [{"name": "httpd", "command": ["sh", "-c",
            "mkdir -p /w1 /w2; echo one > /w1/index.html; echo two > /w2/index.html; httpd -p 127.0.0.1:8080 -h /w1; httpd -p 8081 -h /w2; sleep 3600"]}]}),
    )
    .await;
    for v in VERSIONS {
        let (p1, p2, p3) = (free_port(), free_port(), free_port());
        let mut child = c
            .kubectl_cmd(
                v,
                &["port-forward", "pod/web", &format!("{p1}:8080"), &format!("{p2}:8081"), &format!("{p3}:9999")],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = line_reader(&mut child);
        let mut ready = 0;
        while ready < 3 {
            let (_, l) = rx.recv_timeout(Duration::from_secs(20)).expect("kubectl port-forward to be ready");
            if l.starts_with("Forwarding from 127.0.0.1") {
                ready += 1;
            }
        }
        for i in 0..100 {
            let body = http_get(if i % 2 == 0 { p1 } else { p2 }, "/");
            assert_eq!(body.as_deref(), Some(if i % 2 == 0 { "one\n" } else { "two\n" }), "kubectl {v}: request {i}");
        }
        let parallel: Vec<_> =
            (0..20).map(|i| std::thread::spawn(move || http_get(if i % 2 == 0 { p1 } else { p2 }, "/"))).collect();
        for (i, t) in parallel.into_iter().enumerate() {
            assert_eq!(
                t.join().unwrap().as_deref(),
                Some(if i % 2 == 0 { "one\n" } else { "two\n" }),
                "kubectl {v}: parallel request {i}"
            );
        }
        // Nothing listens on 9999: the error reaches kubectl in upstream's words; kubectl (client-go)
        // then ends the session itself ("lost connection to pod"), as against any kubelet. The
        // agent's side stays usable: a new session works at once (and the Python test keeps one
        // session going across a closed port).
        assert_eq!(http_get(p3, "/"), None);
        let (st, _, err) = finish(child);
        assert!(!st.success());
        assert!(err.contains("error forwarding port 9999 to pod web"), "kubectl {v}: {err}");
        assert!(err.contains("onnection refused"), "kubectl {v}: {err}");
        let mut child = c
            .kubectl_cmd(v, &["port-forward", "pod/web", &format!("{p1}:8080")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = line_reader(&mut child);
        let (_, l) = rx.recv_timeout(Duration::from_secs(20)).expect("kubectl port-forward to be ready again");
        assert!(l.starts_with("Forwarding from"), "{l}");
        assert_eq!(http_get(p1, "/").as_deref(), Some("one\n"), "kubectl {v}: a new session after the error");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test]
async fn python_client_exec_and_port_forward() {
    let python = fixtures().join("pyenv/bin/python3");
    assert!(python.exists(), "{} missing: the test command creates it", python.display());
    let c = Cluster::start("py", &[]).await;
    c.run_pod(
        "py",
        json!({"containers": [{"name": "c", "command": ["sh", "-c", "mkdir -p /w; echo pyok > /w/index.html; httpd -p 8080 -h /w; sleep 3600"]}]}),
    )
    .await;
    let script = format!(
        r#"
import sys
from kubernetes import client, config
from kubernetes.stream import stream, portforward
config.load_kube_config(config_file={kc:?})
api = client.CoreV1Api()
out = stream(api.connect_get_namespaced_pod_exec, "py", {ns:?}, command=["sh", "-c", "echo from-exec; echo to-err >&2"],
             stderr=True, stdin=False, stdout=True, tty=False)
assert "from-exec" in out, out
resp = stream(api.connect_get_namespaced_pod_exec, "py", {ns:?}, command=["sh", "-c", "read x; echo got $x; exit 3"],
              stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
resp.write_stdin("hello\n")
resp.run_forever(timeout=20)
assert "got hello" in resp.read_stdout() + resp.peek_stdout(), "stdin reached the process"
assert resp.returncode == 3, resp.returncode
pf = portforward(api.connect_get_namespaced_pod_portforward, "py", {ns:?}, ports="9999,8080")
import time
closed = pf.socket(9999)
closed.setblocking(True)
try:
    closed.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert closed.recv(4096) == b"", "nothing listens on 9999"
except (BrokenPipeError, ConnectionResetError):
    pass
err = None
for _ in range(100):
    err = pf.error(9999)
    if err is not None:
        break
    time.sleep(0.1)
assert err is not None and "9999" in err, err
sock = pf.socket(8080)
sock.setblocking(True)
sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
sock.close()
assert b"pyok" in data, data
err = pf.error(8080)
assert err is None, err
print("python-ok")
"#,
        kc = c.server.kubeconfig().display().to_string(),
        ns = c.ns,
    );
    let out = Command::new(&python).arg("-c").arg(&script).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("python-ok"),
        "python client: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmdline` (already quoted) in a detached tmux session of 100x30 on a tmux server of its own
/// (parallel tests starting one shared server race); returns the session name (= the server's).
fn tmux_start(cmdline: &str) -> String {
    let session = unique("kelp-tmux");
    let out = Command::new("tmux")
        .args(["-L", &session, "new-session", "-d", "-s", &session, "-x", "100", "-y", "30"])
        .arg(format!("{cmdline}; sleep 30"))
        .output()
        .unwrap();
    assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
    session
}

/// Ends the tmux server of `session` and removes its socket file.
fn tmux_end(session: &str) {
    tmux(session, &["kill-server"]);
    let dir = std::env::var_os("TMUX_TMPDIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let _ = std::fs::remove_file(dir.join(format!("tmux-{uid}")).join(session));
}

/// A tmux command against the server of `session`.
fn tmux(session: &str, args: &[&str]) -> String {
    let out = Command::new("tmux").args(["-L", session]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Types `keys` + Enter until the screen shows every one of `want` (or 20 s pass); returns the screen.
fn tmux_until(session: &str, keys: &str, want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut screen = String::new();
    while Instant::now() < deadline {
        tmux(session, &["send-keys", "-t", session, keys, "Enter"]);
        std::thread::sleep(Duration::from_millis(700));
        screen = tmux(session, &["capture-pane", "-p", "-t", session]);
        if want.iter().all(|w| screen.contains(w)) {
            break;
        }
    }
    screen
}

fn quoted(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn attach_to_a_terminal_to_output_and_kubectl_run() {
    let c = Cluster::start("attach", &[]).await;
    c.run_pod("term", json!({"containers": [{"name": "c", "command": ["sh"], "stdin": true, "tty": true}]})).await;
    c.run_pod(
        "ticker",
        json!({"containers": [{"name": "c", "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]}]}),
    )
    .await;
    for v in VERSIONS {
        // The container's own terminal.
        let session = tmux_start(&quoted(&c.kubectl_cmd(v, &["attach", "-it", "term"])));
        let screen = tmux_until(&session, "echo A$((40+2)); stty size", &["A42", "30 100"]);
        tmux_end(&session);
        assert!(screen.contains("A42"), "kubectl {v} attach -it: the container's shell answered:\n{screen}");
        assert!(screen.contains("30 100"), "kubectl {v} attach -it: resized to the client:\n{screen}");
        // Output only: new lines as they come.
        let mut child =
            c.kubectl_cmd(v, &["attach", "ticker"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let rx = line_reader(&mut child);
        let mut ticks = 0;
        while ticks < 3 {
            let (_, l) = rx.recv_timeout(Duration::from_secs(10)).expect("attached output");
            if l.starts_with("tick ") {
                ticks += 1;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // The terminal container still runs after its clients left.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.ns);
    let p = pods.get("term").await.unwrap();
    assert_eq!(p.status.unwrap().container_statuses.unwrap()[0].restart_count, 0);
    // Asking stdin of a container without one is an error.
    let out = c.kubectl("1.33", &["attach", "-i", "ticker"]);
    assert!(!out.status.success());

    // kubectl run -i: a pod with stdin, attached as it starts, removed after.
    for v in ["1.27", "1.33"] {
        let name = format!("run{}", v.replace('.', ""));
        let mut child = c
            .kubectl_cmd(
                v,
                &[
                    "run",
                    &name,
                    "-i",
                    "--rm",
                    "--restart=Never",
                    "--image",
                    IMAGE,
                    "--image-pull-policy=IfNotPresent",
                    "--command",
                    "--",
                    "sh",
                    "-c",
                    "read x; echo got $x",
                ],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            // Keep offering the line until kubectl is attached and the process read it.
            for _ in 0..60 {
                if stdin.write_all(b"hello\n").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let (st, out, err) = finish(child);
        let _ = feeder.join();
        assert!(st.success(), "kubectl {v} run -i: {err}");
        assert!(out.contains("got hello"), "kubectl {v} run -i: {out}\n{err}");
    }
}

#[tokio::test]
async fn logs_follow_across_rotations() {
    // Tiny log files: the shim rotates every couple of kilobytes, keeping three files.
    let c = Cluster::start("rot", &["--container-log-max-size", "2Ki", "--container-log-max-files", "3"]).await;
    for v in ["1.27", "1.33"] {
        // A pod per version; it writes only once the follower is attached (it saw "ready").
        let name = format!("chatty-{}", v.replace('.', "-"));
        c.run_pod(
            &name,
            json!({"containers": [{"name": "c", "command": ["sh", "-c",
                "echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; \
                 i=1; while [ $i -le 1500 ]; do echo seq $i; i=$((i+1)); [ $((i % 20)) = 0 ] && sleep 0.05; done; \
                 echo finished; sleep 3600"]}]}),
        )
        .await;
        let mut child =
            c.kubectl_cmd(v, &["logs", "-f", &name]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let rx = line_reader(&mut child);
        let (_, first) = rx.recv_timeout(Duration::from_secs(30)).expect("the first line");
        assert_eq!(first, "ready");
        c.kubectl_ok(v, &["exec", &name, "--", "touch", "/tmp/go"]);
        let mut seen: Vec<u32> = Vec::new();
        loop {
            let (_, l) = rx.recv_timeout(Duration::from_secs(30)).expect("followed lines up to the end");
            if l == "finished" {
                break;
            }
            seen.push(l.strip_prefix("seq ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("odd line {l:?}")));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Every line, across all the rotations, exactly once.
        assert_eq!(seen, (1..=1500).collect::<Vec<u32>>(), "kubectl {v}: lines lost or doubled");
        let uid = c.kubectl_ok(v, &["get", "pod", &name, "-o", "jsonpath={.metadata.uid}"]);
        let files: Vec<_> = std::fs::read_dir(c.agent.pod_log_dir())
            .unwrap()
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().ends_with(uid.trim()))
            .flat_map(|d| std::fs::read_dir(d.path().join("c")).into_iter().flatten().flatten())
            .collect();
        assert!(!files.is_empty() && files.len() <= 3, "at most three log files are kept: {files:?}");
    }
}

#[tokio::test]
async fn horizontal_pod_autoscaler_scales_on_the_built_in_metrics() {
    let c = Cluster::start("hpa", &[]).await;
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "burn", "namespace": c.ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
            "template": {"metadata": {"labels": {"app": "burn"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "spin", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": "50m"}},
                    "command": ["sh", "-c", "while :; do :; done"]}]}}}
    });
    let file = c.server.dir.path().join("burn.json");
    std::fs::write(&file, deploy.to_string()).unwrap();
    c.kubectl_ok("1.33", &["apply", "-f", file.to_str().unwrap()]);
    c.kubectl_ok("1.33", &["autoscale", "deployment", "burn", "--cpu-percent=50", "--min=1", "--max=2"]);
    // A spinning shell uses far more than 50 % of 50m: the HPA, reading kelp's metrics.k8s.io,
    // goes to its maximum.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(c.client.clone(), &c.ns);
    c.wait(120, "the HPA to scale the deployment to 2", || async {
        let d = deployments.get("burn").await.ok()?;
        (d.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    let hpa = c.kubectl_ok(
        "1.33",
        &["get", "hpa", "burn", "-o", "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}"],
    );
    assert!(hpa.parse::<u32>().unwrap() > 50, "current utilization {hpa}");
}
