//! Strategic merge patch (`application/strategic-merge-patch+json`), applied the way upstream's
//! apiserver applies it (apimachinery `strategicpatch.StrategicMergeMapPatch` with the server's
//! options: parallel lists are merged and nulls that match nothing are dropped).
//!
//! Merge keys and patch strategies (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`)
//! come from the shipped upstream schema ([`crate::api::schema`]); upstream reads the same
//! metadata from the Go struct tags the schema was generated from. Directives:
//! `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`.
//!
//! Upstream processes the keys of a patch in Go's random map order; here the order is fixed:
//! `$retainKeys`, then `$setElementOrder/*` lists, then plain keys, then
//! `$deleteFromPrimitiveList/*` lists.

use serde_json::{Map, Value};

use crate::api::schema::{self, Schema};

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "retainKeys";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Why a strategic merge patch could not be applied. Messages are upstream's.
#[derive(Debug, thiserror::Error)]
pub enum SmpError {
    /// The kind has no schema (custom resources): upstream rejects SMP for those with 415.
    #[error("strategic merge patch format is not supported")]
    UnsupportedKind { group: String, version: String, kind: String },
    /// The patch (or the original) is not a JSON object.
    #[error("{0}")]
    Decode(String),
    #[error("lists of lists are not supported")]
    NoListOfLists,
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// Everything else (missing merge keys, unknown `$patch` values, mismatched types...).
    #[error("{0}")]
    Other(String),
}

impl SmpError {
    /// The HTTP status upstream answers with (`interpretStrategicMergePatchError`): 415 for kinds
    /// without a schema, 400 for malformed documents and directive formats, 422 for lists of
    /// lists, and 500 (a plain error, no reason) for the rest.
    pub fn code(&self) -> u16 {
        match self {
            SmpError::UnsupportedKind { .. } => 415,
            SmpError::Decode(_)
            | SmpError::BadPatchFormatForPrimitiveList
            | SmpError::BadPatchFormatForRetainKeys
            | SmpError::BadPatchFormatForSetElementOrderList => 400,
            SmpError::NoListOfLists => 422,
            SmpError::Other(_) => 500,
        }
    }
}

type Result<T> = std::result::Result<T, SmpError>;

/// Apply a strategic merge patch to `original`, using the schema of (group, version, kind) for
/// merge keys and strategies. For kinds the schema does not know (custom resources), upstream
/// rejects SMP with 415: that is [`SmpError::UnsupportedKind`].
pub fn apply(group: &str, version: &str, kind: &str, original: &Value, patch: &Value) -> Result<Value> {
    let s = schema::get();
    let Some(root) = s.for_kind(group, version, kind) else {
        return Err(SmpError::UnsupportedKind { group: group.into(), version: version.into(), kind: kind.into() });
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => return Err(SmpError::Decode(cannot_unmarshal(other))),
    };
    let patch = match patch {
        Value::Object(m) => m.clone(),
        // Go decodes `null` into a nil map: nothing to apply.
        Value::Null => Map::new(),
        other => return Err(SmpError::Decode(cannot_unmarshal(other))),
    };
    let m = Merger { schema: s };
    m.merge_map(original, patch, Some(s.resolve(root))).map(Value::Object)
}

fn cannot_unmarshal(v: &Value) -> String {
    let what = match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "object",
    };
    format!("json: cannot unmarshal {what} into Go value of type map[string]interface {{}}")
}

/// A (resolved) schema node; `None` when the field is unknown to the schema, below which nothing
/// has patch metadata (lists are replaced, maps merged).
type Node = Option<&'static Value>;

#[derive(Default)]
struct PatchMeta {
    strategies: Vec<String>,
    merge_key: String,
}

impl PatchMeta {
    fn of(field: Option<&Value>) -> PatchMeta {
        let Some(f) = field else { return PatchMeta::default() };
        PatchMeta {
            strategies: f
                .get("x-kubernetes-patch-strategy")
                .and_then(Value::as_str)
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            merge_key: f.get("x-kubernetes-patch-merge-key").and_then(Value::as_str).unwrap_or_default().to_string(),
        }
    }

