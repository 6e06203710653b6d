//! CRD admission: pruning, defaulting, OpenAPI v3 schema validation with the apiserver's message
//! formats, then CEL `x-kubernetes-validations` through kube-cel
//! (docs/reference/kubernetes-api.md#schema-validation,
//! docs/reference/kubernetes-api.md#cel-validation).

use super::errors::{fmt_f64, BadValue, ErrType, FieldError};
use serde_json::{Map, Value};
use std::sync::Arc;

const OBJECT_META_KEYS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

/// Drop unknown ObjectMeta keys (the root `metadata` of a CR is not governed by its schema).
pub fn prune_metadata(obj: &mut Value) {
    prune_metadata_tracked(obj);
}

/// `prune_metadata`, returning the dropped paths (`metadata.x`), sorted.
fn prune_metadata_tracked(obj: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        m.retain(|k, _| {
            let keep = OBJECT_META_KEYS.contains(&k.as_str());
            if !keep {
                dropped.push(format!("metadata.{k}"));
            }
            keep
        });
    }
    dropped.sort();
    dropped
}

/// Prune the root of a CR: `apiVersion`, `kind` and `metadata` are kept; everything else
/// follows the schema.
pub fn prune_root(schema: &Value, obj: &mut Value) {
    prune_root_tracked(schema, obj);
}

/// The fields structural pruning would drop from `obj` as unknown to the schema: metadata
/// first, then the rest sorted (the order of `unstructuredSchemaCoercer.apply`, apiextensions-
/// apiserver `pkg/apiserver/customresource_handler.go`). Nulls are not unknown fields.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    prune_root_tracked(schema, &mut obj.clone())
}

fn prune_root_tracked(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let Value::Object(m) = obj else {
        return unknown;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let keep_all = preserves(schema);
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(s) => {
                let v = m.get_mut(&k).expect("key");
                if v.is_null() && !nullable(s) && s.get("default").is_none() {
                    m.remove(&k);
                } else {
                    prune_at(s, v, &k, &mut unknown);
                }
            }
            None if keep_all => {}
            None => {
                m.remove(&k);
                unknown.push(k);
            }
        }
    }
    unknown.sort();
    let mut out = prune_metadata_tracked(obj);
    out.extend(unknown);
    out
}

