//! The in-memory object store: resource registry, objects, resourceVersions, watch history and
//! the write paths (create, update, patch, apply, delete) with the apiserver's semantics.
//!
//! One module per verb: `create.rs`, `update.rs` (and the common path of every write to an
//! existing object), `patching.rs` (JSON / merge patch, server-side apply), `delete.rs`,
//! `watch.rs` (change history, list selection); `admit.rs` holds the admission they share.
//! This file: the types, the resource registry (built-ins and CRDs) and small helpers.

mod admit;
mod create;
mod delete;
mod patching;
mod update;
mod watch;

pub use watch::matches;

use super::errors::{ApiError, FieldError, GroupResource};
use super::events;
use super::fields::{self, Writer};
use super::fieldvalidation::{self, FieldValidation};
use super::patch;
use super::schema;
use super::selector::{FieldSelector, LabelSelector};
use super::KubeVersion;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Secret,
    ConfigMap,
    Namespace,
    /// events.k8s.io/v1 Event (stored).
    Event,
    /// core/v1 Event: a read-only view of the events.k8s.io/v1 store (see `events.rs`).
    CoreEvent,
    Lease,
    Crd,
    Custom,
}

/// One served resource (group/version/plural).
#[derive(Debug, Clone)]
pub struct ResDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub class: Class,
    pub status_sub: bool,
    /// Shared, not copied: routing clones the `ResDef` on every request, and a deep copy of a
    /// CRD's schema per request was a tenth of the emulator's write path (perf, issue 16).
    pub schema: Option<std::sync::Arc<Value>>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// A CRD version's `additionalPrinterColumns` (empty for built-ins).
    pub printer_columns: Vec<Value>,
}

impl ResDef {
    fn builtin(
        group: &str,
        plural: &str,
        singular: &str,
        kind: &str,
        namespaced: bool,
        class: Class,
    ) -> Self {
        ResDef {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            singular: singular.into(),
            kind: kind.into(),
            namespaced,
            class,
            status_sub: class == Class::Namespace || class == Class::Crd,
            schema: None,
            short_names: match class {
                Class::Namespace => vec!["ns".into()],
                Class::ConfigMap => vec!["cm".into()],
                // only core/v1: kubectl warns about a short name two resources share
                Class::CoreEvent => vec!["ev".into()],
                Class::Crd => vec!["crd".into(), "crds".into()],
                _ => vec![],
            },
            categories: vec![],
            printer_columns: vec![],
        }
    }
    pub fn gv(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }
    pub fn gk(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.kind)
    }
    /// The storage key. core/v1 events share the events.k8s.io/v1 store.
    pub fn key(&self) -> (String, String) {
        if self.class == Class::CoreEvent {
            return ("events.k8s.io".into(), self.plural.clone());
        }
        (self.group.clone(), self.plural.clone())
    }
    pub fn is_cr(&self) -> bool {
        self.class == Class::Custom
    }
    /// Field labels usable in a fieldSelector.
    pub fn field_labels(&self) -> Vec<&'static str> {
        match self.class {
            Class::Event => return events::V1_FIELD_LABELS.to_vec(),
            Class::CoreEvent => return events::CORE_FIELD_LABELS.to_vec(),
            _ => {}
        }
        let mut v = vec!["metadata.name"];
        if self.namespaced {
            v.push("metadata.namespace");
        }
        if self.class == Class::Secret {
            v.push("type");
        }
        if self.class == Class::Namespace {
            v.push("status.phase");
        }
        v
    }
}

/// One recorded change, as seen by watches.
#[derive(Debug, Clone)]
pub struct EventRec {
    pub rv: u64,
    pub key: (String, String),
    pub ns: String,
    pub etype: &'static str,
    pub obj: Value,
    pub old: Option<Value>,
}

type ObjKey = (String, String); // (namespace, name)

