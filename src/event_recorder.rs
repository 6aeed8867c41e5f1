//! Events from the scheduler and the node lifecycle controller, through the shared
//! [`crate::events::EventRecorder`] (which deduplicates), plus object references they need.

use k8s_openapi::api::core::v1::ObjectReference;

use crate::events::{self, EventError, EventType};

/// Records events as one component of the control plane.
pub struct EventRecorder {
    inner: events::EventRecorder,
}

impl EventRecorder {
    /// A recorder for `component` (e.g. `default-scheduler`) on this host.
    pub fn new(client: kube::Client, component: &str) -> EventRecorder {
        let host = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
        EventRecorder { inner: events::EventRecorder::new(client, component, host) }
    }

    /// Records an event about `object`; `type_` is `Normal` or `Warning`, the action is the reason.
    pub async fn record(
        &self,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), EventError> {
        let t = if type_ == "Warning" { EventType::Warning } else { EventType::Normal };
        self.inner.publish(object, t, reason, reason, message).await
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