/// Recursive pruning of unknown fields (collected into `unknown` as paths under `path`) and of
/// nulls for non-nullable fields without defaults.
fn prune_at(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    match v {
        Value::Object(m) => {
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_all =
                preserves(schema) || schema.get("additionalProperties") == Some(&Value::Bool(true));
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&k)).or(addl);
                match sub {
                    Some(s) => {
                        let cv = m.get_mut(&k).expect("key");
                        if cv.is_null() && !nullable(s) && s.get("default").is_none() {
                            m.remove(&k);
                        } else {
                            prune_at(s, cv, &join(path, &k), unknown);
                        }
                    }
                    None if keep_all => {}
                    None => {
                        m.remove(&k);
                        unknown.push(join(path, &k));
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, it) in a.iter_mut().enumerate() {
                    prune_at(items, it, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Apply `default`s inside objects that exist (structural defaulting).
pub fn apply_defaults(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if let Some(d) = s.get("default") {
                        let absent = match m.get(k) {
                            None => true,
                            Some(Value::Null) => !nullable(s),
                            _ => false,
                        };
                        if absent {
                            m.insert(k.clone(), d.clone());
                        }
                    }
                    if let Some(cv) = m.get_mut(k) {
                        apply_defaults(s, cv);
                    }
                }
            }
            if let Some(addl) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let props = schema.get("properties").and_then(Value::as_object);
                for (k, cv) in m.iter_mut() {
                    if props.is_some_and(|p| p.contains_key(k)) {
                        continue;
                    }
                    apply_defaults(addl, cv);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for it in a.iter_mut() {
                    apply_defaults(items, it);
                }
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        // The apiserver decodes request bodies with apimachinery's `util/json` (`convertNumber`):
        // a number that parses as int64 becomes an int64, anything else a float64 — which
        // kube-openapi's type validator (pkg/validation/validate/type.go) reports as "number",
        // even when it is whole. So 2^63 (or `1.0`) in an integer field is a type error
        // (`in body must be of type integer: "number"`, seen on a real 1.34 apiserver), not a
        // stored value. (The real server then also runs the field's other validators and adds
        // "some validation rules were not checked"; the emulator stops at the type error.)
        Value::Number(n) => {
            if n.is_i64() {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}.{seg}")
    }
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Validate `v` against `schema`; `path` is the dotted field path of `v`.
pub fn validate(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if v.is_null() {
        // kube-openapi `SchemaValidator.Validate` (pkg/validation/validate/schema.go) runs only
        // the type and the common validators on nil data; the type validator accepts it when
        // `nullable`, and the enum check (`basicCommonValidator.Validate`, validator.go) skips
        // nil enum entries, so null fails an enum even when the enum lists null.
        if !nullable(schema) {
            if let Some(t) = schema.get("type").and_then(Value::as_str) {
                errs.push(type_err(path, t, v));
            }
        }
        if let Some(en) = schema.get("enum").and_then(Value::as_array) {
            errs.push(enum_err(path, v, en));
        }
        return;
    }
    let actual = json_type(v);
    if int_or_string {
        if !matches!(actual, "integer" | "string") {
            errs.push(type_err(path, "integer,string", v));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "number" => matches!(actual, "number" | "integer"),
            other => other == actual,
        };
        if !ok {
            errs.push(type_err(path, t, v));
            return;
        }
    }

    // Combinators (value validations only in structural schemas).
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, v, path, errs);
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let n = one.iter().filter(|s| passes(s, v, path)).count();
        if n != 1 {
            let found = if n == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {n} valid alternatives")
            };
            errs.push(FieldError::new(
                ErrType::Invalid,
                "",
                BadValue::Value(Value::String(String::new())),
                format!("\"{path}\" must validate one and only one schema (oneOf). {found}"),
            ));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(|s| passes(s, v, path)) {
            errs.push(FieldError::new(
                ErrType::Invalid,
                "",
                BadValue::Value(Value::String(String::new())),
                format!("\"{path}\" must validate at least one schema (anyOf)"),
            ));
        }
    }
    if let Some(not) = schema.get("not") {
        if passes(not, v, path) {
            errs.push(FieldError::new(
                ErrType::Invalid,
                "",
                BadValue::Value(Value::String(String::new())),
                format!("\"{path}\" must not validate the schema (not)"),
            ));
        }
    }

    match v {
        Value::String(s) => {
            let len = s.chars().count();
            if let Some(max) = num(schema, "maxLength") {
                if len as f64 > max {
                    errs.push(FieldError::too_long(path, max as usize));
                }
            }
            if let Some(min) = num(schema, "minLength") {
                if (len as f64) < min {
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!(
                            "{path} in body should be at least {} chars long",
                            fmt_f64(min)
                        ),
                    ));
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if pattern_matches(p, s) == Some(false) {
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{path} in body should match '{p}'"),
                    ));
                }
            }
        }
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if let Some(m) = num(schema, "multipleOf") {
                if m != 0.0 && (f / m).fract() != 0.0 {
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{path} in body should be a multiple of {}", fmt_f64(m)),
                    ));
                }
            }
            if let Some(max) = num(schema, "maximum") {
                let excl = flag(schema, "exclusiveMaximum");
                if (excl && f >= max) || (!excl && f > max) {
                    let rel = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{path} in body should be {rel} {}", fmt_f64(max)),
                    ));
                }
            }
            if let Some(min) = num(schema, "minimum") {
                let excl = flag(schema, "exclusiveMinimum");
                if (excl && f <= min) || (!excl && f < min) {
                    let rel = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{path} in body should be {rel} {}", fmt_f64(min)),
                    ));
                }
            }
        }
        Value::Array(a) => {
            if let Some(min) = num(schema, "minItems") {
                if (a.len() as f64) < min {
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{path} in body should have at least {} items", fmt_f64(min)),
                    ));
                }
            }
            if let Some(max) = num(schema, "maxItems") {
                if a.len() as f64 > max {
                    errs.push(FieldError::new(
                        ErrType::TooMany,
                        path,
                        BadValue::Value(Value::from(a.len())),
                        format!("must have at most {} items", fmt_f64(max)),
                    ));
                }
            }
            if let Some(items) = schema.get("items") {
                for (i, it) in a.iter().enumerate() {
                    validate(items, it, &format!("{path}[{i}]"), errs);
                }
            }
            let lt = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            if lt == Some("set") {
                for (i, it) in a.iter().enumerate() {
                    if a[..i].contains(it) {
                        errs.push(FieldError::new(
                            ErrType::Duplicate,
                            format!("{path}[{i}]"),
                            BadValue::Value(it.clone()),
                            "",
                        ));
                    }
                }
            }
        }
        Value::Object(m) => {
            if let Some(max) = num(schema, "maxProperties") {
                if m.len() as f64 > max {
                    errs.push(FieldError::new(
                        ErrType::TooMany,
                        path,
                        BadValue::Value(Value::from(m.len())),
                        format!("must have at most {} items", fmt_f64(max)),
                    ));
                }
            }
            if let Some(min) = num(schema, "minProperties") {
                if (m.len() as f64) < min {
                    errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!(
                            "{path} in body should have at least {} properties",
                            fmt_f64(min)
                        ),
                    ));
                }
            }
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        errs.push(FieldError::required(join(path, r), ""));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, s) in props {
                    if let Some(cv) = m.get(k) {
                        validate(s, cv, &join(path, k), errs);
                    }
                }
            }
            if let Some(addl) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, cv) in m {
                    if props.is_some_and(|p| p.contains_key(k)) {
                        continue;
                    }
                    validate(addl, cv, &join(path, k), errs);
                }
            }
        }
        _ => {}
    }

    if let Some(en) = schema.get("enum").and_then(Value::as_array) {
        if !en.contains(v) {
            errs.push(enum_err(path, v, en));
        }
    }
}