pub struct State {
    pub rv: u64,
    pub defs: Vec<ResDef>,
    pub objects: HashMap<(String, String), BTreeMap<ObjKey, Value>>,
    pub history: VecDeque<EventRec>,
    /// Every event with rv > history_start is retained.
    pub history_start: u64,
    pub max_history: Option<usize>,
    /// The Kubernetes release whose behaviour is emulated where releases differ.
    pub version: KubeVersion,
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn micro_time(s: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    })
}

fn meta(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj.as_object_mut().expect("object");
    if !m.get("metadata").is_some_and(Value::is_object) {
        m.insert("metadata".into(), json!({}));
    }
    m.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata")
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    meta(obj).get(key).and_then(Value::as_str).unwrap_or("")
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Drop empty omitempty metadata fields, like the apiserver's JSON encoding.
fn normalize(obj: &mut Value) {
    let m = meta_mut(obj);
    for k in [
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "managedFields",
    ] {
        let empty = match m.get(k) {
            Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if empty {
            m.remove(k);
        }
    }
    for k in ["generateName", "selfLink"] {
        if m.get(k)
            .is_some_and(|v| v.as_str() == Some("") || v.is_null())
        {
            m.remove(k);
        }
    }
}

/// Object without parts that must not count as a change (RV, managedFields timestamps).
fn comparable(obj: &Value) -> Value {
    let mut c = obj.clone();
    let m = meta_mut(&mut c);
    m.remove("resourceVersion");
    if let Some(Value::Array(a)) = m.get_mut("managedFields") {
        for e in a {
            if let Some(o) = e.as_object_mut() {
                o.remove("time");
            }
        }
    }
    c
}

fn without(obj: &Value, keys: &[&str]) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    c
}

static DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
static DNS1123_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
static QUALIFIED_NAME: &str = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$";

/// Result of a successful write.
pub struct WriteResult {
    pub code: u16,
    pub body: Value,
}

fn ok(code: u16, body: Value) -> Result<WriteResult, ApiError> {
    Ok(WriteResult { code, body })
}

/// Per-request write parameters.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub writer: Writer,
    pub subresource: String,
    /// `?fieldValidation=` (see `fieldvalidation.rs`).
    pub field_validation: FieldValidation,
    /// Strict-decoding errors of the request body itself (duplicate keys), create / update.
    pub decode_errors: Vec<String>,
    /// Warnings for the response's `Warning` headers.
    pub warnings: RefCell<Vec<String>>,
}

impl WriteOpts {
    /// A write the emulator makes itself (namespaces, CRDs): no field validation.
    pub fn internal() -> Self {
        WriteOpts {
            dry_run: false,
            writer: Writer::Update {
                manager: "inference-testenv".into(),
            },
            subresource: String::new(),
            field_validation: FieldValidation::Ignore,
            decode_errors: vec![],
            warnings: RefCell::default(),
        }
    }

    /// Apply the directive to strict-decoding errors: `Strict` refuses with `refuse(message)`,
    /// `Warn` records warnings, `Ignore` drops them.
    fn enforce(
        &self,
        errors: Vec<String>,
        refuse: impl FnOnce(String) -> ApiError,
    ) -> Result<(), ApiError> {
        if errors.is_empty() {
            return Ok(());
        }
        match self.field_validation {
            FieldValidation::Strict => Err(refuse(fieldvalidation::strict_message(&errors))),
            FieldValidation::Warn => {
                self.warnings.borrow_mut().extend(errors);
                Ok(())
            }
            FieldValidation::Ignore => Ok(()),
        }
    }
}

impl State {
    pub fn new(max_history: Option<usize>, version: KubeVersion) -> Self {
        let defs = vec![
            ResDef::builtin(
                "",
                "namespaces",
                "namespace",
                "Namespace",
                false,
                Class::Namespace,
            ),
            ResDef::builtin("", "secrets", "secret", "Secret", true, Class::Secret),
            ResDef::builtin(
                "",
                "configmaps",
                "configmap",
                "ConfigMap",
                true,
                Class::ConfigMap,
            ),
            ResDef::builtin(
                "events.k8s.io",
                "events",
                "event",
                "Event",
                true,
                Class::Event,
            ),
            ResDef::builtin("", "events", "event", "Event", true, Class::CoreEvent),
            ResDef::builtin(
                "coordination.k8s.io",
                "leases",
                "lease",
                "Lease",
                true,
                Class::Lease,
            ),
            ResDef::builtin(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "customresourcedefinition",
                "CustomResourceDefinition",
                false,
                Class::Crd,
            ),
        ];
        State {
            rv: 1,
            defs,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_start: 0,
            max_history,
            version,
        }
    }

