//! CustomResourceDefinitions: every CRD becomes served resources (the registry's custom part, one
//! per served version), its status conditions are kept current (`NamesAccepted`, `Established`,
//! `Terminating`), and a deleted CRD's objects are all deleted before the CRD goes.
//!
//! A level-triggered loop: any change to any CRD reconciles all of them. It runs inside the API
//! server and writes through the in-process client, like any other controller.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use super::client::in_process_client;
use super::ApiServer;
use crate::api::registry::{self, CustomInfo, ResourceDef, STANDARD_VERBS};

/// Held by a CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_list(v: &Value) -> &'static [&'static str] {
    let items: Vec<&'static str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).map(leak).collect();
    Box::leak(items.into_boxed_slice())
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// Definitions already built, by (CRD uid, CRD resourceVersion): a CRD's definitions are built
/// (and their strings leaked) once per change of the CRD.
type Built = HashMap<(String, String), Vec<&'static ResourceDef>>;

fn build_defs(crd: &Value) -> Vec<&'static ResourceDef> {
    let group = s(crd, "/spec/group");
    let names = &crd["spec"]["names"];
    let plural = s(names, "/plural");
    let kind = s(names, "/kind");
    let singular = match s(names, "/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let namespaced = s(crd, "/spec/scope") != "Cluster";
    let storage = leak(&format!("{plural}.{group}"));
    let mut out = Vec::new();
    for v in crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
        if v["served"] != json!(true) {
            continue;
        }
        let scale = v.pointer("/subresources/scale").filter(|x| x.is_object()).map(|sc| {
            (
                s(sc, "/specReplicasPath").to_string(),
                s(sc, "/statusReplicasPath").to_string(),
                sc.get("labelSelectorPath").and_then(Value::as_str).map(str::to_string),
            )
        });
        let info = CustomInfo {
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            printer_columns: v.get("additionalPrinterColumns").and_then(Value::as_array).cloned().unwrap_or_default(),
            scale_paths: scale.clone(),
        };
        let def = ResourceDef {
            group: leak(group),
            version: leak(s(v, "/name")),
            kind: leak(kind),
            plural: leak(plural),
            singular: leak(&singular),
            namespaced,
            short_names: leak_list(&names["shortNames"]),
            categories: leak_list(&names["categories"]),
            verbs: STANDARD_VERBS,
            subresources: registry::custom_subresources(
                v.pointer("/subresources/status").is_some_and(Value::is_object),
                scale.is_some(),
            ),
            generation: true,
            storage,
            storage_version: v["storage"] == json!(true),
            codec: registry::untyped,
            custom: Some(Box::leak(Box::new(info))),
        };
        out.push(&*Box::leak(Box::new(def)));
    }
    out
}

fn condition(ty: &str, status: bool, reason: &str, message: &str, old: &Value) -> Value {
    let st = if status { "True" } else { "False" };
    // Keep the transition time while the status does not change.
    let since = old
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == st))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)));
    json!({ "type": ty, "status": st, "reason": reason, "message": message, "lastTransitionTime": since })
}

