//! core/v1 `events` as a read-only view of the stored events.k8s.io/v1 Events.
//!
//! The apiserver keeps one Event store and serves it in both shapes. The emulator stores the
//! events.k8s.io/v1 form (what kube-rs' `Recorder` writes) and converts on the way out for
//! `/api/v1/.../events`, which is what `kubectl describe`, `kubectl get events` and
//! `kubectl events` read. Writes through core/v1 are not supported (405).
//! Conversion: `pkg/apis/events/v1/conversion.go`.

use serde_json::{json, Map, Value};

/// An events.k8s.io/v1 Event in its core/v1 shape (apiVersion `v1`, kind `Event`).
pub fn to_core(e: &Value) -> Value {
    let get = |k: &str| e.get(k).cloned().filter(|v| !v.is_null());
    let mut o = Map::new();
    o.insert("apiVersion".into(), json!("v1"));
    o.insert("kind".into(), json!("Event"));
    o.insert(
        "metadata".into(),
        e.get("metadata").cloned().unwrap_or(json!({})),
    );
    o.insert(
        "involvedObject".into(),
        get("regarding").unwrap_or(json!({})),
    );
    for k in ["reason", "type", "action", "reportingInstance"] {
        if let Some(v) = get(k) {
            o.insert(k.into(), v);
        }
    }
    if let Some(v) = get("note") {
        o.insert("message".into(), v);
    }
    o.insert(
        "source".into(),
        get("deprecatedSource").unwrap_or(json!({})),
    );
    o.insert(
        "firstTimestamp".into(),
        get("deprecatedFirstTimestamp").unwrap_or(Value::Null),
    );
    o.insert(
        "lastTimestamp".into(),
        get("deprecatedLastTimestamp").unwrap_or(Value::Null),
    );
    if let Some(c) = get("deprecatedCount").filter(|c| c.as_i64() != Some(0)) {
        o.insert("count".into(), c);
    }
    o.insert("eventTime".into(), get("eventTime").unwrap_or(Value::Null));
    if let Some(v) = get("series") {
        o.insert("series".into(), v);
    }
    if let Some(v) = get("related") {
        o.insert("related".into(), v);
    }
    o.insert(
        "reportingComponent".into(),
        json!(e
            .get("reportingController")
            .and_then(Value::as_str)
            .unwrap_or("")),
    );
    if !o.contains_key("reportingInstance") {
        o.insert("reportingInstance".into(), json!(""));
    }
    Value::Object(o)
}

/// Field labels of core/v1 events (`pkg/apis/core/v1/conversion.go`).
pub const CORE_FIELD_LABELS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Field labels of events.k8s.io/v1 events.
pub const V1_FIELD_LABELS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

/// A core/v1 field label as a path into the stored events.k8s.io/v1 object.
pub fn stored_field(core_label: &str) -> String {
    if let Some(rest) = core_label.strip_prefix("involvedObject.") {
        return format!("regarding.{rest}");
    }
    match core_label {
        "reportingComponent" => "reportingController".into(),
        "source" => "deprecatedSource.component".into(),
        other => other.into(),
    }
}

/// `formatEventSource` of kubectl's and the apiserver's printers.
pub fn format_source(core: &Value) -> String {
    let s = |p: &str| core.pointer(p).and_then(Value::as_str).unwrap_or("");
    let first = |a: &'static str, b: &'static str| {
        let x = s(a);
        if x.is_empty() {
            s(b).to_string()
        } else {
            x.to_string()
        }
    };
    let component = first("/source/component", "/reportingComponent");
    let instance = first("/source/host", "/reportingInstance");
    if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_a_recorder_event() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "x.1", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "type": "Normal", "reason": "Created", "action": "Reconcile", "note": "made it",
            "regarding": {"kind": "InferenceEndpoint", "name": "x", "namespace": "default"},
            "reportingController": "esinference.io/op", "reportingInstance": "pod-0"
        });
        let c = to_core(&ev);
        assert_eq!(c["apiVersion"], "v1");
        assert_eq!(c["message"], "made it");
        assert_eq!(c["involvedObject"]["name"], "x");
        assert_eq!(c["reportingComponent"], "esinference.io/op");
        assert_eq!(c["source"], json!({}));
        assert!(c["firstTimestamp"].is_null());
        assert_eq!(c["series"]["count"], 2);
        assert_eq!(format_source(&c), "esinference.io/op, pod-0");
        assert_eq!(stored_field("involvedObject.uid"), "regarding.uid");
        assert_eq!(stored_field("source"), "deprecatedSource.component");
    }
}