    pub fn find_def(&self, group: &str, version: &str, plural: &str) -> Option<ResDef> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    pub fn find_def_by_plural(&self, plural: &str) -> Option<ResDef> {
        self.defs.iter().find(|d| d.plural == plural).cloned()
    }

    pub fn get(&self, rd: &ResDef, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&rd.key())?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Output form: apiVersion and kind of the requested version.
    pub fn present(rd: &ResDef, obj: &Value) -> Value {
        if rd.class == Class::CoreEvent {
            return events::to_core(obj);
        }
        let mut o = obj.clone();
        if let Some(m) = o.as_object_mut() {
            m.insert("apiVersion".into(), json!(rd.gv()));
            m.insert("kind".into(), json!(rd.kind));
        }
        o
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn store(&mut self, rd: &ResDef, ns: &str, name: &str, obj: Value) {
        self.objects
            .entry(rd.key())
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj);
    }

    fn namespace_state(&self, ns: &str) -> Option<bool> {
        // Some(true) = terminating
        let nsdef = self.defs.iter().find(|d| d.class == Class::Namespace)?;
        let o = self.get(nsdef, "", ns)?;
        Some(o.pointer("/metadata/deletionTimestamp").is_some())
    }

    // ---------------------------------------------------------------- create

    pub fn register_crd_defs(&mut self, crd: &Value) {
        let Some(spec) = crd.get("spec") else { return };
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let names = spec.get("names").cloned().unwrap_or(json!({}));
        let s = |k: &str| {
            names
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let plural = s("plural");
        let kind = s("kind");
        let singular = if s("singular").is_empty() {
            kind.to_lowercase()
        } else {
            s("singular")
        };
        let list = |k: &str| {
            names
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        self.defs
            .retain(|d| !(d.group == group && d.plural == plural && d.class == Class::Custom));
        for v in spec
            .get("versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if v.get("served") == Some(&Value::Bool(false)) {
                continue;
            }
            self.defs.push(ResDef {
                group: group.clone(),
                version: v
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("v1")
                    .to_string(),
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                class: Class::Custom,
                status_sub: v.pointer("/subresources/status").is_some(),
                schema: v
                    .pointer("/schema/openAPIV3Schema")
                    .cloned()
                    .map(std::sync::Arc::new),
                short_names: list("shortNames"),
                categories: list("categories"),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
    }

    fn unregister_crd(&mut self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.defs
            .retain(|d| !(d.group == group && d.plural == plural && d.class == Class::Custom));
        self.objects.remove(&(group, plural));
    }

    /// Create or replace a CRD object and register its resources (used by the Rust API).
    pub fn upsert_crd(&mut self, mut crd: Value) -> Result<(), ApiError> {
        let rd = self
            .defs
            .iter()
            .find(|d| d.class == Class::Crd)
            .cloned()
            .expect("crd def");
        let name = meta_str(&crd, "name").to_string();
        let opts = WriteOpts::internal();
        if let Some(old) = self.get(&rd, "", &name).cloned() {
            meta_mut(&mut crd).insert(
                "resourceVersion".into(),
                old["metadata"]["resourceVersion"].clone(),
            );
            self.update_existing(&rd, "", &name, old, crd, &opts)
                .map(|_| ())
        } else {
            self.create(&rd, "", crd, &opts).map(|_| ())
        }
    }
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            for cv in m.values_mut() {
                strip_nulls(cv);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()[..5]
        .iter()
        .map(|b| CHARS[*b as usize % CHARS.len()] as char)
        .collect()
}
