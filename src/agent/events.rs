//! core/v1 Events about pods and the node, as kubelet writes them (source component `kubelet`,
//! the node as host), through the shared [`crate::events::EventRecorder`] (which turns repeats
//! into a higher count). Sent from a background task so a slow API never stalls a pod worker.

use k8s_openapi::api::core::v1::ObjectReference;

use crate::events::{EventRecorder, EventType};

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

impl Subject {
    fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(self.kind.into()),
            name: Some(self.name.clone()),
            namespace: (self.kind != "Node").then(|| self.namespace.clone()),
            uid: Some(self.uid.clone()),
            field_path: self.field_path.clone(),
            ..Default::default()
        }
    }
}

/// The kubelet's event writer for one node.
#[derive(Clone)]
pub struct Recorder {
    inner: EventRecorder,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Self {
        Recorder { inner: EventRecorder::new(client, "kubelet", node) }
    }

    /// Records an event in the background.
    pub fn record(&self, subject: &Subject, kind: Kind, reason: &str, message: &str) {
        tracing::debug!(message = "event", object = %subject.name, reason, note = message);
        let inner = self.inner.clone();
        let object = subject.reference();
        let type_ = if kind == Kind::Normal { EventType::Normal } else { EventType::Warning };
        let (reason, message) = (reason.to_string(), message.to_string());
        tokio::spawn(async move {
            if let Err(e) = inner.publish(&object, type_, &reason, &reason, &message).await {
                tracing::debug!(message = "could not record an event", error = %e);
            }
        });
    }
}
