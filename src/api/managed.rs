//! Server-side apply and `metadata.managedFields`, after upstream's structured-merge-diff and the
//! apiserver's field manager: field sets of objects (the `FieldsV1` encoding with `f:`, `k:`, `v:`,
//! `i:` and `.`), the apply merge (maps granular unless `x-kubernetes-map-type: atomic`, lists by
//! `x-kubernetes-list-type`: `map` lists merged by their `x-kubernetes-list-map-keys`, `set` lists
//! by value, `atomic` lists replaced), conflicts with other managers, pruning of fields an applier
//! stops applying, and the bookkeeping for `Apply` and `Update` operations.
//!
//! Kinds without a schema (custom resources) and fields the schema does not describe are typed
//! the way upstream deduces types: maps granular, lists atomic.
//!
//! Use: [`Typed::apply`] merges an applied configuration into the live object (phase one, before
//! decoding and defaulting); [`Typed::update`] compares the old and the final new object, detects
//! conflicts and updates every manager's set (phase two, for every write).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::api::schema::{self, Schema};
use crate::api::status::StatusError;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a struct or a key of a map (`f:<name>`).
    Field(String),
    /// An item of a set list, by its value (`v:<json>`).
    Value(String),
    /// An item of a map list, by its keys (`k:<json object>`, keys sorted).
    Key(String),
    /// An item of a list without keys (`i:<n>`).
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<PathElement, String> {
        let (kind, rest) = s.split_at_checked(2).ok_or_else(|| format!("invalid path element {s:?}"))?;
        match kind {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "v:" => {
                let v: Value = serde_json::from_str(rest).map_err(|e| format!("invalid value in {s:?}: {e}"))?;
                Ok(PathElement::Value(canonical(&v)))
            }
            "k:" => match serde_json::from_str(rest) {
                Ok(v @ Value::Object(_)) => Ok(PathElement::Key(canonical(&v))),
                _ => Err(format!("invalid key in {s:?}")),
            },
            "i:" => rest.parse().map(PathElement::Index).map_err(|_| format!("invalid index in {s:?}")),
            _ => Err(format!("invalid path element {s:?}")),
        }
    }

    /// Upstream's `PathElement.String()`: `.name`, `[k="v",...]`, `[=v]`, `[0]`.
    fn display(&self) -> String {
        match self {
            PathElement::Field(n) => format!(".{n}"),
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Key(k) => {
                let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", canonical(v))).collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// A path from the object's root.
pub type Path = Vec<PathElement>;

/// A path as upstream prints it in conflicts: `.spec.replicas`, `.spec.template.spec.containers[name="app"].image`.
pub fn path_string(p: &[PathElement]) -> String {
    p.iter().map(PathElement::display).collect()
}

/// JSON with object keys sorted, compact: the form keys and values take in paths.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[k.as_str()]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A set of field paths (upstream's `fieldpath.Set`, flattened).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

#[derive(Default)]
struct Tree {
    member: bool,
    children: BTreeMap<PathElement, Tree>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    pub fn insert(&mut self, p: Path) {
        if !p.is_empty() {
            self.0.insert(p);
        }
    }

    pub fn contains(&self, p: &[PathElement]) -> bool {
        self.0.contains(p)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    pub fn union(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&o.0).cloned().collect())
    }

    pub fn difference(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&o.0).cloned().collect())
    }

    pub fn intersection(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&o.0).cloned().collect())
    }

    /// Whether `p` or a path below it is in the set.
    pub fn has_prefix(&self, p: &[PathElement]) -> bool {
        self.0.range(p.to_vec()..).next().is_some_and(|q| q.starts_with(p))
    }

    /// The `fieldsV1` encoding.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Tree::default();
        for p in &self.0 {
            let mut t = &mut root;
            for e in p {
                t = t.children.entry(e.clone()).or_default();
            }
            t.member = true;
        }
        fn enc(t: &Tree) -> Value {
            let mut m = Map::new();
            if t.member && !t.children.is_empty() {
                m.insert(".".into(), json!({}));
            }
            for (e, c) in &t.children {
                m.insert(e.encode(), enc(c));
            }
            Value::Object(m)
        }
        enc(&root)
    }

    /// Decode a `fieldsV1` value.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        fn dec(v: &Value, path: &mut Path, out: &mut FieldSet) -> Result<(), String> {
            let m = v.as_object().ok_or("fieldsV1 must be an object")?;
            for (k, c) in m {
                if k == "." {
                    out.insert(path.clone());
                    continue;
                }
                path.push(PathElement::decode(k)?);
                if c.as_object().is_some_and(Map::is_empty) {
                    out.insert(path.clone());
                } else {
                    dec(c, path, out)?;
                }
                path.pop();
            }
            Ok(())
        }
        let mut out = FieldSet::new();
        dec(v, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who writes: a manager's identity (appliers are one manager across API versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub name: String,
    pub operation: Operation,
    pub api_version: String,
    /// `status`, `scale`, ... or empty for the main resource.
    pub subresource: String,
}

