//! JSON patch with the apiserver's (evanphx/json-patch v4) semantics and RFC 7386 merge patch.
//!
//! Unlike the `json-patch` crate, `test` with `"value": null` on a missing key whose parent exists
//! succeeds (docs/reference/kubernetes-api.md#kube-rs-pitfalls, item 2), which kube-rs's
//! `finalizer()` relies on.

use serde_json::Value;

fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(vec![]);
    }
    if !p.starts_with('/') {
        return Err(format!("invalid pointer {p:?}"));
    }
    Ok(p[1..]
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg)?,
            Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn parse_index(seg: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if seg == "-" && allow_end {
        return Ok(len);
    }
    let i: usize = seg
        .parse()
        .map_err(|_| format!("invalid array index {seg:?}"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    let parent = get_mut(doc, parent).ok_or("add operation does not apply: doc is missing path")?;
    match parent {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = parse_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err("add operation does not apply: parent is not a container".into()),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the root".into());
    };
    let parent =
        get_mut(doc, parent).ok_or("remove operation does not apply: doc is missing path")?;
    match parent {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("remove operation does not apply: doc is missing key: {last}")),
        Value::Array(a) => {
            let i = parse_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err("remove operation does not apply".into()),
    }
}

fn replace(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let target =
        get_mut(doc, path).ok_or("replace operation does not apply: doc is missing key")?;
    *target = value;
    Ok(())
}

/// Apply an RFC 6902 patch. Errors carry the library-ish text, which the server drops.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    let ops = patch.as_array().ok_or("patch is not an array")?;
    let mut doc = doc.clone();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).ok_or("missing op")?;
        let path = parse_pointer(
            op.get("path")
                .and_then(Value::as_str)
                .ok_or("missing path")?,
        )?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| "missing value".to_string())
        };
        match kind {
            "add" => add(&mut doc, &path, value()?)?,
            "remove" => {
                remove(&mut doc, &path)?;
            }
            "replace" => replace(&mut doc, &path, value()?)?,
            "move" => {
                let from = parse_pointer(
                    op.get("from")
                        .and_then(Value::as_str)
                        .ok_or("missing from")?,
                )?;
                let v = remove(&mut doc, &from)?;
                add(&mut doc, &path, v)?;
            }
            "copy" => {
                let from = parse_pointer(
                    op.get("from")
                        .and_then(Value::as_str)
                        .ok_or("missing from")?,
                )?;
                let v = get(&doc, &from).cloned().ok_or("copy: missing from")?;
                add(&mut doc, &path, v)?;
            }
            "test" => {
                let expected = op.get("value").cloned().unwrap_or(Value::Null);
                let actual = match get(&doc, &path) {
                    Some(v) => v.clone(),
                    None => {
                        // evanphx v4: a missing key whose parent exists counts as null.
                        let parent_ok = path
                            .split_last()
                            .map(|(_, p)| {
                                matches!(
                                    get(&doc, p),
                                    Some(Value::Object(_)) | Some(Value::Array(_))
                                )
                            })
                            .unwrap_or(false);
                        if !parent_ok {
                            return Err("test operation does not apply: missing parent".into());
                        }
                        Value::Null
                    }
                };
                if actual != expected {
                    return Err("testing value failed".into());
                }
            }
            other => return Err(format!("unexpected op {other:?}")),
        }
    }
    Ok(doc)
}

/// RFC 7386 merge patch: `null` deletes, objects merge, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Default::default());
        }
        let t = target.as_object_mut().expect("object");
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_null_on_missing_key_passes() {
        let doc = json!({"metadata": {"name": "x"}});
        let p = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = apply_json_patch(&doc, &p).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        // test with a non-null value on a missing key fails
        let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["a"]}]);
        assert!(apply_json_patch(&doc, &p).is_err());
        // missing parent fails
        let p = json!([{"op": "test", "path": "/nope/x", "value": null}]);
        assert!(apply_json_patch(&doc, &p).is_err());
    }

    #[test]
    fn ops() {
        let doc = json!({"a": [1, 2, 3], "b": {"c": 1}});
        let p = json!([
            {"op": "add", "path": "/a/-", "value": 4},
            {"op": "remove", "path": "/a/0"},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "copy", "from": "/b", "path": "/d"},
            {"op": "move", "from": "/d/c", "path": "/e"},
            {"op": "test", "path": "/a", "value": [2, 3, 4]}
        ]);
        let out = apply_json_patch(&doc, &p).unwrap();
        assert_eq!(out, json!({"a": [2, 3, 4], "b": {"c": 2}, "d": {}, "e": 2}));
        assert!(
            apply_json_patch(&doc, &json!([{"op": "replace", "path": "/zz", "value": 1}])).is_err()
        );
        assert!(apply_json_patch(&doc, &json!([{"op": "remove", "path": "/a/9"}])).is_err());
    }

    #[test]
    fn merge() {
        let mut t = json!({"a": 1, "b": {"c": 1, "d": 2}, "l": [1]});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "l": [2, 3]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 2}, "l": [2, 3]}));
    }
}