async fn reconcile_all(api: &Arc<ApiServer>, client: &kube::Client, built: &Mutex<Built>) {
    let Some(crd_def) = registry::find("apiextensions.k8s.io", "v1", "customresourcedefinitions") else { return };
    let Ok(listing) = api.cache.list(&crd_def.prefix(None), None, 0, None, &|_| true).await else { return };
    let crds_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut served: Vec<&'static ResourceDef> = Vec::new();
    let mut claimed: BTreeMap<(String, String), String> = BTreeMap::new();
    for o in &listing.objects {
        let Ok(crd) = o.value() else { continue };
        let name = s(&crd, "/metadata/name").to_string();
        let group = s(&crd, "/spec/group").to_string();
        let plural = s(&crd, "/spec/names/plural").to_string();
        let old_conditions = crd.pointer("/status/conditions").cloned().unwrap_or(json!([]));
        let conflict = if name != format!("{plural}.{group}") {
            Some(format!("metadata.name must be spec.names.plural+\".\"+spec.group: {plural}.{group}"))
        } else if registry::is_builtin(&group, &plural) {
            Some(format!("\"{plural}\" is already in use in group {group}"))
        } else {
            claimed
                .get(&(group.clone(), plural.clone()))
                .map(|other| format!("\"{plural}\" is already in use by {other}"))
        };
        let deleting = crd.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
        let mut conditions = vec![match &conflict {
            None => condition("NamesAccepted", true, "NoConflicts", "no conflicts found", &old_conditions),
            Some(m) => condition("NamesAccepted", false, "NameConflict", m, &old_conditions),
        }];
        conditions.push(match &conflict {
            None => condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
                &old_conditions,
            ),
            Some(_) => condition("Established", false, "NotAccepted", "not all names are accepted", &old_conditions),
        });
        let defs = if conflict.is_none() {
            claimed.insert((group.clone(), plural.clone()), name.clone());
            let key = (s(&crd, "/metadata/uid").to_string(), o.revision.to_string());
            let mut b = built.lock().unwrap_or_else(|e| e.into_inner());
            b.entry(key).or_insert_with(|| build_defs(&crd)).clone()
        } else {
            Vec::new()
        };
        served.extend(defs.iter().copied());
        if deleting {
            conditions.push(condition(
                "Terminating",
                true,
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
                &old_conditions,
            ));
        }
        let stored: Vec<Value> = {
            let mut v: Vec<Value> =
                crd.pointer("/status/storedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
            for d in &defs {
                if d.storage_version && !v.iter().any(|x| x == d.version) {
                    v.push(json!(d.version));
                }
            }
            v
        };
        let status = json!({
            "conditions": conditions,
            "acceptedNames": if conflict.is_none() { crd["spec"]["names"].clone() } else { crd.pointer("/status/acceptedNames").cloned().unwrap_or(json!({"plural": "", "kind": ""})) },
            "storedVersions": stored,
        });
        if crd.get("status") != Some(&status) {
            let _ =
                crds_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": status }))).await;
        }
        let finalizers: Vec<Value> =
            crd.pointer("/metadata/finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == CLEANUP_FINALIZER);
        if !deleting && !has_finalizer {
            let mut f = finalizers.clone();
            f.push(json!(CLEANUP_FINALIZER));
            let _ = crds_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": f}})))
                .await;
        }
        if deleting && has_finalizer {
            // Delete every object; once none is left, let the CRD go.
            let prefix = format!("/registry/{plural}.{group}/");
            let left = api.cache.list(&prefix, None, 1, None, &|_| true).await.map(|l| l.objects.len()).unwrap_or(1);
            if left > 0 {
                if let Some(d) = defs.first() {
                    let ar = ApiResource {
                        group: group.clone(),
                        version: d.version.to_string(),
                        api_version: d.api_version(),
                        kind: d.kind.to_string(),
                        plural: plural.clone(),
                    };
                    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                    let _ = all.delete_collection(&DeleteParams::default(), &ListParams::default()).await;
                }
            } else {
                let f: Vec<Value> = finalizers.into_iter().filter(|f| f != CLEANUP_FINALIZER).collect();
                let _ = crds_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": f}})))
                    .await;
            }
        }
    }
    crate::api::schema::set_custom_definitions(custom_definitions(&served));
    registry::set_custom(served);
}

/// Upstream's definition name of a custom kind: the group reversed, the version, the kind.
fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// OpenAPI definitions (in the shipped schema's JSON-schema form) of custom kinds and their lists.
fn custom_definitions(defs: &[&'static ResourceDef]) -> serde_json::Map<String, Value> {
    let meta = |t: &str| json!({ "$ref": format!("#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.{t}") });
    let mut out = serde_json::Map::new();
    for d in defs {
        let name = definition_name(d.group, d.version, d.kind);
        let mut schema = d
            .custom
            .and_then(|c| c.schema.clone())
            .unwrap_or_else(|| json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true }));
        if !schema.get("properties").is_some_and(Value::is_object) {
            schema["properties"] = json!({});
        }
        schema["properties"]["apiVersion"] = json!({ "type": "string", "description": "APIVersion defines the versioned schema of this representation of an object." });
        schema["properties"]["kind"] = json!({ "type": "string", "description": "Kind is a string value representing the REST resource this object represents." });
        schema["properties"]["metadata"] = meta("ObjectMeta");
        schema["x-kubernetes-group-version-kind"] = json!([{ "group": d.group, "version": d.version, "kind": d.kind }]);
        let list = json!({
            "description": format!("{}List is a list of {}", d.kind, d.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "items": { "type": "array", "items": { "$ref": format!("#/$defs/{name}") } },
                "metadata": meta("ListMeta"),
            },
            "x-kubernetes-group-version-kind": [{ "group": d.group, "version": d.version, "kind": format!("{}List", d.kind) }],
        });
        out.insert(format!("{name}List"), list);
        out.insert(name, schema);
    }
    out
}

/// Keep custom resources in step with the CRDs until the process ends.
pub async fn run(api: Arc<ApiServer>) {
    let client = in_process_client(api.clone());
    let built = Mutex::new(Built::new());
    let Some(crd_def) = registry::find("apiextensions.k8s.io", "v1", "customresourcedefinitions") else { return };
    let prefix = crd_def.prefix(None);
    loop {
        let Ok(mut watch) = api.cache.watch(&prefix, None).await else {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        };
        reconcile_all(&api, &client, &built).await;
        loop {
            // Objects of a CRD being deleted are watched too: their deletion lets the CRD go.
            let relevant = |key: &str| {
                key.starts_with(&prefix)
                    || registry::parse_key(key)
                        .and_then(|(storage, _, _)| registry::by_storage(storage))
                        .is_some_and(|d| d.custom.is_some())
            };
            match tokio::time::timeout(std::time::Duration::from_secs(30), watch.live.recv()).await {
                Ok(Ok(ev)) if relevant(&ev.object.key) => reconcile_all(&api, &client, &built).await,
                Ok(Ok(_)) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                // Periodic resync heals anything missed.
                Err(_) => reconcile_all(&api, &client, &built).await,
            }
        }
    }
}