    /// Upstream's `extractRetainKeysPatchStrategy`, minus the retainKeys flag (only the diff side
    /// uses it): the one strategy other than retainKeys.
    fn strategy(&self) -> Result<&str> {
        match self.strategies.as_slice() {
            [] => Ok(""),
            [one] if one == RETAIN_KEYS => Ok(""),
            [one] => Ok(one),
            [a, b] if a == RETAIN_KEYS => Ok(b),
            [a, b] if b == RETAIN_KEYS => Ok(a),
            other => Err(SmpError::Other(format!("unexpected patch strategy: [{}]", other.join(" ")))),
        }
    }
}

/// The Go type of a decoded JSON value, as `reflect.TypeOf` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Slice,
    Map,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Nil,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Slice,
        Value::Object(_) => Kind::Map,
    }
}

fn go_type(v: &Value) -> &'static str {
    match kind_of(v) {
        Kind::Nil => "%!s(<nil>)",
        Kind::Bool => "bool",
        Kind::Int => "int64",
        Kind::Float => "float64",
        Kind::String => "string",
        Kind::Slice => "[]interface {}",
        Kind::Map => "map[string]interface {}",
    }
}

/// Go's `%v` of a decoded JSON value (for upstream's error messages).
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!("map[{}]", keys.iter().map(|k| format!("{k}:{}", go_fmt(&m[*k]))).collect::<Vec<_>>().join(" "))
        }
    }
}

fn go_fmt_map(m: &Map<String, Value>) -> String {
    go_fmt(&Value::Object(m.clone()))
}

fn bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    SmpError::Other(format!("expected a {expected}, but received a {}", go_type(actual)))
}

const MAP_TYPE: &str = "map[string]interface {}";
const SLICE_TYPE: &str = "[]interface {}";

fn no_merge_key(m: &Map<String, Value>, key: &str) -> SmpError {
    SmpError::Other(format!("map: {} does not contain declared merge key: {key}", go_fmt_map(m)))
}

fn bad_patch_type(t: &Value, m: &Map<String, Value>) -> SmpError {
    let t = match t {
        Value::String(s) => s.clone(),
        other => format!("%!s({}={})", go_type(other), go_fmt(other)),
    };
    SmpError::Other(format!("unknown patch type: {t} in map: {}", go_fmt_map(m)))
}

/// `extractKey`: the list a parallel directive key (`<prefix>/<list>`) is about.
fn extract_key(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(SmpError::BadPatchFormatForPrimitiveList),
        _ => Err(SmpError::BadPatchFormatForSetElementOrderList),
    }
}

/// Drops maps carrying a `$patch` directive from a value about to be stored as is. Returns `None`
/// when the value itself is such a map.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(m.into_iter().filter_map(|(k, v)| remove_directives(v).map(|v| (k, v))).collect()))
        }
        Value::Array(a) => Some(Value::Array(a.into_iter().filter_map(remove_directives).collect())),
        other => Some(other),
    }
}

/// Drops null map values, recursively (through lists too).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// `sliceElementType`: the one kind of all elements of the lists.
fn slice_element_kind(lists: &[&[Value]]) -> Result<Kind> {
    let mut prev: Option<Kind> = None;
    for list in lists {
        for v in *list {
            let k = kind_of(v);
            match prev {
                None => {
                    if k == Kind::Slice {
                        return Err(SmpError::NoListOfLists);
                    }
                    prev = Some(k);
                }
                Some(p) if p != k => {
                    let all: Vec<String> = lists.iter().map(|l| go_fmt(&Value::Array(l.to_vec()))).collect();
                    return Err(SmpError::Other(format!("list element types are not identical: [{}]", all.join(" "))));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| SmpError::Other("no elements in any of the given slices".into()))
}

/// The value an element is ordered and matched by: its merge key for maps, itself otherwise.
fn order_value<'a>(item: &'a Value, merge_key: &str, kind: Kind) -> Option<&'a Value> {
    if kind == Kind::Map {
        item.as_object().and_then(|m| m.get(merge_key))
    } else {
        Some(item)
    }
}

fn index(list: &[Value], item: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    let want = order_value(item, merge_key, kind);
    list.iter().position(|v| order_value(v, merge_key, kind) == want)
}

fn find_map_by_key<'a>(list: &'a [Value], key: &str, value: &Value) -> Result<Option<(usize, &'a Map<String, Value>)>> {
    for (i, v) in list.iter().enumerate() {
        let Some(m) = v.as_object() else {
            return Err(SmpError::Other(format!("value for key {i} is not a map")));
        };
        if m.get(key) == Some(value) {
            return Ok(Some((i, m)));
        }
    }
    Ok(None)
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let l = left.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, left))?;
    let r = right.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, right))?;
    let lv = l.get(merge_key).ok_or_else(|| no_merge_key(l, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| no_merge_key(r, merge_key))?;
    Ok(lv == rv)
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some(DELETE)
}