impl Manager {
    pub fn same(&self, o: &Manager) -> bool {
        self.name == o.name
            && self.operation == o.operation
            && self.subresource == o.subresource
            && (self.operation == Operation::Apply || self.api_version == o.api_version)
    }

    /// How upstream names a manager in conflicts: `"x"`, `"x" with subresource "scale"`,
    /// `"x" using apps/v1` (updaters).
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.name);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: Manager,
    pub time: Option<String>,
    pub fields: FieldSet,
}

/// The entries of an object's `metadata.managedFields` (entries that do not decode are dropped).
pub fn managed_fields(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let operation = match e.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return None,
            };
            let fields = FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&json!({}))).ok()?;
            Some(ManagedEntry {
                manager: Manager {
                    name: s("manager"),
                    operation,
                    api_version: s("apiVersion"),
                    subresource: s("subresource"),
                },
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                fields,
            })
        })
        .collect()
}

/// Write `entries` as the object's `metadata.managedFields`, in upstream's order (Apply before
/// Update, then by time, manager, apiVersion, subresource). No entries: the field is removed.
pub fn set_managed_fields(obj: &mut Value, entries: &[ManagedEntry]) {
    let mut sorted: Vec<&ManagedEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (a.manager.operation, &a.time, &a.manager.name, &a.manager.api_version, &a.manager.subresource).cmp(&(
            b.manager.operation,
            &b.time,
            &b.manager.name,
            &b.manager.api_version,
            &b.manager.subresource,
        ))
    });
    let list: Vec<Value> = sorted
        .iter()
        .map(|e| {
            let mut m = json!({
                "manager": e.manager.name,
                "operation": e.manager.operation.as_str(),
                "apiVersion": e.manager.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if let Some(t) = &e.time {
                m["time"] = json!(t);
            }
            if !e.manager.subresource.is_empty() {
                m["subresource"] = json!(e.manager.subresource);
            }
            m
        })
        .collect();
    let Some(meta) = obj.as_object_mut().map(|o| o.entry("metadata").or_insert_with(|| json!({}))) else {
        return;
    };
    if let Some(meta) = meta.as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Whether two entry lists are the same but for their timestamps.
pub fn same_ignoring_time(a: &[ManagedEntry], b: &[ManagedEntry]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| x.manager == y.manager && x.fields == y.fields))
}

/// A field another manager owns that a write changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: Manager,
    pub path: Path,
}

/// Apply conflicts; [`Conflicts::to_status`] is upstream's 409.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    pub fn message(&self) -> String {
        if let [c] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager.display(),
                path_string(&c.path)
            );
        }
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &self.0 {
            by.entry(c.manager.display()).or_default().push(path_string(&c.path));
        }
        let mut lines = Vec::new();
        for (m, paths) in by {
            lines.push(format!("conflict with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", self.0.len(), lines.join("\n"))
    }

    pub fn to_status(&self) -> StatusError {
        let mut e = StatusError::new(409, "Conflict", self.message());
        let causes: Vec<Value> = self
            .0
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager.display()),
                    "field": path_string(&c.path),
                })
            })
            .collect();
        e.details = Some(json!({ "causes": causes }));
        e
    }
}

/// Which part of an object field sets track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Everything (kinds without a status subresource).
    All,
    /// All but `status` (the main resource of kinds with a status subresource).
    NoStatus,
    /// Only `status` (the status subresource).
    OnlyStatus,
}

/// Metadata fields no manager owns.
const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "selfLink",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "clusterName",
];

