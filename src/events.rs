//! A shared event recorder for kelp's components (scheduler, controllers, node agent).
//!
//! Events are written as core/v1 Events carrying both the legacy fields (`source`, `count`,
//! `firstTimestamp`, `lastTimestamp`) and the events.k8s.io ones (`eventTime`, `action`,
//! `reportingComponent`, `reportingInstance`, `series`), so `kubectl get events`, `kubectl
//! describe` and `kubectl events` all show them. Like upstream's event correlator, an event
//! identical to one published within the last 10 minutes (same involved object, type, reason,
//! message and source) does not create a new object: the existing one gets `count` + 1, a new
//! `lastTimestamp` and an events.k8s.io `series` (`count`, `lastObservedTime`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// How long an identical event is folded into the previous one.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// Most distinct events remembered per recorder (upstream's LRU size).
const CACHE_SIZE: usize = 4096;

/// What went wrong publishing an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API refused or failed the write.
    #[error("writing the event {name} in {namespace}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Upstream's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What makes two events identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: String,
    api_version: String,
    namespace: String,
    name: String,
    uid: String,
    field_path: String,
    type_: EventType,
    reason: String,
    message: String,
}

/// The last event object written for a key.
#[derive(Debug, Clone)]
struct Written {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Written>>>;

/// Publishes events for one component on one host; cheap to clone (clones share the
/// deduplication cache).
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    component: String,
    host: String,
    cache: Arc<Mutex<HashMap<Key, (Slot, Instant)>>>,
}

impl EventRecorder {
    /// A recorder writing as `component` (e.g. `default-scheduler`, `kubelet`) from `host`.
    pub fn new(client: kube::Client, component: impl Into<String>, host: impl Into<String>) -> EventRecorder {
        EventRecorder {
            client,
            component: component.into(),
            host: host.into(),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Record that `reason` happened to `object` (`action` is what the component did or tried,
    /// e.g. `Scheduling`, `Binding`). An identical event within [`DEDUP_WINDOW`] bumps the count of
    /// the existing Event instead of creating another.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<(), EventError> {
        let key = Key {
            kind: object.kind.clone().unwrap_or_default(),
            api_version: object.api_version.clone().unwrap_or_default(),
            namespace: object.namespace.clone().unwrap_or_default(),
            name: object.name.clone().unwrap_or_default(),
            uid: object.uid.clone().unwrap_or_default(),
            field_path: object.field_path.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let slot = self.slot(key);
        // One publish per identical event at a time: the count never goes backwards.
        let mut last = slot.lock().await;
        let now = Utc::now();
        if let Some(w) = last.as_ref().filter(|w| w.at.elapsed() < DEDUP_WINDOW) {
            let count = w.count + 1;
            let api: Api<Event> = Api::namespaced(self.client.clone(), &w.namespace);
            let patch = json!({
                "count": count,
                "lastTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "series": {
                    "count": count,
                    "lastObservedTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                },
            });
            match api.patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    *last = Some(Written { count, at: Instant::now(), ..w.clone() });
                    return Ok(());
                }
                // Deleted (or expired) meanwhile: start a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(EventError::Api { namespace: w.namespace.clone(), name: w.name.clone(), source })
                }
            }
        }
        let namespace = object.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let base = object.name.clone().unwrap_or_default();
        let name = format!("{base}.{:x}", now.timestamp_nanos_opt().unwrap_or_default());
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": object,
            "type": type_.as_str(),
            "reason": reason,
            "message": truncate(message, 1024),
            "action": action,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": format!("{}-{}", self.component, self.host),
            "firstTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "lastTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "eventTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "count": 1,
        });
        let event: Event = serde_json::from_value(event).expect("a well-formed Event");
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                *last = Some(Written { namespace, name, count: 1, at: Instant::now() });
                Ok(())
            }
            Err(source) => {
                *last = None;
                Err(EventError::Api { namespace, name, source })
            }
        }
    }

    /// The slot of `key`, created if new; the cache is trimmed to [`CACHE_SIZE`] entries,
    /// dropping the expired and then the least recently used ones.
    fn slot(&self, key: Key) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some((slot, used)) = cache.get_mut(&key) {
            *used = now;
            return slot.clone();
        }
        if cache.len() >= CACHE_SIZE {
            cache.retain(|_, (_, used)| used.elapsed() < DEDUP_WINDOW);
            while cache.len() >= CACHE_SIZE {
                let oldest = cache.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => cache.remove(&k),
                    None => break,
                };
            }
        }
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(None));
        cache.insert(key, (slot.clone(), now));
        slot
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The reference events use for `obj`.
pub fn object_ref<K: kube::Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApi;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ListParams;

    #[tokio::test]
    async fn identical_events_are_counted_not_repeated() {
        let t = TestApi::start().await;
        let client = t.client();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cm1", "namespace": "default"}})).unwrap();
        let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
        let rec = EventRecorder::new(client.clone(), "test-controller", "host1");
        let r = object_ref(&cm);
        for _ in 0..3 {
            rec.publish(&r, EventType::Warning, "Broken", "Checking", "it is broken").await.unwrap();
        }
        rec.publish(&r, EventType::Normal, "Fixed", "Checking", "it is fixed").await.unwrap();
        let events: Api<Event> = Api::namespaced(client.clone(), "default");
        let list = events.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 2, "{:?}", list.items);
        let broken = list.items.iter().find(|e| e.reason.as_deref() == Some("Broken")).unwrap();
        assert_eq!(broken.count, Some(3));
        assert_eq!(broken.series.as_ref().map(|s| s.count), Some(Some(3)));
        assert_eq!(broken.source.as_ref().and_then(|s| s.component.as_deref()), Some("test-controller"));
        assert_eq!(broken.involved_object.name.as_deref(), Some("cm1"));
        let fixed = list.items.iter().find(|e| e.reason.as_deref() == Some("Fixed")).unwrap();
        assert_eq!(fixed.count, Some(1));
        assert!(fixed.series.is_none());

        // A deleted event is recreated rather than patched.
        events.delete(broken.metadata.name.as_deref().unwrap(), &Default::default()).await.unwrap();
        rec.publish(&r, EventType::Warning, "Broken", "Checking", "it is broken").await.unwrap();
        let list = events.list(&ListParams::default()).await.unwrap();
        let broken: Vec<_> = list.items.iter().filter(|e| e.reason.as_deref() == Some("Broken")).collect();
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].count, Some(1));

        // events.k8s.io sees the series.
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
        rec.publish(&r, EventType::Warning, "Broken", "Checking", "it is broken").await.unwrap();
        let list = api.list(&ListParams::default()).await.unwrap();
        let b = list.items.iter().find(|e| e.reason.as_deref() == Some("Broken")).unwrap();
        assert_eq!(b.series.as_ref().map(|s| s.count), Some(2));
        assert_eq!(b.reporting_controller.as_deref(), Some("test-controller"));
        assert_eq!(b.action.as_deref(), Some("Checking"));
    }

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hello", 10), "hello");
    }
}
