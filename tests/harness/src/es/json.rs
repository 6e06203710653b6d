//! Small JSON helpers: key-ordered rendering (ES emits keys in a fixed order,
//! docs/reference/elasticsearch-inference-api.md#response-shape) without enabling
//! `serde_json/preserve_order` for the whole workspace, and Java-style `Map.toString()`
//! formatting used inside several ES error messages (unknown settings, update extra keys:
//! docs/reference/elasticsearch-inference-api.md#error-table).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// An order-preserving JSON tree used only for rendering responses.
#[derive(Clone, Debug)]
pub(crate) enum J {
    V(Value),
    O(Vec<(String, J)>),
    A(Vec<J>),
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::V(v) => v.serialize(s),
            J::O(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            J::A(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    q.serialize_element(i)?;
                }
                q.end()
            }
        }
    }
}

impl J {
    pub(crate) fn s(v: impl Into<String>) -> J {
        J::V(Value::String(v.into()))
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialising JSON never fails")
    }

    /// Plain (key-sorted) `serde_json::Value` of this tree.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            J::V(v) => v.clone(),
            J::O(f) => Value::Object(f.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
            J::A(a) => Value::Array(a.iter().map(J::to_value).collect()),
        }
    }
}

/// Render `map` with the keys of `order` first (in that order), then the remaining keys sorted.
pub(crate) fn ordered(map: &Map<String, Value>, order: &[&str]) -> J {
    let mut out = Vec::with_capacity(map.len());
    for k in order {
        if let Some(v) = map.get(*k) {
            out.push(((*k).to_string(), J::V(v.clone())));
        }
    }
    for (k, v) in map {
        if !order.contains(&k.as_str()) {
            out.push((k.clone(), J::V(v.clone())));
        }
    }
    J::O(out)
}

/// Java `Object.toString()` of a value parsed from JSON (`{a=b, c=[1, 2]}` style).
pub(crate) fn java(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(java).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => java_map(m),
    }
}

/// Java `Map.toString()`: `{k1=v1, k2=v2}`. Java's HashMap order is unspecified; we use key order.
pub(crate) fn java_map(m: &Map<String, Value>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", java(v))).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Java `Set`/`List` `toString()`: `[a, b]`.
pub(crate) fn java_list<S: AsRef<str>>(items: &[S]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn java_formatting() {
        let v = json!({"a": "b", "n": 1, "l": [1, "x"], "o": {"k": null}});
        assert_eq!(java(&v), "{a=b, l=[1, x], n=1, o={k=null}}");
        assert_eq!(java_list(&["p1", "p2"]), "[p1, p2]");
    }

    #[test]
    fn ordered_rendering_keeps_order() {
        let m = json!({"z": 1, "b": 2, "a": 3}).as_object().unwrap().clone();
        let s = String::from_utf8(ordered(&m, &["z", "b"]).to_bytes()).unwrap();
        assert_eq!(s, r#"{"z":1,"b":2,"a":3}"#);
    }
}
