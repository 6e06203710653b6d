//! Approximate managedFields and server-side-apply ownership
//! (docs/reference/kubernetes-api.md#object-metadata,
//! docs/reference/kubernetes-api.md#server-side-apply).
//!
//! Ownership is tracked per leaf path. Objects are granular, lists are atomic except
//! `metadata.finalizers` (a set) and lists whose schema says `x-kubernetes-list-type: set`
//! is NOT honoured (treated atomic). Paths are stored as FieldsV1 (`f:spec` / `v:"x"`).

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub type Path = Vec<String>;

const SKIP_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// Leaf paths of an object with their values.
pub fn leaves(obj: &Value) -> BTreeMap<Path, Value> {
    let mut out = BTreeMap::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(mm) = v {
                    for (mk, mv) in mm {
                        if SKIP_META.contains(&mk.as_str()) {
                            continue;
                        }
                        walk(mv, vec!["f:metadata".into(), format!("f:{mk}")], &mut out);
                    }
                }
                continue;
            }
            walk(v, vec![format!("f:{k}")], &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: Path, out: &mut BTreeMap<Path, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, cv) in m {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(cv, p, out);
            }
        }
        Value::Array(a) if path == ["f:metadata", "f:finalizers"] => {
            for it in a {
                let mut p = path.clone();
                p.push(format!("v:{it}"));
                out.insert(p, it.clone());
            }
        }
        _ => {
            out.insert(path, v.clone());
        }
    }
}

/// Remove the value at a leaf path from an object.
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        let key = seg.strip_prefix("f:").unwrap_or(seg);
        match cur.get_mut(key) {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(v) = last.strip_prefix("v:") {
        if let (Value::Array(a), Ok(val)) = (&mut *cur, serde_json::from_str::<Value>(v)) {
            a.retain(|x| *x != val);
        }
    } else if let Value::Object(m) = cur {
        m.remove(last.strip_prefix("f:").unwrap_or(last));
    }
}

/// Merge an applied configuration into a live object: objects merge, lists replace (finalizers
/// are a set union), `null` removes.
pub fn merge_applied(live: &mut Value, applied: &Value, path: &mut Vec<String>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                if av.is_null() {
                    l.remove(k);
                    continue;
                }
                path.push(k.clone());
                match l.get_mut(k) {
                    Some(lv) if lv.is_object() && av.is_object() => merge_applied(lv, av, path),
                    Some(Value::Array(la)) if path.as_slice() == ["metadata", "finalizers"] => {
                        if let Value::Array(aa) = av {
                            for it in aa {
                                if !la.contains(it) {
                                    la.push(it.clone());
                                }
                            }
                        }
                    }
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                path.pop();
            }
        }
        (l, a) => *l = a.clone(),
    }
}

pub fn path_string(p: &[String]) -> String {
    let mut s = String::new();
    for seg in p {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// One managedFields entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: BTreeSet<Path>,
}

fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut cur = &mut root;
        for seg in p {
            let e = cur.entry(seg.clone()).or_insert_with(|| json!({}));
            cur = e.as_object_mut().expect("object");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    if let Value::Object(m) = v {
        if m.is_empty() && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        for (k, cv) in m {
            if k == "." {
                continue;
            }
            prefix.push(k.clone());
            from_fields_v1(cv, prefix, out);
            prefix.pop();
        }
    }
}

pub fn parse_entries(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(a)) = obj.pointer("/metadata/managedFields") else {
        return vec![];
    };
    a.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                from_fields_v1(f, &mut vec![], &mut fields);
            }
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields,
            }
        })
        .collect()
}

pub fn render_entries(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(e.operation));
                m.insert("apiVersion".into(), json!(e.api_version));
                m.insert("time".into(), json!(e.time));
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), to_fields_v1(&e.fields));
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Who is writing and how.
#[derive(Debug, Clone)]
pub enum Writer {
    Update {
        manager: String,
    },
    Apply {
        manager: String,
        applied: BTreeSet<Path>,
    },
}

/// Compute the new managedFields for `new` after a write by `writer`.
pub fn update_entries(
    old: Option<&Value>,
    new: &Value,
    writer: &Writer,
    api_version: &str,
    subresource: &str,
    now: &str,
) -> Vec<Entry> {
    let mut entries = old.map(parse_entries).unwrap_or_default();
    let old_leaves = old.map(leaves).unwrap_or_default();
    let new_leaves = leaves(new);
    let (manager, op) = match writer {
        Writer::Update { manager } => (manager.clone(), "Update"),
        Writer::Apply { manager, .. } => (manager.clone(), "Apply"),
    };
    let candidate: Vec<&Path> = match writer {
        Writer::Update { .. } => new_leaves.keys().collect(),
        Writer::Apply { applied, .. } => applied.iter().collect(),
    };
    let changed: BTreeSet<Path> = candidate
        .into_iter()
        .filter(|p| old_leaves.get(*p) != new_leaves.get(*p))
        .cloned()
        .collect();
    for e in entries.iter_mut() {
        let own = e.manager == manager && e.operation == op && e.subresource == subresource;
        if !own {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let idx = entries
        .iter()
        .position(|e| e.manager == manager && e.operation == op && e.subresource == subresource);
    let target = match idx {
        Some(i) => &mut entries[i],
        None => {
            entries.push(Entry {
                manager: manager.clone(),
                operation: op.into(),
                api_version: api_version.into(),
                time: now.into(),
                subresource: subresource.into(),
                fields: BTreeSet::new(),
            });
            entries.last_mut().expect("pushed")
        }
    };
    match writer {
        Writer::Update { .. } => {
            if !changed.is_empty() {
                target.fields.extend(changed.iter().cloned());
                target.time = now.into();
                target.api_version = api_version.into();
            }
        }
        Writer::Apply { applied, .. } => {
            if target.fields != *applied {
                target.time = now.into();
            }
            target.fields = applied.clone();
            target.api_version = api_version.into();
        }
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| new_leaves.contains_key(p));
    }
    entries.retain(|e| !e.fields.is_empty());
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_ownership() {
        let old = json!({"metadata": {"name": "x", "finalizers": ["a"]}, "spec": {"a": 1, "b": {"c": 2}}});
        let e = update_entries(
            None,
            &old,
            &Writer::Update {
                manager: "m1".into(),
            },
            "v1",
            "",
            "t",
        );
        assert_eq!(e.len(), 1);
        let mut obj = old.clone();
        obj["metadata"]["managedFields"] = render_entries(&e);
        assert_eq!(parse_entries(&obj)[0].fields, e[0].fields);
        let mut new = obj.clone();
        new["spec"]["a"] = json!(5);
        let e2 = update_entries(
            Some(&obj),
            &new,
            &Writer::Update {
                manager: "m2".into(),
            },
            "v1",
            "",
            "t",
        );
        assert_eq!(e2.len(), 2);
        assert!(e2[1]
            .fields
            .contains(&vec!["f:spec".to_string(), "f:a".to_string()]));
        assert!(!e2[0]
            .fields
            .contains(&vec!["f:spec".to_string(), "f:a".to_string()]));
        assert_eq!(path_string(&["f:spec".into(), "f:a".into()]), ".spec.a");
    }
}