/// `Unsupported value` for an enum: apiextensions-apiserver `pkg/apiserver/validation/
/// validation.go` (`kubeOpenAPIResultToFieldErrors`, EnumFailCode) lists string entries as they
/// are and any other entry as its JSON (`null`, `1`), all quoted by `field.NotSupported`.
fn enum_err(path: &str, v: &Value, en: &[Value]) -> FieldError {
    let listed: Vec<Value> = en
        .iter()
        .map(|e| match e {
            Value::String(_) => e.clone(),
            other => Value::String(other.to_string()),
        })
        .collect();
    FieldError::not_supported(path, v.clone(), &listed)
}

fn passes(schema: &Value, v: &Value, path: &str) -> bool {
    let mut e = Vec::new();
    validate(schema, v, path, &mut e);
    e.is_empty()
}

fn type_err(path: &str, expected: &str, v: &Value) -> FieldError {
    let actual = json_type(v);
    FieldError::new(
        ErrType::TypeInvalid,
        path,
        BadValue::Value(Value::String(actual.into())),
        format!("{path} in body must be of type {expected}: \"{actual}\""),
    )
}

/// Errors after which CEL is not run (docs/reference/kubernetes-api.md#cel-validation).
fn blocks_cel(e: &FieldError) -> bool {
    matches!(
        e.etype,
        ErrType::NotSupported
            | ErrType::Required
            | ErrType::TooLong
            | ErrType::TooMany
            | ErrType::TypeInvalid
    )
}

fn value_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(idx) = idx {
            for part in idx.split('[').filter(|s| !s.is_empty()) {
                let i: usize = part.trim_end_matches(']').parse().ok()?;
                cur = cur.get(i)?;
            }
        }
    }
    Some(cur)
}

/// Collect `rule -> fieldPath` for every rule that has a fieldPath.
fn rule_field_paths(schema: &Value, out: &mut Vec<(String, String)>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::Array(rules)) = m.get("x-kubernetes-validations") {
                for r in rules {
                    if let (Some(rule), Some(fp)) = (
                        r.get("rule").and_then(Value::as_str),
                        r.get("fieldPath").and_then(Value::as_str),
                    ) {
                        out.push((rule.to_string(), fp.to_string()));
                    }
                }
            }
            for v in m.values() {
                rule_field_paths(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| rule_field_paths(v, out)),
        _ => {}
    }
}

