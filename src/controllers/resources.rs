//! Which resources exist, from the API server's discovery (built-in and custom ones alike): the
//! garbage collector and the namespace controller work over all of them.

use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};

/// One served resource in its preferred version.
#[derive(Debug, Clone)]
pub struct Served {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Served {
    /// Whether the resource supports `verb`.
    pub fn can(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `<resource>.<group>` (just `<resource>` for the core group), as upstream prints a
    /// GroupResource.
    pub fn group_resource(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }
}

/// Every resource (not subresource) in its group's preferred version. Events are left out:
/// they are owned by nobody and would only cost memory.
pub async fn discover(client: &kube::Client) -> Result<Vec<Served>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if resource.plural == "events" && (resource.group.is_empty() || resource.group == "events.k8s.io") {
                continue;
            }
            out.push(served(resource, &caps));
        }
    }
    Ok(out)
}

fn served(resource: ApiResource, caps: &ApiCapabilities) -> Served {
    Served { resource, namespaced: caps.scope == Scope::Namespaced, verbs: caps.operations.clone() }
}

/// Whether a resource can be listed and watched (what an informer needs).
pub fn watchable(s: &Served) -> bool {
    s.can(verbs::LIST) && s.can(verbs::WATCH)
}
