//! The Kubernetes protobuf encoding of the two built-in types users create with `kubectl create`
//! in the sandbox: Secrets and ConfigMaps.
//!
//! kubectl's typed client sends built-in types as `application/vnd.kubernetes.protobuf` and does
//! not retry as JSON after a 415 (client-go `rest/client.go` falls back only for CBOR), so
//! `kubectl create secret generic` needs this. The wire format: the 4-byte prefix `k8s\0`, then a
//! `runtime.Unknown` whose `raw` is the object's message (apimachinery
//! `pkg/runtime/serializer/protobuf/protobuf.go`, `protoEncodingPrefix`; `pkg/runtime/generated.proto`).
//! Field numbers are those of `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`.
//!
//! Only the metadata a create carries is modelled. A body with any other field (owner
//! references, finalizers, ...) is refused rather than stored without it: re-encoding what was
//! decoded must give back as many bytes (inferred: a safety check of the emulator's, not server
//! behaviour).

use base64::Engine;
use prost::Message;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const PREFIX: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    content_type: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

/// The fields Go's marshaller always writes (strings, generation, creationTimestamp) are here
/// so the length check accepts them; selfLink, generation and creationTimestamp are the
/// server's to set, so they are not passed on.
#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "4")]
    self_link: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    type_: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

/// Why a protobuf body was not turned into JSON.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Not a protobuf the emulator models (another kind, or fields it would drop).
    Unsupported,
    /// Not valid protobuf at all (the server's 400 "error decoding").
    Malformed(String),
}

/// The JSON object a protobuf Secret or ConfigMap body stands for.
pub fn to_json(body: &[u8]) -> Result<Value, Refusal> {
    let rest = body
        .strip_prefix(PREFIX)
        .ok_or_else(|| Refusal::Malformed("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into()))?;
    let unknown = Unknown::decode(rest).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let tm = unknown.type_meta.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let (api_version, kind) = (
        tm.api_version.unwrap_or_default(),
        tm.kind.unwrap_or_default(),
    );
    if api_version != "v1" {
        return Err(Refusal::Unsupported);
    }
    let mut obj = match kind.as_str() {
        "Secret" => secret(&raw)?,
        "ConfigMap" => config_map(&raw)?,
        _ => return Err(Refusal::Unsupported),
    };
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

fn decode_all<M: Message + Default>(raw: &[u8]) -> Result<M, Refusal> {
    let m = M::decode(raw).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if m.encoded_len() != raw.len() {
        return Err(Refusal::Unsupported);
    }
    Ok(m)
}

fn b64(bytes: &BTreeMap<String, Vec<u8>>) -> Value {
    let e = base64::engine::general_purpose::STANDARD;
    bytes
        .iter()
        .map(|(k, v)| (k.clone(), json!(e.encode(v))))
        .collect::<Map<_, _>>()
        .into()
}

fn put<T: serde::Serialize>(obj: &mut Map<String, Value>, key: &str, value: T, present: bool) {
    if present {
        obj.insert(key.into(), json!(value));
    }
}

fn metadata(m: Option<ObjectMeta>) -> Value {
    let m = m.unwrap_or_default();
    let mut o = Map::new();
    for (key, value) in [
        ("name", m.name),
        ("generateName", m.generate_name),
        ("namespace", m.namespace),
        // kept so an update's optimistic concurrency and uid precondition still apply
        ("uid", m.uid),
        ("resourceVersion", m.resource_version),
    ] {
        let value = value.unwrap_or_default();
        put(&mut o, key, &value, !value.is_empty());
    }
    put(&mut o, "labels", &m.labels, !m.labels.is_empty());
    put(
        &mut o,
        "annotations",
        &m.annotations,
        !m.annotations.is_empty(),
    );
    Value::Object(o)
}

fn secret(raw: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let s: Secret = decode_all(raw)?;
    let mut o = Map::new();
    o.insert("metadata".into(), metadata(s.metadata));
    put(&mut o, "data", b64(&s.data), !s.data.is_empty());
    put(
        &mut o,
        "stringData",
        &s.string_data,
        !s.string_data.is_empty(),
    );
    let ty = s.type_.unwrap_or_default();
    put(&mut o, "type", &ty, !ty.is_empty());
    put(&mut o, "immutable", s.immutable, s.immutable.is_some());
    Ok(o)
}

fn config_map(raw: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let c: ConfigMap = decode_all(raw)?;
    let mut o = Map::new();
    o.insert("metadata".into(), metadata(c.metadata));
    put(&mut o, "data", &c.data, !c.data.is_empty());
    let binary = b64(&c.binary_data);
    put(&mut o, "binaryData", binary, !c.binary_data.is_empty());
    put(&mut o, "immutable", c.immutable, c.immutable.is_some());
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field `tag` with a length-delimited payload (wire type 2); all payloads here are < 128.
    fn ld(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![tag << 3 | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [ld(1, b"v1"), ld(2, kind.as_bytes())].concat();
        let unknown = [ld(1, &type_meta), ld(2, raw), ld(3, b""), ld(4, b"")].concat();
        [PREFIX, &unknown].concat()
    }

    /// What Go's marshaller writes for ObjectMeta{name: x}: every string, generation 0 and an
    /// empty creationTimestamp.
    fn meta_x(extra: &[u8]) -> Vec<u8> {
        let m = [
            ld(1, b"x"),
            ld(2, b""),
            ld(3, b""),
            ld(4, b""),
            ld(5, b""),
            ld(6, b""),
            vec![7 << 3, 0],
            ld(8, b""),
            extra.to_vec(),
        ]
        .concat();
        ld(1, &m)
    }

    #[test]
    fn update_keeps_resource_version_and_uid() {
        let m = [ld(1, b"x"), ld(5, b"u-1"), ld(6, b"42")].concat();
        let v = to_json(&envelope("Secret", &ld(1, &m))).unwrap();
        assert_eq!(
            v["metadata"],
            json!({"name": "x", "uid": "u-1", "resourceVersion": "42"})
        );
    }

    #[test]
    fn secret_as_kubectl_create_sends_it() {
        let raw = [
            meta_x(&[]),
            ld(2, &[ld(1, b"k"), ld(2, b"v")].concat()),
            ld(3, b"Opaque"),
        ]
        .concat();
        let v = to_json(&envelope("Secret", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
                   "data": {"k": "dg=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn config_map_with_labels() {
        let labels = ld(11, &[ld(1, b"app"), ld(2, b"demo")].concat());
        let raw = [meta_x(&labels), ld(2, &[ld(1, b"a"), ld(2, b"b")].concat())].concat();
        let v = to_json(&envelope("ConfigMap", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "x", "labels": {"app": "demo"}}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn fields_it_would_drop_other_kinds_and_garbage_are_refused() {
        let finalizer = ld(14, b"example.test/f");
        let raw = meta_x(&finalizer);
        assert_eq!(
            to_json(&envelope("Secret", &raw)),
            Err(Refusal::Unsupported)
        );
        assert_eq!(
            to_json(&envelope("Pod", &meta_x(&[]))),
            Err(Refusal::Unsupported)
        );
        assert!(matches!(
            to_json(b"k8s\0\xff\xff"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(to_json(b"{}"), Err(Refusal::Malformed(_))));
    }
}