/// The trimmed, non-empty `message` of the first rule with this source.
fn rule_message(schema: &Value, rule: &str) -> Option<String> {
    match schema {
        Value::Object(m) => {
            let own = m
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|r| r.get("rule").and_then(Value::as_str) == Some(rule))
                .and_then(|r| r.get("message").and_then(Value::as_str))
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from);
            own.or_else(|| m.values().find_map(|v| rule_message(v, rule)))
        }
        Value::Array(a) => a.iter().find_map(|v| rule_message(v, rule)),
        _ => None,
    }
}

/// Parse every `x-kubernetes-validations` rule and messageExpression in a schema; returns
/// `path: error` for those that do not compile (the apiserver rejects such CRDs).
pub fn check_rules(schema: &Value, path: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::Array(rules)) = m.get("x-kubernetes-validations") {
                for r in rules {
                    for key in ["rule", "messageExpression"] {
                        if let Some(src) = r.get(key).and_then(Value::as_str) {
                            if let Err(e) = kube_cel::cel::Program::compile(src) {
                                out.push(format!("{path}: {key} {src:?}: {e}"));
                            }
                        }
                    }
                }
            }
            for (k, v) in m {
                check_rules(v, &join(path, k), out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| check_rules(v, path, out)),
        _ => {}
    }
}

fn has_cel_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.contains_key("x-kubernetes-validations") || m.values().any(has_cel_rules)
        }
        Value::Array(a) => a.iter().any(has_cel_rules),
        _ => false,
    }
}

/// `v` as CEL sees it on a real apiserver: a null-valued property of an object with
/// `properties` is absent, so `has(self.x)` is false and `x`'s own rules do not run
/// (apiserver `pkg/cel/common/values.go`, `valuesunstructured.go` from 1.34, `unstructuredMap.
/// Find`: "null valued nullable fields are treated the same as absent optional fields"; and
/// apiextensions-apiserver `schema/cel/validation.go` `validate` returns at once for a nil
/// object). kube-cel binds the null instead. Nulls stay in maps (`additionalProperties`) and
/// lists, as there.
fn without_null_properties(schema: &Value, v: &Value) -> Value {
    let mut out = v.clone();
    drop_null_properties(schema, &mut out);
    out
}

fn drop_null_properties(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if props.is_some() {
                m.retain(|_, cv| !cv.is_null());
            }
            let addl = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, cv) in m.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(k)).or(addl) {
                    drop_null_properties(s, cv);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                a.iter_mut().for_each(|it| drop_null_properties(items, it));
            }
        }
        _ => {}
    }
}

/// How a failed CEL rule shows the value in `Invalid value: ...`, which changed in 1.35.
///
/// Kubernetes 1.30–1.34 (apiextensions-apiserver `pkg/apiserver/schema/cel/validation.go`,
/// `validateExpressions` → `fieldErrorForReason(fldPath, sts.Type, ...)`) pass the *schema type*
/// of the node that carries the rule as the value, so `field.Invalid` prints
/// `spec: Invalid value: "object": <message>` (also for a rule with `fieldPath`, whose error sits
/// on the path but shows the rule node's type). Reported in kubernetes/kubernetes#132528; 1.35
/// passes the value itself, and `field.OmitValueType{}` when the schema type is `object` or
/// `array` (kubernetes/kubernetes#132798 and #133832; apimachinery
/// `pkg/util/validation/field/errors.go` prints no value for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CelValues {
    /// 1.30–1.34: the schema type, quoted.
    SchemaType,
    /// 1.35+: scalars shown, objects and arrays omitted.
    SimpleValues,
}

impl CelValues {
    pub fn of(version: super::KubeVersion) -> Self {
        if version.at_least(1, 35) {
            CelValues::SimpleValues
        } else {
            CelValues::SchemaType
        }
    }
}

/// The schema of the node at a dotted path such as `spec.items[0].name` (map keys of
/// `additionalProperties` are path segments too).
fn schema_at<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = schema;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object()))?;
        }
        for _ in idx.iter().flat_map(|i| i.matches('[')) {
            cur = cur.get("items")?;
        }
    }
    Some(cur)
}

