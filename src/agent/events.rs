//! core/v1 Events about pods and the node, as kubelet writes them (source component `kubelet`,
//! the node as host). Repeats of the same event bump its count instead of making new objects.
//! Sent from a background task so a slow API never stalls a pod worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// What an event is about.
#[derive(Clone, Debug)]
pub struct Subject {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<String>,
}

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
    seen: Arc<Mutex<HashMap<String, (String, i32)>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Self {
        Recorder { client, node: node.to_string(), seen: Arc::default() }
    }

    /// Records an event in the background.
    pub fn record(&self, subject: &Subject, kind: Kind, reason: &str, message: &str) {
        tracing::debug!(message = "event", object = %subject.name, reason, note = message);
        let this = self.clone();
        let subject = subject.clone();
        let (reason, message) = (reason.to_string(), message.to_string());
        tokio::spawn(async move {
            if let Err(e) = this.send(&subject, kind, &reason, &message).await {
                tracing::debug!(message = "could not record an event", error = %e);
            }
        });
    }

    async fn send(&self, s: &Subject, kind: Kind, reason: &str, message: &str) -> Result<(), kube::Error> {
        let ns = if s.namespace.is_empty() { "default".to_string() } else { s.namespace.clone() };
        let key = format!("{}/{}/{:?}/{reason}/{message}", s.uid, s.field_path.clone().unwrap_or_default(), kind);
        let now = k8s_openapi::jiff::Timestamp::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let existing = self.seen.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some((name, count)) = existing {
            let patch = json!({"count": count + 1, "lastTimestamp": Time(now)});
            if api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                if let Ok(mut m) = self.seen.lock() {
                    m.insert(key, (name, count + 1));
                }
                return Ok(());
            }
        }
        let name = format!("{}.{:016x}", s.name, rand::random::<u64>());
        let ev = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns), ..Default::default() },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some(s.kind.into()),
                name: Some(s.name.clone()),
                namespace: if s.kind == "Node" { None } else { Some(s.namespace.clone()) },
                uid: Some(s.uid.clone()),
                field_path: s.field_path.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if kind == Kind::Normal { "Normal" } else { "Warning" }.into()),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(self.node.clone()) }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        };
        api.create(&PostParams::default(), &ev).await?;
        if let Ok(mut m) = self.seen.lock() {
            if m.len() > 4096 {
                m.clear();
            }
            m.insert(key, (name, 1));
        }
        Ok(())
    }

    /// Forgets a deleted pod's events.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.seen.lock() {
            m.retain(|k, _| !k.starts_with(&format!("{uid}/")));
        }
    }
}