/// A schema node: a property schema (extensions may sit on it or on the definition it refers to),
/// or a deduced type.
#[derive(Clone, Copy)]
enum Ty {
    Schema(&'static Value),
    Deduced,
}

enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Field sets, merges and comparisons of objects of one kind.
pub struct Typed {
    schema: &'static Schema,
    root: Ty,
    tracked: Tracked,
}

/// What changed between two objects.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Typed {
    /// The kind (group, version, kind); unknown kinds get deduced types.
    pub fn new(group: &str, version: &str, kind: &str, tracked: Tracked) -> Typed {
        let s = schema::get();
        let root = s.for_kind(group, version, kind).map(Ty::Schema).unwrap_or(Ty::Deduced);
        Typed { schema: s, root, tracked }
    }

    fn ext(&self, ty: Ty, key: &str) -> Option<&'static Value> {
        match ty {
            Ty::Schema(n) => n.get(key).or_else(|| self.schema.resolve(n).get(key)),
            Ty::Deduced => None,
        }
    }

    fn map_atomic(&self, ty: Ty) -> bool {
        self.ext(ty, "x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
    }

    fn list_kind(&self, ty: Ty) -> ListKind {
        match self.ext(ty, "x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListKind::Set,
            Some("map") => ListKind::Map(
                self.ext(ty, "x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            ),
            _ => ListKind::Atomic,
        }
    }

    /// The type of a map's key and whether it is a declared struct field.
    fn child(&self, ty: Ty, key: &str) -> (Ty, bool) {
        let Ty::Schema(n) = ty else { return (Ty::Deduced, false) };
        let r = self.schema.resolve(n);
        if let Some(p) = r.get("properties").and_then(|p| p.get(key)) {
            return (Ty::Schema(p), true);
        }
        match r.get("additionalProperties") {
            Some(ap @ Value::Object(_)) => (Ty::Schema(ap), false),
            _ => (Ty::Deduced, false),
        }
    }

    fn item(&self, ty: Ty) -> Ty {
        match ty {
            Ty::Schema(n) => self.schema.resolve(n).get("items").map(Ty::Schema).unwrap_or(Ty::Deduced),
            Ty::Deduced => Ty::Deduced,
        }
    }

    /// The path element of a list item.
    fn element(&self, kind: &ListKind, i: usize, item: &Value) -> PathElement {
        match kind {
            ListKind::Set => PathElement::Value(canonical(item)),
            ListKind::Map(keys) if !keys.is_empty() && item.is_object() => {
                let mut m = Map::new();
                for k in keys {
                    if let Some(v) = key_value(item, k) {
                        m.insert(k.clone(), v);
                    }
                }
                if m.is_empty() {
                    PathElement::Index(i)
                } else {
                    PathElement::Key(canonical(&Value::Object(m)))
                }
            }
            _ => PathElement::Index(i),
        }
    }

    /// The part of an object field sets track.
    fn tracked(&self, obj: &Value) -> Value {
        let mut v = obj.clone();
        let Some(m) = v.as_object_mut() else { return Value::Null };
        m.remove("apiVersion");
        m.remove("kind");
        match self.tracked {
            Tracked::All => {}
            Tracked::NoStatus => {
                m.remove("status");
            }
            Tracked::OnlyStatus => m.retain(|k, _| k == "status"),
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in IGNORED_META {
                meta.remove(*f);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
        v
    }

    /// Every tracked path of `obj`, with the value of leaves (scalars, atomic lists and maps).
    fn leaves(&self, obj: &Value) -> BTreeMap<Path, Option<Value>> {
        let mut out = BTreeMap::new();
        self.walk(&self.tracked(obj), self.root, &mut Vec::new(), &mut out);
        out
    }

    fn walk(&self, v: &Value, ty: Ty, path: &mut Path, out: &mut BTreeMap<Path, Option<Value>>) {
        match v {
            Value::Object(m) if !self.map_atomic(ty) => {
                for (k, cv) in m {
                    let (cty, is_field) = self.child(ty, k);
                    path.push(PathElement::Field(k.clone()));
                    self.walk(cv, cty, path, out);
                    if cv.is_null() || cv.as_object().is_some_and(Map::is_empty) {
                        out.insert(path.clone(), Some(cv.clone()));
                    } else if !is_field {
                        out.entry(path.clone()).or_insert(None);
                    }
                    path.pop();
                }
            }
            Value::Array(items) => match self.list_kind(ty) {
                ListKind::Atomic => {
                    if !path.is_empty() {
                        out.insert(path.clone(), Some(v.clone()));
                    }
                }
                kind => {
                    let ity = self.item(ty);
                    for (i, it) in items.iter().enumerate() {
                        path.push(self.element(&kind, i, it));
                        self.walk(it, ity, path, out);
                        out.entry(path.clone()).or_insert(None);
                        path.pop();
                    }
                }
            },
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone(), Some(v.clone()));
                }
            }
        }
    }

    /// The field set of an object (its tracked part).
    pub fn field_set(&self, obj: &Value) -> FieldSet {
        FieldSet(self.leaves(obj).into_keys().collect())
    }

    /// Fields added, changed and removed from `old` to `new`.
    pub fn compare(&self, old: &Value, new: &Value) -> Comparison {
        let a = self.leaves(old);
        let b = self.leaves(new);
        let mut c = Comparison::default();
        for (p, v) in &b {
            match a.get(p) {
                None => c.added.insert(p.clone()),
                Some(old) if v.is_some() && old != v => c.modified.insert(p.clone()),
                _ => {}
            }
        }
        for p in a.keys() {
            if !b.contains_key(p) {
                c.removed.insert(p.clone());
            }
        }
        c
    }

    /// Merge an applied configuration into the live object.
    pub fn merge(&self, live: &Value, config: &Value) -> Value {
        self.merge_value(Some(live), config, self.root)
    }

    fn merge_value(&self, live: Option<&Value>, cfg: &Value, ty: Ty) -> Value {
        match (live, cfg) {
            (Some(Value::Object(l)), Value::Object(c)) if !self.map_atomic(ty) => {
                let mut out = l.clone();
                for (k, cv) in c {
                    let (cty, _) = self.child(ty, k);
                    let merged = self.merge_value(l.get(k), cv, cty);
                    out.insert(k.clone(), merged);
                }
                Value::Object(out)
            }
            (Some(Value::Array(l)), Value::Array(c)) => match self.list_kind(ty) {
                ListKind::Atomic => cfg.clone(),
                kind => Value::Array(self.merge_list(l, c, &kind, self.item(ty))),
            },
            _ => cfg.clone(),
        }
    }

    /// Items of both, in the configuration's order; live-only items keep their place.
    fn merge_list(&self, l: &[Value], c: &[Value], kind: &ListKind, ity: Ty) -> Vec<Value> {
        let le: Vec<PathElement> = l.iter().enumerate().map(|(i, v)| self.element(kind, i, v)).collect();
        let ce: Vec<PathElement> = c.iter().enumerate().map(|(i, v)| self.element(kind, i, v)).collect();
        let cpos: BTreeMap<&PathElement, usize> = ce.iter().enumerate().map(|(i, e)| (e, i)).collect();
        let lpos: BTreeMap<&PathElement, usize> = le.iter().enumerate().map(|(i, e)| (e, i)).collect();
        let mut out = Vec::with_capacity(l.len() + c.len());
        let mut next = 0;
        let emit = |upto: usize, next: &mut usize, out: &mut Vec<Value>| {
            while *next <= upto && *next < c.len() {
                let live = lpos.get(&ce[*next]).map(|&i| &l[i]);
                out.push(self.merge_value(live, &c[*next], ity));
                *next += 1;
            }
        };
        for (i, item) in l.iter().enumerate() {
            match cpos.get(&le[i]) {
                None => out.push(item.clone()),
                Some(&r) => emit(r, &mut next, &mut out),
            }
        }
        emit(c.len(), &mut next, &mut out);
        out
    }

    /// Remove from `merged` what the applier's previous set had, it no longer applies, and no
    /// manager (the applier included) owns now.
    fn prune(&self, merged: &mut Value, last: &FieldSet, owners: &[&FieldSet]) {
        let mut candidates = BTreeSet::new();
        for p in last.iter() {
            for i in 1..=p.len() {
                if i == p.len() || matches!(p[i - 1], PathElement::Field(_)) {
                    candidates.insert(p[..i].to_vec());
                }
            }
        }
        for c in candidates {
            if c.len() == 1
                && matches!(&c[0], PathElement::Field(f) if ["metadata", "apiVersion", "kind", "status"].contains(&f.as_str()))
            {
                continue;
            }
            if owners.iter().any(|o| o.has_prefix(&c)) {
                continue;
            }
            remove_path(merged, &c);
        }
    }

    /// Phase one of an apply: record `config`'s fields as `who`'s (an `Apply` manager), merge
    /// `config` into `live` and prune what `who` applied before and nobody owns any more. An
    /// existing object without managed fields is first owned by `before-first-apply`.
    pub fn apply(
        &self,
        live: &Value,
        config: &Value,
        entries: &mut Vec<ManagedEntry>,
        who: &Manager,
        now: &str,
    ) -> Value {
        if entries.is_empty() {
            let fields = self.field_set(live);
            if !fields.is_empty() {
                entries.push(ManagedEntry {
                    manager: Manager {
                        name: "before-first-apply".into(),
                        operation: Operation::Update,
                        api_version: who.api_version.clone(),
                        subresource: who.subresource.clone(),
                    },
                    time: None,
                    fields,
                });
            }
        }
        let applied = self.field_set(config);
        let last = match entries.iter_mut().find(|e| e.manager.same(who)) {
            Some(e) => {
                e.manager = who.clone();
                e.time = Some(now.to_string());
                std::mem::replace(&mut e.fields, applied)
            }
            None => {
                entries.push(ManagedEntry { manager: who.clone(), time: Some(now.to_string()), fields: applied });
                FieldSet::new()
            }
        };
        let mut merged = self.merge(live, config);
        if !last.is_empty() {
            let owners: Vec<&FieldSet> = entries.iter().map(|e| &e.fields).collect();
            self.prune(&mut merged, &last, &owners);
        }
        merged
    }

    /// Phase two of every write: fields added or changed from `old` to `new` that other managers
    /// own are conflicts (an error for an `Apply` without `force`, else they change owner); fields
    /// removed are dropped from every set; an `Update` manager owns what it added or changed.
    pub fn update(
        &self,
        old: &Value,
        new: &Value,
        entries: &mut Vec<ManagedEntry>,
        who: &Manager,
        force: bool,
        now: &str,
    ) -> Result<(), Conflicts> {
        let cmp = self.compare(old, new);
        let changed = cmp.added.union(&cmp.modified);
        let mut conflicts = Vec::new();
        for e in entries.iter().filter(|e| !e.manager.same(who)) {
            for p in e.fields.intersection(&changed).iter() {
                conflicts.push(Conflict { manager: e.manager.clone(), path: p.clone() });
            }
        }
        if who.operation == Operation::Apply && !force && !conflicts.is_empty() {
            conflicts.sort_by(|a, b| (a.manager.display(), &a.path).cmp(&(b.manager.display(), &b.path)));
            return Err(Conflicts(conflicts));
        }
        for e in entries.iter_mut().filter(|e| !e.manager.same(who)) {
            e.fields = e.fields.difference(&changed).difference(&cmp.removed);
        }
        if who.operation == Operation::Update {
            match entries.iter_mut().find(|e| e.manager.same(who)) {
                Some(e) => {
                    e.fields = e.fields.difference(&cmp.removed).union(&changed);
                    e.time = Some(now.to_string());
                }
                None => {
                    entries.push(ManagedEntry { manager: who.clone(), time: Some(now.to_string()), fields: changed })
                }
            }
        }
        entries.retain(|e| !e.fields.is_empty());
        Ok(())
    }
}

/// A key field of a map-list item; `protocol` defaults to TCP as upstream's schema says.
fn key_value(item: &Value, key: &str) -> Option<Value> {
    match item.get(key) {
        Some(v) if !v.is_null() => Some(v.clone()),
        _ if key == "protocol" => Some(json!("TCP")),
        _ => None,
    }
}

fn matches_element(item: &Value, i: usize, e: &PathElement) -> bool {
    match e {
        PathElement::Index(n) => *n == i,
        PathElement::Value(v) => canonical(item) == *v,
        PathElement::Key(k) => {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            item.is_object() && keys.iter().all(|(k, v)| key_value(item, k).as_ref() == Some(v))
        }
        PathElement::Field(_) => false,
    }
}

fn child_mut<'a>(v: &'a mut Value, e: &PathElement) -> Option<&'a mut Value> {
    match (v, e) {
        (Value::Object(m), PathElement::Field(f)) => m.get_mut(f),
        (Value::Array(a), e) => a.iter_mut().enumerate().find(|(i, it)| matches_element(it, *i, e)).map(|(_, it)| it),
        _ => None,
    }
}