/// Whether `text` matches the schema `pattern` (`None`: the pattern does not compile, which
/// the CRD's own validation would have refused). Compiled once per pattern and thread: compiling
/// at every value checked was 37 % of the emulator's instructions on its write path (callgrind,
/// issue 16), for the handful of patterns a CRD has.
fn pattern_matches(pattern: &str, text: &str) -> Option<bool> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    /// Patterns kept per thread; beyond this the cache starts over (tests load few CRDs).
    const KEPT: usize = 256;
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
    }
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            if cache.len() >= KEPT {
                cache.clear();
            }
            cache.insert(pattern.to_owned(), regex::Regex::new(pattern).ok());
        }
        cache[pattern].as_ref().map(|re| re.is_match(text))
    })
}

/// The schema's CEL rules compiled once per schema and thread (a handful of schemas in any
/// run), as an API server compiles a CRD's rules once when it builds the CRD's serving info,
/// not per request (apiextensions-apiserver `pkg/apiserver/customresource_handler.go`
/// `getOrCreateServingInfoFor`, compiling through `pkg/apiserver/schema/cel/compilation.go`).
/// Recompiling every rule per write made the emulator the benchmark's bottleneck (about 90
/// InferenceEndpoint writes a second). The cache is found by the schema's allocation (it holds
/// the `Arc`, so the address cannot be reused for another schema while the entry lives) and,
/// for another allocation of an equal schema (a new emulator), by comparing the values:
/// serialising the schema to hash it on every write took a sixth of the write path (perf, issue 16).
fn compiled_rules(schema: &Arc<Value>) -> std::rc::Rc<kube_cel::CompiledSchema> {
    use std::cell::RefCell;
    use std::rc::Rc;
    /// Schemas kept per thread; beyond this the oldest is forgotten (tests start many emulators).
    const KEPT: usize = 16;
    type Entry = (Arc<Value>, Rc<kube_cel::CompiledSchema>);
    thread_local! {
        static COMPILED: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    }
    COMPILED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, compiled)) = cache.iter().find(|(s, _)| Arc::ptr_eq(s, schema)) {
            return compiled.clone();
        }
        let compiled = cache
            .iter()
            .find(|(s, _)| **s == **schema)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| Rc::new(kube_cel::compile_schema(schema)));
        if cache.len() >= KEPT {
            cache.remove(0);
        }
        cache.push((schema.clone(), compiled.clone()));
        compiled
    })
}

/// Run CEL rules and convert kube-cel's errors to field errors.
pub fn validate_cel(
    schema: &Arc<Value>,
    obj: &Value,
    old: Option<&Value>,
    style: CelValues,
) -> (Vec<FieldError>, Vec<String>) {
    let mut out = Vec::new();
    let mut ratcheted = Vec::new();
    let (obj_cel, old_cel) = (
        without_null_properties(schema, obj),
        old.map(|o| without_null_properties(schema, o)),
    );
    let compiled = compiled_rules(schema);
    let Err(errs) = kube_cel::validate_compiled(&compiled, &obj_cel, old_cel.as_ref()) else {
        return (out, ratcheted);
    };
    let mut fps = Vec::new();
    rule_field_paths(schema, &mut fps);
    for e in errs {
        let detail = e.message.trim().to_string();
        let field = e.field_path.trim_start_matches('.').to_string();
        // The value shown is the one at the rule's node (`self`), not at its fieldPath.
        let node = fps
            .iter()
            .find(|(r, _)| *r == e.rule)
            .and_then(|(_, fp)| {
                let fp = fp.trim_start_matches('.');
                field
                    .strip_suffix(fp)
                    .map(|n| n.trim_end_matches('.').to_string())
            })
            .unwrap_or_else(|| field.clone());
        // Evaluation errors show the type in every release (`field.Invalid(fldPath, sts.Type,
        // "... evaluating rule: ...")` in validation.go, unchanged in 1.35).
        let node_type = BadValue::Value(Value::String(
            schema_at(schema, &node)
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ));
        let shown = match style {
            CelValues::SchemaType => node_type.clone(),
            CelValues::SimpleValues => shown_value(obj, &node),
        };
        let field = display_path(schema, &field);
        let fe = match e.kind {
            kube_cel::ErrorKind::ValidationFailure => match e.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
                Some("FieldValueRequired") => FieldError::required(field, detail),
                Some("FieldValueDuplicate") => {
                    FieldError::new(ErrType::Duplicate, field.clone(), shown, detail)
                }
                _ => FieldError::new(ErrType::Invalid, field.clone(), shown, detail),
            },
            kube_cel::ErrorKind::EvaluationError => FieldError::new(
                ErrType::Invalid,
                field.clone(),
                node_type,
                // `ruleErrorString`: the rule's message when it has one, else the rule.
                format!(
                    "{} evaluating rule: {}",
                    detail.trim_start_matches("rule evaluation error: "),
                    rule_message(schema, &e.rule).unwrap_or_else(|| e.rule.trim().to_string())
                ),
            ),
            _ => FieldError::new(ErrType::Invalid, field.clone(), shown, detail),
        };
        // Ratcheting (KEP-4008; `cel/validation.go`: `!compiled.UsesOldSelf &&
        // correlation.shouldRatchetError()` → `warning.AddWarning(ctx, "", e.Error())`): a rule
        // without `oldSelf` that fails on a node equal to its old value is a warning, not an error.
        if old.is_some_and(|old| unchanged(old, obj, &node)) && !e.rule.contains("oldSelf") {
            ratcheted.push(fe.to_string());
        } else {
            out.push(fe);
        }
    }
    (out, ratcheted)
}

