//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,…`.
//!
//! Custom resources follow the apiextensions-apiserver table convertor: a `Name` column, then
//! the version's `additionalPrinterColumns` (or a default `Age` column when it has none),
//! evaluated with Kubernetes' JSONPath (first result only, missing keys give an empty cell).
//! `date` columns are rendered server-side as a human-readable age ("5m", "3h2m"), `string`
//! columns as text, `integer`/`number`/`boolean` as JSON values. Built-in kinds get the
//! columns of the apiserver's built-in printers (`pkg/printers/internalversion`). Every cell
//! is sent (the server prints "wide"); kubectl hides the columns whose `priority` is above 0
//! unless `-o wide`.
//!
//! Each row's `object` is a `PartialObjectMetadata` unless `?includeObject=Object` (the whole
//! object) or `None` (omitted), as in the apiserver's `asTable`.

use super::errors::ApiError;
use super::events;
use super::jsonpath::JsonPath;
use super::store::{Class, ResDef};
use serde_json::{json, Value};

/// What a request asked for: the Table's group version and what each row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRequest {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub api_version: &'static str,
    pub include: Include,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    Metadata,
    Object,
    None,
}

/// The Table group version the Accept header prefers, if its first acceptable media type is
/// a Table; `None` when the client prefers plain JSON (or asks for no Table at all).
pub fn negotiate(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(mt.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        match (as_, g, v) {
            ("", _, _) => return None,
            ("Table", "meta.k8s.io", "v1") => return Some("meta.k8s.io/v1"),
            ("Table", "meta.k8s.io", "v1beta1") => return Some("meta.k8s.io/v1beta1"),
            _ => {}
        }
    }
    None
}

/// Parse `?includeObject=`.
pub fn include_param(v: Option<&str>) -> Result<Include, ApiError> {
    match v.unwrap_or("") {
        "" | "Metadata" => Ok(Include::Metadata),
        "Object" => Ok(Include::Object),
        "None" => Ok(Include::None),
        other => Err(ApiError::bad_request(format!(
            "unrecognized includeObject value: {other:?}"
        ))),
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

fn col(name: &str, typ: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": typ, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col("Name", "string", "name", NAME_DESC, 0)
}

fn age_col() -> Value {
    col("Age", "string", "", AGE_DESC, 0)
}

/// The printer columns of a custom resource version, defaulted like the apiserver does.
fn crd_columns(rd: &ResDef) -> Vec<Value> {
    if rd.printer_columns.is_empty() {
        vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})]
    } else {
        rd.printer_columns.clone()
    }
}