/// `extractToDeleteItems`: (kept, `$patch: delete` items).
fn split_delete_items(list: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in list {
        if !v.is_object() {
            return Err(bad_arg_type(MAP_TYPE, &v));
        }
        if is_delete_item(&v) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// `normalizeSliceOrder`: sort `to_sort` by the positions of its items in `order` (stably; Go's
/// comparator, insertion sort as `sort.SliceStable` does for short lists), `$patch: delete`
/// items last.
fn normalize_slice_order(to_sort: Vec<Value>, order: &[Value], merge_key: &str, kind: Kind) -> Result<Vec<Value>> {
    let (mut to_sort, to_delete) = if kind == Kind::Map {
        for v in to_sort.iter().chain(order) {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
        split_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    let less = |a: &Value, b: &Value| match (index(order, a, merge_key, kind), index(order, b, merge_key, kind)) {
        (Some(i), Some(j)) => i < j,
        _ => true,
    };
    for i in 1..to_sort.len() {
        let mut j = i;
        while j > 0 && less(&to_sort[j], &to_sort[j - 1]) {
            to_sort.swap(j, j - 1);
            j -= 1;
        }
    }
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// `mergeSortedSlice`: interleave two ordered lists, using the live order where both are in it.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index(server_order, l, merge_key, kind), index(server_order, r, merge_key, kind)),
                (Some(i), Some(j)) if i < j
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// `normalizeElementOrder`: patch items in patch order, server-only items in live order, merged.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted(server_only, patch, server_order, merge_key, kind))
}

/// Split `list` into the items present in `by` and the others (by merge key for maps).
fn partition(list: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for v in list {
        let found = if merge_key.is_empty() {
            by.contains(&v)
        } else {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, &v))?;
            let key = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
            find_map_by_key(by, merge_key, key)?.is_some()
        };
        if found {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// Go's in-place deduplication (keeps the first of equal items, moving the last item into the gap).
fn deduplicate_scalars(mut s: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i + 1 < s.len() {
        let mut j = i + 1;
        while j < s.len() {
            if s[i] == s[j] {
                s.swap_remove(j);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

/// What a Go `[]interface{}` of the live list shows after `mergeSlice` worked on it in place:
/// its length stays, deletions shift later items left (leaving the last ones duplicated), appends
/// land in the freed slots.
struct GoSlice {
    view: Vec<Value>,
    len: usize,
}

impl GoSlice {
    fn new(view: Vec<Value>) -> GoSlice {
        let len = view.len();
        GoSlice { view, len }
    }

    fn delete(&mut self, i: usize) {
        // `append(s[:i], s[i+1:]...)`: items after i move left; the slot now past the end keeps
        // its old value.
        let end = self.len.min(self.view.len());
        if i < end {
            for j in i..end - 1 {
                self.view[j] = self.view[j + 1].clone();
            }
            self.len -= 1;
        }
    }

    fn set(&mut self, i: usize, v: &Value) {
        if i < self.view.len() {
            self.view[i] = v.clone();
        }
    }

    fn append(&mut self, v: &Value) {
        if self.len < self.view.len() {
            self.view[self.len] = v.clone();
        }
        self.len += 1;
    }
}

struct Merger {
    schema: &'static Schema,
}

impl Merger {
    /// The schema of a field of `node` (a property, or the value schema of a map).
    fn field(&self, node: Node, key: &str) -> Option<&'static Value> {
        let node = node?;
        match node.get("properties") {
            Some(props) => props.get(key),
            None => node.get("additionalProperties").filter(|a| a.is_object()),
        }
    }

    fn lookup_map(&self, node: Node, key: &str) -> (Node, PatchMeta) {
        let f = self.field(node, key);
        (f.map(|f| self.schema.resolve(f)), PatchMeta::of(f))
    }

    fn lookup_slice(&self, node: Node, key: &str) -> (Node, PatchMeta) {
        let f = self.field(node, key);
        (f.and_then(|f| self.schema.items(f)), PatchMeta::of(f))
    }

    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        node: Node,
    ) -> Result<Map<String, Value>> {
        if let Some(d) = patch.get(DIRECTIVE) {
            return match d.as_str() {
                Some(REPLACE) => {
                    patch.remove(DIRECTIVE);
                    Ok(patch)
                }
                Some(DELETE) => Ok(Map::new()),
                _ => Err(bad_patch_type(d, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, node)?;

        let (deletions, plain): (Vec<_>, Vec<_>) =
            patch.into_iter().partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
        for (k, patch_v) in plain.into_iter().chain(deletions) {
            let (k, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                (extract_key(&k, DELETE_FROM_PRIMITIVE_LIST)?, true)
            } else {
                (k, false)
            };
            if patch_v.is_null() {
                original.remove(&k);
                continue;
            }
            let same_kind = original.get(&k).map(|o| kind_of(o) == kind_of(&patch_v));
            match same_kind {
                None | Some(false) => {
                    if !is_delete_list {
                        let mut v = patch_v;
                        discard_nulls(&mut v);
                        match remove_directives(v) {
                            Some(v) => original.insert(k, v),
                            None => original.remove(&k),
                        };
                    }
                }
                Some(true) => {
                    let orig_v = original.remove(&k).unwrap_or(Value::Null);
                    let merged = match (orig_v, patch_v) {
                        (Value::Object(o), Value::Object(p)) => {
                            let (sub, meta) = self.lookup_map(node, &k);
                            if meta.strategy()? == REPLACE {
                                Some(Value::Object(p))
                            } else {
                                Some(Value::Object(self.merge_map(o, p, sub)?))
                            }
                        }
                        (Value::Array(o), Value::Array(p)) => {
                            let (sub, meta) = self.lookup_slice(node, &k);
                            let strategy = meta.strategy()?;
                            Some(Value::Array(self.merge_slice_handler(
                                o,
                                p,
                                sub,
                                (strategy, &meta.merge_key),
                                is_delete_list,
                                None,
                            )?))
                        }
                        (_, p) => remove_directives(p),
                    };
                    if let Some(v) = merged {
                        original.insert(k, v);
                    }
                }
            }
        }
        Ok(original)
    }

    /// `mergePatchIntoOriginal`: the `$setElementOrder/<list>` directives, with their lists.
    fn merge_ordered_lists(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        node: Node,
    ) -> Result<()> {
        let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
        for key in keys {
            let order_v = patch.remove(&key).unwrap_or(Value::Null);
            let Value::Array(order) = order_v else {
                return Err(bad_arg_type(SLICE_TYPE, &order_v));
            };
            let list_key = extract_key(&key, SET_ELEMENT_ORDER)?;
            let original_list = match original.get(&list_key) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
                None => None,
            };
            let patch_list = match patch.get(&list_key) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
                None => None,
            };
            let (sub, meta) = self.lookup_slice(node, &list_key);
            let strategy = meta.strategy()?;
            let merge_key = meta.merge_key.as_str();
            validate_patch_with_set_order_list(patch_list.as_deref().unwrap_or_default(), &order, merge_key)?;
            // Go merges the live list in place: deletions and appends show through the live
            // list's backing array, which is then the live order used below.
            let mut live = GoSlice::new(original_list.clone().unwrap_or_default());
            let patch_items = patch_list.clone().unwrap_or_default();
            let merged = match (original_list, patch_list) {
                (Some(o), None) => o,
                (None, Some(p)) => match remove_directives(Value::Array(p)) {
                    Some(Value::Array(a)) => a,
                    _ => continue,
                },
                (Some(o), Some(p)) => {
                    self.merge_slice_handler(o, p, sub, (strategy, merge_key), false, Some(&mut live))?
                }
                (None, None) => continue,
            };
            let (in_order, server_only) = partition(merged, &order, merge_key)?;
            let kind = slice_element_kind(&[&live.view, &patch_items])?;
            let both = normalize_element_order(in_order, server_only, &order, &live.view, merge_key, kind)?;
            original.insert(list_key.clone(), Value::Array(both));
            patch.remove(&list_key);
        }
        Ok(())
    }

    fn merge_slice_handler(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        node: Node,
        (strategy, merge_key): (&str, &str),
        is_delete_list: bool,
        live: Option<&mut GoSlice>,
    ) -> Result<Vec<Value>> {
        if strategy == MERGE || is_delete_list {
            self.merge_slice(original, patch, node, merge_key, is_delete_list, live)
        } else {
            Ok(patch)
        }
    }

    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        node: Node,
        merge_key: &str,
        is_delete_list: bool,
        mut live: Option<&mut GoSlice>,
    ) -> Result<Vec<Value>> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = slice_element_kind(&[&original, &patch])?;
        let (original, patch, merged) = if kind != Kind::Map {
            if is_delete_list {
                return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
            }
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            (original, patch, deduplicate_scalars(both))
        } else {
            if merge_key.is_empty() {
                return Err(SmpError::Other("cannot merge lists without merge key for struct".into()));
            }
            let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key, live.as_deref_mut())?;
            let merged = self.merge_slice_without_special_elements(original.clone(), &patch, merge_key, node, live)?;
            (original, patch, merged)
        };
        let (patch_items, server_only) = partition(merged, &patch, merge_key)?;
        normalize_element_order(patch_items, server_only, &patch, &original, merge_key, kind)
    }

    fn merge_slice_without_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        merge_key: &str,
        node: Node,
        mut live: Option<&mut GoSlice>,
    ) -> Result<Vec<Value>> {
        for v in patch {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
            let key = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
            match find_map_by_key(&original, merge_key, key)? {
                Some((i, o)) => {
                    let merged = Value::Object(self.merge_map(o.clone(), m.clone(), node)?);
                    if let Some(live) = live.as_deref_mut() {
                        live.set(i, &merged);
                    }
                    original[i] = merged;
                }
                None => {
                    if let Some(live) = live.as_deref_mut() {
                        live.append(v);
                    }
                    original.push(v.clone());
                }
            }
        }
        Ok(original)
    }
}

/// `mergeSliceWithSpecialElements`: apply `$patch: delete` items to the live list; a
/// `$patch: replace` item makes the rest of the patch list the result. Returns the new
/// (original, patch).
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    mut live: Option<&mut GoSlice>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, &v))?;
        let Some(directive) = m.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                let key = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
                while let Some((i, _)) = find_map_by_key(&original, merge_key, key)? {
                    original.remove(i);
                    if let Some(live) = live.as_deref_mut() {
                        live.delete(i);
                    }
                }
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => return Err(SmpError::Other("merging lists cannot yet be specified in the patch".into())),
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// `applyRetainKeysDirective`: drop live keys not listed; every key the patch sets must be listed.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else { return Ok(()) };
    let Value::Array(retain) = retain else { return Err(SmpError::BadPatchFormatForRetainKeys) };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !listed(k) {
            return Err(SmpError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list's items must appear in the order list, in order.
fn validate_patch_with_set_order_list(patch: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let kept: Vec<Value> = if merge_key.is_empty() { patch.to_vec() } else { split_delete_items(patch.to_vec())?.0 };
    let (mut pi, mut oi) = (0, 0);
    while pi < kept.len() && oi < order.len() {
        if kept[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(&kept[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < kept.len() && oi >= order.len() {
        return Err(SmpError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"app": "x", "tier": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": containers}},
            },
        })
    }

    fn two() -> Value {
        dep(json!([
            {"name": "c1", "image": "busybox:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "c2", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        ]))
    }

    fn deploy(original: &Value, patch: Value) -> Value {
        apply("apps", "v1", "Deployment", original, &patch).unwrap()
    }

    fn pod(original: Value, patch: Value) -> Result<Value> {
        apply("", "v1", "Pod", &original, &patch)
    }

    fn containers(v: &Value) -> &Vec<Value> {
        v.pointer("/spec/template/spec/containers").and_then(Value::as_array).unwrap()
    }

    #[test]
    fn merges_containers_by_name_changing_one_image() {
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c1", "image": "busybox:2"}]}}}}),
        );
        let c = containers(&out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["image"], "busybox:2");
        assert_eq!(c[0]["env"].as_array().unwrap().len(), 2, "c1 keeps its env");
        assert_eq!(c[1], two()["spec"]["template"]["spec"]["containers"][1]);
        // Untouched parts stay.
        assert_eq!(out["metadata"], two()["metadata"]);
        assert_eq!(out["spec"]["replicas"], 1);
    }

    #[test]
    fn adds_a_container_and_env_into_another() {
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c3", "image": "redis"},
                {"name": "c2", "env": [{"name": "A", "value": "1"}]},
            ]}}}}),
        );
        let c = containers(&out);
        let names: Vec<&str> = c.iter().map(|c| c["name"].as_str().unwrap()).collect();
        // Upstream's interleaving: patch items in patch order; a live-only item goes before a
        // patch item only when the live list orders both, so the unknown c3 comes first.
        assert_eq!(names, ["c3", "c1", "c2"]);
        assert_eq!(c[2]["image"], "nginx:1");
        assert_eq!(c[2]["env"], json!([{"name": "A", "value": "1"}]));
    }

    #[test]
    fn deletes_env_and_containers_by_merge_key() {
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c1", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]},
                {"name": "c2", "$patch": "delete"},
            ]}}}}),
        );
        let c = containers(&out);
        assert_eq!(c.len(), 1);
        // New items go before live-only ones (upstream's interleaving, see above).
        assert_eq!(c[0]["env"], json!([{"name": "C", "value": "3"}, {"name": "B", "value": "2"}]));
        // Deleting what is not there is fine.
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "zz", "$patch": "delete"}]}}}}),
        );
        assert_eq!(containers(&out).len(), 2);
    }

    #[test]
    fn set_element_order_reorders() {
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}],
                "containers": [{"name": "c1", "image": "busybox:3"}],
            }}}}),
        );
        let c = containers(&out);
        assert_eq!((c[0]["name"].as_str(), c[1]["name"].as_str()), (Some("c2"), Some("c1")));
        assert_eq!(c[1]["image"], "busybox:3");
        // Order only, no list in the patch.
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}]}}}}),
        );
        assert_eq!(containers(&out)[0]["name"], "c2");
        // Patch items out of the order list's order are rejected.
        let e = apply(
            "apps",
            "v1",
            "Deployment",
            &two(),
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c1"}, {"name": "c2"}],
                "containers": [{"name": "c2", "image": "a"}, {"name": "c1", "image": "b"}],
            }}}}),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("The order in patch list:"), "{e}");
        assert_eq!(e.code(), 500);
        // A malformed directive key is a 400.
        let e = apply("apps", "v1", "Deployment", &two(), &json!({"spec": {"$setElementOrderX": []}})).unwrap_err();
        assert!(matches!(e, SmpError::BadPatchFormatForSetElementOrderList));
        assert_eq!(e.code(), 400);
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    /// Upstream's raw cases "preserve the order from the patch in a merging list 2" and "add map
    /// and delete map from merging list" (three-way result), on containers.
    #[test]
    fn upstream_ordering_cases() {
        let c = |names: &[&str]| dep(Value::Array(names.iter().map(|n| json!({"name": n, "image": "i"})).collect()));
        let out = deploy(
            &c(&["1", "2", "3"]),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}}}),
        );
        assert_eq!(names(&out["spec"]["template"]["spec"]["containers"]), ["2", "3", "1"]);
        let out = deploy(
            &c(&["1", "2", "4"]),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
                "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}],
            }}}}),
        );
        // Go's in-place deletion shows through the live list: 4 lands between 2 and 3.
        assert_eq!(names(&out["spec"]["template"]["spec"]["containers"]), ["2", "4", "3"]);
        let out =
            pod(json!({"metadata": {"finalizers": [1, 2, 3]}}), json!({"metadata": {"finalizers": [3, 1]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([2, 3, 1]));
    }

    #[test]
    fn set_element_order_on_primitive_list() {
        let original = json!({"metadata": {"name": "p", "finalizers": ["a", "b", "c"]}, "spec": {"containers": []}});
        let out = pod(
            original,
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a", "d"], "finalizers": ["d"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "b", "a", "d"]));
    }

    #[test]
    fn retain_keys_on_deployment_strategy_and_volume_source() {
        let mut original = two();
        original["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
        original["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "v", "emptyDir": {}}, {"name": "w", "hostPath": {"path": "/w"}}]);
        let out = deploy(
            &original,
            json!({"spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"spec": {"volumes": [
                    {"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}},
                ]}},
            }}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            out["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "hostPath": {"path": "/w"}}])
        );
        // A patched key missing from $retainKeys is a 400.
        let e = apply(
            "apps",
            "v1",
            "Deployment",
            &original,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}),
        )
        .unwrap_err();
        assert!(matches!(e, SmpError::BadPatchFormatForRetainKeys));
        assert_eq!(e.to_string(), "invalid patch format of retainKeys");
        let e = apply("apps", "v1", "Deployment", &original, &json!({"spec": {"strategy": {"$retainKeys": "type"}}}))
            .unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn delete_from_primitive_list_and_union_of_finalizers() {
        let original = json!({"metadata": {"name": "p", "finalizers": ["a", "b", "c"]}, "spec": {"containers": []}});
        let out =
            pod(original.clone(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        // Merge strategy on a primitive list: union; patch order for the patch's items, new ones
        // first.
        let out = pod(original.clone(), json!({"metadata": {"finalizers": ["d", "a"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["d", "a", "b", "c"]));
        let out = pod(original.clone(), json!({"metadata": {"finalizers": ["c"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        // Both at once: additions and deletions.
        let out = pod(
            original.clone(),
            json!({"metadata": {"finalizers": ["d"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["d", "b", "c"]));
        // Deleting from an absent list does nothing.
        let out = pod(
            json!({"metadata": {"name": "p"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert!(out["metadata"].get("finalizers").is_none());
        let e = pod(original, json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}})).unwrap_err();
        assert!(matches!(e, SmpError::BadPatchFormatForPrimitiveList));
    }

    #[test]
    fn patch_replace_on_a_map_and_on_a_list() {
        let out = deploy(&two(), json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "solo", "image": "x"}, {"$patch": "replace"}]}}}}),
        );
        assert_eq!(containers(&out), &vec![json!({"name": "solo", "image": "x"})]);
        // $patch: delete on a map empties it.
        let out = deploy(&two(), json!({"spec": {"selector": {"$patch": "delete"}}}));
        assert_eq!(out["spec"]["selector"], json!({}));
        // A whole-document replace.
        let out = deploy(&two(), json!({"$patch": "replace", "kind": "Deployment"}));
        assert_eq!(out, json!({"kind": "Deployment"}));
        // Unknown directives.
        let e = apply("apps", "v1", "Deployment", &two(), &json!({"metadata": {"labels": {"$patch": "merge"}}}))
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown patch type: merge in map: map[$patch:merge]");
        let e = apply(
            "apps",
            "v1",
            "Deployment",
            &two(),
            &json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "merging lists cannot yet be specified in the patch");
    }

    #[test]
    fn null_removes_a_key_and_is_dropped_elsewhere() {
        let out = deploy(
            &two(),
            json!({"metadata": {"labels": {"tier": null, "new": "1"}, "annotations": {"a": null, "b": "2"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "x", "new": "1"}));
        assert_eq!(out["metadata"]["annotations"], json!({"b": "2"}));
        let out = deploy(&two(), json!({"spec": {"replicas": null}}));
        assert!(out["spec"].get("replicas").is_none());
        // Nulls inside an added container are discarded, $patch maps dropped.
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c1", "resources": {"limits": {"cpu": "1", "memory": null}}}]}}}}),
        );
        assert_eq!(containers(&out)[0]["resources"], json!({"limits": {"cpu": "1"}}));
    }

    #[test]
    fn ports_merge_by_container_port() {
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "c2", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]},
            ]}}}}),
        );
        assert_eq!(
            containers(&out)[1]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let original = json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "image": "i", "args": ["a", "b"]}],
                "tolerations": [{"key": "k1", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}],
            },
        });
        let out = pod(
            original,
            json!({"spec": {
                "tolerations": [{"key": "k3", "operator": "Exists"}],
                "containers": [{"name": "c", "args": ["z"]}],
            }}),
        )
        .unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k3", "operator": "Exists"}]));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    }

    #[test]
    fn labels_and_configmap_data_merge() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}});
        let out = apply(
            "",
            "v1",
            "ConfigMap",
            &cm,
            &json!({"metadata": {"labels": {"b": "2"}}, "data": {"y": "3", "z": "4"}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(out["data"], json!({"x": "1", "y": "3", "z": "4"}));
    }

    #[test]
    fn nested_templates_and_rollout_restart_annotation() {
        let out = deploy(
            &two(),
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}),
        );
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(containers(&out).len(), 2);
        // A CronJob nests a job template with a pod template: containers merge there too.
        let cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}}}}});
        let out = apply(
            "batch",
            "v1",
            "CronJob",
            &cj,
            &json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "3"}]}}}}}}),
        )
        .unwrap();
        assert_eq!(
            out.pointer("/spec/jobTemplate/spec/template/spec/containers").unwrap(),
            &json!([{"name": "a", "image": "1"}, {"name": "b", "image": "3"}])
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let original = json!({"metadata": {"name": "c", "ownerReferences": [
            {"uid": "1", "name": "a", "kind": "K", "apiVersion": "v1"}]}});
        let out = apply(
            "",
            "v1",
            "ConfigMap",
            &original,
            &json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b", "kind": "K", "apiVersion": "v1"}]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["ownerReferences"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn errors_are_upstream_like() {
        // Missing merge key.
        let e = apply(
            "apps",
            "v1",
            "Deployment",
            &two(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "map: map[image:nginx] does not contain declared merge key: name");
        // Custom resources.
        let e = apply("example.com", "v1", "Widget", &json!({}), &json!({})).unwrap_err();
        assert!(matches!(e, SmpError::UnsupportedKind { .. }));
        assert_eq!(e.code(), 415);
        // Not an object.
        let e = apply("", "v1", "ConfigMap", &json!({}), &json!([1])).unwrap_err();
        assert_eq!(e.to_string(), "json: cannot unmarshal array into Go value of type map[string]interface {}");
        assert_eq!(e.code(), 400);
        // Lists of lists.
        let e = apply(
            "",
            "v1",
            "Pod",
            &json!({"metadata": {"finalizers": ["a"]}}),
            &json!({"metadata": {"finalizers": [["b"]]}}),
        )
        .unwrap_err();
        assert!(matches!(e, SmpError::Other(_)), "{e}");
        let e = apply(
            "",
            "v1",
            "Pod",
            &json!({"metadata": {"finalizers": [["a"]]}}),
            &json!({"metadata": {"finalizers": [["b"]]}}),
        )
        .unwrap_err();
        assert!(matches!(e, SmpError::NoListOfLists));
        assert_eq!(e.code(), 422);
        // A null patch changes nothing.
        assert_eq!(apply("apps", "v1", "Deployment", &two(), &Value::Null).unwrap(), two());
    }

    #[test]
    fn type_changes_take_the_patch_value() {
        let out = deploy(&two(), json!({"spec": {"replicas": "3", "selector": "x"}}));
        assert_eq!(out["spec"]["replicas"], "3");
        assert_eq!(out["spec"]["selector"], "x");
    }

    #[test]
    fn go_formatting() {
        assert_eq!(go_fmt(&json!({"b": [1, 2.5, 3.0], "a": null, "c": true})), "map[a:<nil> b:[1 2.5 3] c:true]");
        assert_eq!(
            deduplicate_scalars(vec![json!(1), json!(2), json!(1), json!(3), json!(2)]),
            vec![json!(1), json!(2), json!(3)]
        );
    }
}
