//! Emitting core/v1 Events for kelp's control loops (`kubectl describe` shows them), with
//! client-side deduplication: a repeat of the same (object, type, reason, message) raises the
//! existing Event's count and lastTimestamp instead of creating a new one.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Errors from recording an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("recording event: {0}")]
    Api(#[from] kube::Error),
}

/// (object uid, type, reason, message).
type EventKey = (String, String, String, String);

/// Records events as one component.
pub struct EventRecorder {
    client: kube::Client,
    component: String,
    instance: String,
    /// (object uid, type, reason, message) → (namespace, event name, count).
    seen: Mutex<HashMap<EventKey, (String, String, i32)>>,
}

/// The most distinct events remembered for deduplication.
const MAX_REMEMBERED: usize = 4096;

impl EventRecorder {
    /// A recorder for `component` (e.g. `default-scheduler`).
    pub fn new(client: kube::Client, component: &str) -> EventRecorder {
        let instance = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "kelp".into());
        EventRecorder {
            client,
            component: component.to_string(),
            instance: format!("{component}-{instance}"),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `object`; `type_` is `Normal` or `Warning`.
    pub async fn record(
        &self,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), EventError> {
        let ns = object.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let uid = object.uid.clone().unwrap_or_else(|| object.name.clone().unwrap_or_default());
        let key = (uid, type_.to_string(), reason.to_string(), message.to_string());
        let now = chrono::Utc::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let previous = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some((ns_, name, count)) = previous {
            let patch =
                json!({"count": count + 1, "lastTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
            let api: Api<Event> = Api::namespaced(self.client.clone(), &ns_);
            if api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (ns_, name, count + 1));
                return Ok(());
            }
        }
        let name =
            format!("{}.{:x}", object.name.as_deref().unwrap_or("object"), now.timestamp_nanos_opt().unwrap_or(0));
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let ev: Event = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": object,
            "type": type_,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }))
        .expect("a well-formed event");
        api.create(&PostParams::default(), &ev).await?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(key, (ns, name, 1));
        Ok(())
    }
}

/// An ObjectReference to a pod.
pub fn pod_reference(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..Default::default()
    }
}

/// An ObjectReference to a node (events about nodes go to the `default` namespace).
pub fn node_reference(name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..Default::default()
    }
}