/// A CEL error's path as the API server prints it: a key of a map (`additionalProperties`) is
/// `[key]`, a property `.name` (apiextensions-apiserver `pkg/apiserver/schema/cel/validation.go`:
/// `validateMap` uses `fldPath.Key(k)` for additionalProperties and `fldPath.Child(k)` for
/// properties; seen on a real 1.34.9 server as `spec.service.secretSettings[api_key]`). kube-cel
/// joins both with a dot; the dotted form stays the one the emulator looks values up by.
fn display_path(schema: &Value, dotted: &str) -> String {
    let mut out = String::new();
    let mut node = Some(schema);
    for segment in dotted.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        let property = node
            .and_then(|n| n.get("properties"))
            .and_then(|p| p.get(name));
        let map_value = node.and_then(|n| n.get("additionalProperties"));
        match (property, map_value) {
            (None, Some(value)) => {
                out.push_str(&format!("[{name}]{index}"));
                node = Some(value);
            }
            _ => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(segment);
                node = property;
            }
        }
        if !index.is_empty() {
            node = node.and_then(|n| n.get("items"));
        }
    }
    out
}

/// Whether the value at `path` is the same in `old` and `new` (both present), judged at the
/// nearest correlatable node: list items are compared through their list, since the emulator
/// correlates no list items (the real server correlates items of map lists and sets by key,
/// `common.CorrelatedObject`; this simplification is inferred to be enough for our schemas, which
/// have no such lists under `spec`).
fn unchanged(old: &Value, new: &Value, path: &str) -> bool {
    let node = match path.find('[') {
        Some(i) => path[..i].trim_end_matches('.'),
        None => path,
    };
    match (value_at(old, node), value_at(new, node)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// 1.35 style: scalars shown, objects and arrays omitted.
fn shown_value(obj: &Value, field: &str) -> BadValue {
    match value_at(obj, field) {
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            BadValue::Value(v.clone())
        }
        Some(Value::Null) | None => BadValue::Omit,
        _ => BadValue::Omit,
    }
}

/// Schema validation of `obj` under `schema` rooted at the object, skipping `metadata`, `apiVersion`
/// and `kind`; then CEL unless blocked. `only` restricts to one top-level property (e.g. `status`).
pub fn validate_object(
    schema: &Arc<Value>,
    obj: &Value,
    old: Option<&Value>,
    only: Option<&str>,
    style: CelValues,
) -> (Vec<FieldError>, Vec<String>) {
    let mut errs = Vec::new();
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let m = obj.as_object().unwrap_or(&empty);
    if only.is_none() {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    errs.push(FieldError::required(r, ""));
                }
            }
        }
    }
    for (k, s) in props {
        if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        if only.is_some_and(|o| o != k) {
            continue;
        }
        if let Some(v) = m.get(k) {
            validate(s, v, k, &mut errs);
        }
    }
    // Ratcheting of schema validation (KEP-4008, on by default from 1.30, GA 1.33;
    // `pkg/apiserver/schema/validation/ratcheting.go`): on update, an error at a node equal to its
    // old value is dropped silently — so a field a tightened CRD refuses may stay while other
    // fields change. (Seen on a real 1.34.9 apiserver for `maximum` and `pattern`.)
    if let Some(old) = old {
        errs.retain(|e| e.field.is_empty() || !unchanged(old, obj, &e.field));
    }
    if !has_cel_rules(schema) {
        return (errs, Vec::new());
    }
    if errs.iter().any(blocks_cel) {
        errs.push(FieldError::invalid(
            "",
            Value::Null,
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
        return (errs, Vec::new());
    }
    let in_scope = |e: &FieldError| {
        only.is_none_or(|o| {
            e.field == o
                || e.field.starts_with(&format!("{o}."))
                || e.field.starts_with(&format!("{o}["))
        })
    };
    let (cel, ratcheted) = validate_cel(schema, obj, old, style);
    errs.extend(cel.into_iter().filter(in_scope));
    (errs, ratcheted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["taskType"],
                    "properties": {
                        "taskType": {"type": "string", "enum": ["text_embedding", "completion"]},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 10, "minLength": 1},
                        "l": {"type": "array", "maxItems": 3, "items": {"type": "string"}},
                        "r": {"type": "number", "minimum": 0, "exclusiveMinimum": true}
                    },
                    "x-kubernetes-validations": [{"rule": "self.replicas <= 4", "message": "too many"}]
                }
            }
        })
    }

    fn msgs(obj: Value) -> Vec<String> {
        let mut o = obj;
        prune_root(&schema(), &mut o);
        apply_defaults(&schema(), &mut o);
        validate_object(&Arc::new(schema()), &o, None, None, CelValues::SchemaType)
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn messages() {
        assert_eq!(msgs(json!({"spec": {}})), vec![
            "spec.taskType: Required value",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
        ]);
        assert_eq!(msgs(json!({"spec": {"taskType": "foo"}}))[0],
            "spec.taskType: Unsupported value: \"foo\": supported values: \"text_embedding\", \"completion\"");
        assert_eq!(msgs(json!({"spec": {"taskType": "completion", "replicas": "x"}}))[0],
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"");
        // Past int64 (and any non-int64 literal) the apiserver holds a float64: "number".
        for n in [json!(9_223_372_036_854_775_808_u64), json!(2.0)] {
            assert_eq!(msgs(json!({"spec": {"taskType": "completion", "replicas": n}}))[0],
                "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"");
        }
        assert_eq!(msgs(json!({"spec": {"taskType": "completion", "replicas": 0}})),
            vec!["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]);
        assert_eq!(msgs(json!({"spec": {"taskType": "completion", "replicas": 9}}))[0],
            "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5");
        assert_eq!(
            msgs(json!({"spec": {"taskType": "completion", "r": 0}})),
            vec!["spec.r: Invalid value: 0: spec.r in body should be greater than 0"]
        );
        assert_eq!(
            msgs(json!({"spec": {"taskType": "completion", "name": "Foo"}})),
            vec!["spec.name: Invalid value: \"Foo\": spec.name in body should match '^[a-z]+$'"]
        );
        assert_eq!(
            msgs(json!({"spec": {"taskType": "completion", "name": "abcdefghijkl"}}))[0],
            "spec.name: Too long: may not be more than 10 bytes"
        );
        assert_eq!(
            msgs(json!({"spec": {"taskType": "completion", "name": ""}}))[0],
            "spec.name: Invalid value: \"\": spec.name in body should be at least 1 chars long"
        );
        assert_eq!(
            msgs(json!({"spec": {"taskType": "completion", "l": ["a","b","c","d","e"]}}))[0],
            "spec.l: Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            msgs(json!({"spec": {"taskType": "completion", "replicas": 5}})),
            vec!["spec: Invalid value: \"object\": too many"]
        );
        assert!(msgs(json!({"spec": {"taskType": "completion", "unknown": 1}})).is_empty());
    }

    #[test]
    fn prune_and_default() {
        let mut o = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x", "bogus": 1},
                           "spec": {"taskType": "completion", "extra": true}, "top": 1});
        prune_root(&schema(), &mut o);
        apply_defaults(&schema(), &mut o);
        assert_eq!(
            o,
            json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"},
                             "spec": {"taskType": "completion", "replicas": 1}})
        );
    }
}