/// `columnDefinitions` for a resource.
pub fn column_definitions(rd: &ResDef) -> Vec<Value> {
    let s = |k: &str, c: &Value| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match rd.class {
        Class::Custom => {
            let mut cols = vec![name_col()];
            for c in crd_columns(rd) {
                let path = s("jsonPath", &c);
                let desc = match s("description", &c) {
                    d if d.is_empty() => {
                        format!("Custom resource definition column (in JSONPath format): {path}")
                    }
                    d => d,
                };
                cols.push(col(
                    &s("name", &c),
                    &s("type", &c),
                    &s("format", &c),
                    &desc,
                    c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                ));
            }
            cols
        }
        Class::Namespace => vec![
            name_col(),
            col("Status", "string", "", "The status of the namespace", 0),
            age_col(),
        ],
        Class::Secret => vec![
            name_col(),
            col("Type", "string", "", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types", 0),
            col("Data", "string", "", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'.", 0),
            age_col(),
        ],
        Class::ConfigMap => vec![
            name_col(),
            col("Data", "string", "", "Data contains the configuration data.", 0),
            age_col(),
        ],
        Class::Lease => vec![
            name_col(),
            col("Holder", "string", "", "holderIdentity contains the identity of the holder of a current lease.", 0),
            age_col(),
        ],
        Class::Crd => vec![
            name_col(),
            col("Created At", "date", "", AGE_DESC, 0),
        ],
        Class::Event | Class::CoreEvent => vec![
            col("Last Seen", "string", "", "The time at which the most recent occurrence of this event was recorded.", 0),
            col("Type", "string", "", "Type of this event (Normal, Warning), new types could be added in the future", 0),
            col("Reason", "string", "", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
            col("Object", "string", "", "The object that this event is about.", 0),
            col("Subobject", "string", "", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].", 1),
            col("Source", "string", "", "The component reporting this event. Should be a short machine understandable string.", 1),
            col("Message", "string", "", "A human-readable description of the status of this operation.", 0),
            col("First Seen", "string", "", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
            col("Count", "string", "", "The number of times this event has occurred.", 1),
            col("Name", "string", "name", NAME_DESC, 1),
        ],
    }
}

/// Go's `duration.HumanDuration` (`k8s.io/apimachinery/pkg/util/duration`).
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A timestamp field rendered as an age: `<unknown>` when absent, `<invalid>` when unparsable.
fn age_of(v: Option<&Value>, now: chrono::DateTime<chrono::Utc>) -> String {
    match v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => "<unknown>".into(),
        Some(s) => match parse_time(s) {
            Some(t) => human_duration(now - t),
            None => "<invalid>".into(),
        },
    }
}

/// How Go's `fmt` prints a JSON number decoded the Kubernetes way (int64, else float64 `%v`).
fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 {
        return "0".into();
    }
    let exp = f.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    // %e form: mantissa, `e`, sign, at least two exponent digits.
    let e = format!("{f:e}");
    match e.split_once('e') {
        Some((m, x)) => {
            let (sign, digits) = match x.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', x),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => e,
    }
}

/// A `string` column's text, as `jsonpath.PrintResults` writes one value.
fn text_cell(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => json!(s),
        Value::Bool(b) => json!(b.to_string()),
        Value::Number(n) => json!(go_number(n)),
        other => json!(other.to_string()),
    }
}

/// `cellForJSONValue` of the apiextensions table convertor.
fn typed_cell(typ: &str, v: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
    match (typ, v) {
        ("integer", Value::Number(n)) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        ("number", Value::Number(n)) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match parse_time(s) {
            Some(t) => json!(human_duration(now - t)),
            None => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

fn str_at<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn count_keys(o: &Value, keys: &[&str]) -> usize {
    keys.iter()
        .filter_map(|k| o.get(*k).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

/// The cells of one row (every column, whatever its priority).
pub fn cells(rd: &ResDef, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let name = json!(str_at(obj, "/metadata/name"));
    let age = || json!(age_of(obj.pointer("/metadata/creationTimestamp"), now));
    match rd.class {
        Class::Custom => {
            let mut out = vec![name];
            for c in crd_columns(rd) {
                let typ = c.get("type").and_then(Value::as_str).unwrap_or("string");
                let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
                let v = JsonPath::parse(path)
                    .ok()
                    .and_then(|p| p.first(obj).cloned());
                out.push(match v {
                    None => Value::Null,
                    Some(v) if typ == "string" => text_cell(&v),
                    Some(v) => typed_cell(typ, &v, now),
                });
            }
            out
        }
        Class::Namespace => vec![name, json!(str_at(obj, "/status/phase")), age()],
        Class::Secret => vec![
            name,
            json!(str_at(obj, "/type")),
            json!(count_keys(obj, &["data"])),
            age(),
        ],
        Class::ConfigMap => vec![name, json!(count_keys(obj, &["data", "binaryData"])), age()],
        Class::Lease => vec![name, json!(str_at(obj, "/spec/holderIdentity")), age()],
        Class::Crd => {
            let created = obj
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(parse_time)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            vec![name, json!(created)]
        }
        Class::Event => event_cells(&events::to_core(obj), now),
        Class::CoreEvent => event_cells(obj, now),
    }
}

/// `printEvent` (wide) for a core/v1 Event.
fn event_cells(e: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let ts = |k: &str| e.get(k).filter(|v| !v.is_null());
    let first_seen = match ts("firstTimestamp") {
        Some(t) => age_of(Some(t), now),
        None => age_of(ts("eventTime"), now),
    };
    let mut last_seen = match ts("lastTimestamp") {
        Some(t) => age_of(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last_seen = age_of(series.get("lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(e, "/involvedObject/kind").to_lowercase();
    let target = match str_at(e, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    vec![
        json!(last_seen),
        json!(str_at(e, "/type")),
        json!(str_at(e, "/reason")),
        json!(target),
        json!(str_at(e, "/involvedObject/fieldPath")),
        json!(events::format_source(e)),
        json!(str_at(e, "/message").trim()),
        json!(first_seen),
        json!(count),
        json!(str_at(e, "/metadata/name")),
    ]
}

fn row_object(obj: &Value, req: &TableRequest) -> Option<Value> {
    match req.include {
        Include::Object => Some(obj.clone()),
        Include::None => None,
        Include::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": req.api_version,
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

/// Turn a GET response (an object or a list, already in its output form) into a Table.
pub fn to_table(rd: &ResDef, body: &Value, req: &TableRequest) -> Value {
    let now = chrono::Utc::now();
    let (objs, mut md): (Vec<&Value>, Value) = match body.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.iter().collect(),
            body.get("metadata").cloned().unwrap_or(json!({})),
        ),
        None => (
            vec![body],
            json!({"resourceVersion": str_at(body, "/metadata/resourceVersion")}),
        ),
    };
    if let Some(m) = md.as_object_mut() {
        m.retain(|k, _| {
            matches!(
                k.as_str(),
                "resourceVersion" | "continue" | "remainingItemCount"
            )
        });
    }
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut r = json!({"cells": cells(rd, o, now)});
            if let Some(obj) = row_object(o, req) {
                r["object"] = obj;
            }
            r
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": req.api_version,
        "metadata": md,
        "columnDefinitions": column_definitions(rd),
        "rows": rows,
    })
}

/// The Content-Type of a Table response.
pub fn content_type(api_version: &str) -> String {
    let v = api_version.rsplit('/').next().unwrap_or("v1");
    format!("application/json;as=Table;v={v};g=meta.k8s.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(kubectl), Some("meta.k8s.io/v1"));
        assert_eq!(
            negotiate("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"),
            Some("meta.k8s.io/v1beta1")
        );
        assert_eq!(negotiate("application/json"), None);
        assert_eq!(negotiate(""), None);
        assert_eq!(
            negotiate("application/json, application/json;as=Table;v=v1;g=meta.k8s.io"),
            None
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io"),
            Some("meta.k8s.io/v1")
        );
        assert_eq!(
            negotiate(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            ),
            None
        );
    }

    #[test]
    fn human_durations() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_duration(s(-5)), "<invalid>");
        assert_eq!(human_duration(s(-1)), "0s");
        assert_eq!(human_duration(s(5)), "5s");
        assert_eq!(human_duration(s(119)), "119s");
        assert_eq!(human_duration(s(125)), "2m5s");
        assert_eq!(human_duration(s(600)), "10m");
        assert_eq!(human_duration(s(3 * 3600 + 120)), "3h2m");
        assert_eq!(human_duration(s(9 * 3600)), "9h");
        assert_eq!(human_duration(s(50 * 3600)), "2d2h");
        assert_eq!(human_duration(s(30 * 86400)), "30d");
        assert_eq!(human_duration(s(3 * 365 * 86400 + 86400)), "3y1d");
        assert_eq!(human_duration(s(10 * 365 * 86400)), "10y");
    }

    #[test]
    fn go_numbers() {
        let n = |v: Value| go_number(v.as_number().unwrap());
        assert_eq!(n(json!(3)), "3");
        assert_eq!(n(json!(-7)), "-7");
        assert_eq!(n(json!(1.5)), "1.5");
        assert_eq!(n(json!(3.0)), "3");
        assert_eq!(n(json!(123456.5)), "123456.5");
        assert_eq!(n(json!(1.5e6)), "1.5e+06");
        assert_eq!(n(json!(1e21)), "1e+21");
        assert_eq!(n(json!(0.00001)), "1e-05");
    }
}