/// Remove the field or list item at `path` (nothing if it is not there).
fn remove_path(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parent)) = path.split_last() else { return };
    let mut cur = obj;
    for e in parent {
        match child_mut(cur, e) {
            Some(c) => cur = c,
            None => return,
        }
    }
    match (cur, last) {
        (Value::Object(m), PathElement::Field(f)) => {
            m.remove(f);
        }
        (Value::Array(a), e) => {
            if let Some(i) = a.iter().enumerate().position(|(i, it)| matches_element(it, i, e)) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn deploy() -> Typed {
        Typed::new("apps", "v1", "Deployment", Tracked::NoStatus)
    }

    fn applier(name: &str) -> Manager {
        Manager {
            name: name.into(),
            operation: Operation::Apply,
            api_version: "apps/v1".into(),
            subresource: String::new(),
        }
    }

    fn updater(name: &str) -> Manager {
        Manager {
            name: name.into(),
            operation: Operation::Update,
            api_version: "apps/v1".into(),
            subresource: String::new(),
        }
    }

    fn config(replicas: i64, env: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1", "env": env,
                        "ports": [{"containerPort": 80}]}]},
                },
            },
        })
    }

    /// Apply (both phases) as `who`.
    fn apply(
        t: &Typed,
        live: &Value,
        cfg: &Value,
        entries: &mut Vec<ManagedEntry>,
        who: &Manager,
        force: bool,
    ) -> Result<Value, Conflicts> {
        let mut e = entries.clone();
        let merged = t.apply(live, cfg, &mut e, who, NOW);
        t.update(live, &merged, &mut e, who, force, NOW)?;
        *entries = e;
        Ok(merged)
    }

    #[test]
    fn fields_v1_round_trip() {
        let t = deploy();
        let set = t.field_set(&config(3, json!([{"name": "A", "value": "1"}])));
        let enc = set.to_fields_v1();
        assert_eq!(enc["f:spec"]["f:replicas"], json!({}));
        assert_eq!(enc["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert!(enc.get("f:apiVersion").is_none() && enc["f:metadata"].get("f:name").is_none());
        let c = &enc["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:env"]["k:{\"name\":\"A\"}"]["f:value"], json!({}));
        assert_eq!(c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["."], json!({}));
        // The selector is an atomic map: one leaf.
        assert_eq!(enc["f:spec"]["f:selector"], json!({}));
        assert_eq!(FieldSet::from_fields_v1(&enc).unwrap(), set);
        // Upstream's encoding, decoded and re-encoded unchanged.
        let up =
            json!({"f:data": {".": {}, "f:a": {}}, "f:spec": {"f:finalizers": {"v:\"x\"": {}}, "f:list": {"i:0": {}}}});
        assert_eq!(FieldSet::from_fields_v1(&up).unwrap().to_fields_v1(), up);
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert_eq!(
            path_string(&[
                PathElement::Field("spec".into()),
                PathElement::Key("{\"name\":\"app\"}".into()),
                PathElement::Value("\"v\"".into()),
                PathElement::Index(2)
            ]),
            ".spec[name=\"app\"][=\"v\"][2]"
        );
    }

    #[test]
    fn update_after_apply_conflicts_and_force_takes_ownership() {
        let t = deploy();
        let mut entries = Vec::new();
        let live = apply(&t, &json!({}), &config(3, json!([])), &mut entries, &applier("kubectl"), false).unwrap();
        // An Update (kubectl scale) changes replicas: it owns it now, the applier not.
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scaler = Manager { subresource: "scale".into(), ..updater("kubectl") };
        t.update(&live, &scaled, &mut entries, &scaler, false, NOW).unwrap();
        let spec_replicas = vec![PathElement::Field("spec".into()), PathElement::Field("replicas".into())];
        assert!(entries.iter().find(|e| e.manager == scaler).unwrap().fields.contains(&spec_replicas));
        assert!(!entries
            .iter()
            .find(|e| e.manager.name == "kubectl" && e.manager.operation == Operation::Apply)
            .unwrap()
            .fields
            .contains(&spec_replicas));

        // Applying replicas 3 again conflicts.
        let err = apply(&t, &scaled, &config(3, json!([])), &mut entries, &applier("kubectl"), false).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        );
        let st = err.to_status();
        assert_eq!(st.code, 409);
        assert_eq!(st.details.as_ref().unwrap()["causes"][0]["field"], ".spec.replicas");
        assert_eq!(st.details.as_ref().unwrap()["causes"][0]["reason"], "FieldManagerConflict");
        // Applying the live value is no conflict.
        apply(&t, &scaled, &config(5, json!([])), &mut entries.clone(), &applier("kubectl"), false).unwrap();

        // Force: the applier takes replicas, the scaler's entry is gone (it owned nothing else).
        let forced = apply(&t, &scaled, &config(3, json!([])), &mut entries, &applier("kubectl"), true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        assert!(entries.iter().all(|e| e.manager != scaler));
        assert!(entries[0].fields.contains(&spec_replicas));
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let t = deploy();
        let mut entries = Vec::new();
        let env = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let live = apply(&t, &json!({}), &config(1, env), &mut entries, &applier("kubectl"), false).unwrap();
        let mut live = live;
        // Defaulting adds a field nobody applied: it stays.
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        let mut cfg = config(1, json!([{"name": "A", "value": "1"}]));
        cfg["metadata"].as_object_mut().unwrap().remove("labels");
        let out = apply(&t, &live, &cfg, &mut entries, &applier("kubectl"), false).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert!(out["metadata"].get("labels").is_none(), "{out}");
        assert_eq!(out["metadata"]["name"], "d");

        // A field another manager also owns stays.
        let mut e2 = Vec::new();
        let live =
            apply(&t, &json!({}), &config(1, json!([{"name": "A", "value": "1"}])), &mut e2, &applier("a"), false)
                .unwrap();
        apply(&t, &live, &config(1, json!([{"name": "A", "value": "1"}])), &mut e2, &applier("b"), false).unwrap();
        let out = apply(&t, &live, &config(1, json!([])), &mut e2, &applier("a"), false).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["env"], json!([{"name": "A", "value": "1"}]));
    }

    #[test]
    fn containers_merge_by_name() {
        let t = deploy();
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["x", "y"]},
            {"name": "b", "image": "b:1"},
        ]}}}});
        let cfg = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "c:1"},
            {"name": "a", "image": "a:2", "args": ["z"]},
        ]}}}});
        let out = t.merge(&live, &cfg);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "c", "image": "c:1"},
                {"name": "a", "image": "a:2", "args": ["z"]},
                {"name": "b", "image": "b:1"},
            ])
        );
        // Atomic maps are replaced, granular maps merged.
        let live = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"selector": {"matchLabels": {"a": "1"}}}});
        let cfg = json!({"metadata": {"labels": {"b": "2"}}, "spec": {"selector": {"matchLabels": {"b": "2"}}}});
        let out = t.merge(&live, &cfg);
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"b": "2"}}));
        // Set lists merge by value (finalizers), unknown kinds replace lists and merge maps.
        let out = t.merge(&json!({"metadata": {"finalizers": ["x"]}}), &json!({"metadata": {"finalizers": ["y"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let cr = Typed::new("example.com", "v1", "Widget", Tracked::All);
        let out = cr.merge(&json!({"spec": {"l": [1, 2], "m": {"a": 1}}}), &json!({"spec": {"l": [3], "m": {"b": 2}}}));
        assert_eq!(out, json!({"spec": {"l": [3], "m": {"a": 1, "b": 2}}}));
    }

    #[test]
    fn two_appliers_share_a_list_map() {
        let t = deploy();
        let mut entries = Vec::new();
        let one = |name: &str, image: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}});
        let live = apply(&t, &json!({}), &one("a", "a:1"), &mut entries, &applier("x"), false).unwrap();
        let live = apply(&t, &live, &one("b", "b:1"), &mut entries, &applier("y"), false).unwrap();
        assert_eq!(live["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
        // y changing x's container conflicts.
        let err = apply(&t, &live, &one("a", "a:2"), &mut entries, &applier("y"), false).unwrap_err();
        assert_eq!(path_string(&err.0[0].path), ".spec.template.spec.containers[name=\"a\"].image");
        assert_eq!(err.0[0].manager.display(), "\"x\"");
        // x dropping its container removes only it.
        let live = apply(&t, &live, &json!({"spec": {"replicas": 1}}), &mut entries, &applier("x"), false).unwrap();
        assert_eq!(live["spec"]["template"]["spec"]["containers"], json!([{"name": "b", "image": "b:1"}]));
        // Entries survive the managedFields round trip.
        let mut obj = live.clone();
        set_managed_fields(&mut obj, &entries);
        let back = managed_fields(&obj);
        assert!(same_ignoring_time(&back, &entries));
        assert_eq!(obj["metadata"]["managedFields"][0]["operation"], "Apply");
        assert_eq!(obj["metadata"]["managedFields"][0]["fieldsType"], "FieldsV1");
    }
}
