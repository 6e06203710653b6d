//! The in-memory object store: resource registry, objects, resourceVersions, watch history and
//! the write paths (create, update, patch, apply, delete) with the apiserver's semantics.

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
    pub schema: Option<Value>,
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

fn re_match(re: &str, s: &str) -> bool {
    regex::Regex::new(re)
        .map(|r| r.is_match(s))
        .unwrap_or(false)
}

fn validate_name(name: &str, label: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if label {
        if name.len() > 63 {
            errs.push(FieldError::invalid(
                "metadata.name",
                json!(name),
                "must be no more than 63 characters",
            ));
        }
        if !re_match(DNS1123_LABEL, name) {
            errs.push(FieldError::invalid("metadata.name", json!(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
        }
    } else {
        if name.len() > 253 {
            errs.push(FieldError::invalid(
                "metadata.name",
                json!(name),
                "must be no more than 253 characters",
            ));
        }
        if !re_match(DNS1123_SUBDOMAIN, name) {
            errs.push(FieldError::invalid("metadata.name", json!(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        }
    }
    errs
}

fn validate_qualified_name(field: &str, v: &str) -> Vec<FieldError> {
    let (prefix, name) = match v.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() || !re_match(DNS1123_SUBDOMAIN, p) {
            errs.push(FieldError::invalid(field, json!(v), "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        }
    }
    if name.is_empty() {
        errs.push(FieldError::invalid(
            field,
            json!(v),
            "name part must be non-empty",
        ));
    } else if name.len() > 63 {
        errs.push(FieldError::invalid(
            field,
            json!(v),
            "name part must be no more than 63 characters",
        ));
    } else if !re_match(QUALIFIED_NAME, name) {
        errs.push(FieldError::invalid(field, json!(v), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
    }
    errs
}

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

    fn push_event(
        &mut self,
        rd: &ResDef,
        ns: &str,
        etype: &'static str,
        obj: Value,
        old: Option<Value>,
    ) {
        self.history.push_back(EventRec {
            rv: self.rv,
            key: rd.key(),
            ns: ns.to_string(),
            etype,
            obj,
            old,
        });
        if let Some(max) = self.max_history {
            while self.history.len() > max {
                if let Some(e) = self.history.pop_front() {
                    self.history_start = e.rv;
                }
            }
        }
    }

    /// Forget all watch history: any watch from an older RV gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.history_start = self.rv;
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

    pub fn create(
        &mut self,
        rd: &ResDef,
        ns: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        self.check_type_meta(rd, &body)?;
        self.check_body_fields(rd, &body, opts)?;
        let m = meta_mut(&mut body);
        if m.get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if rd.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            if let Some(g) = m
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
            {
                name = format!("{g}{}", random_suffix());
                m.insert("name".into(), json!(name));
            }
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                &rd.gk(),
                "",
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        self.finish_create(rd, ns, &name, body, opts)
    }

    /// The fields of a custom resource's schema that pruning would drop (none for built-ins).
    fn unknown_fields(rd: &ResDef, obj: &Value) -> Vec<String> {
        match (&rd.schema, rd.is_cr()) {
            (Some(s), true) => schema::unknown_fields(s, obj),
            _ => vec![],
        }
    }

    /// fieldValidation for a create / update body: duplicate keys, then unknown fields; a
    /// strict refusal is 400 `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`
    /// (apiserver `pkg/endpoints/handlers/rest.go` `transformDecodeError`).
    fn check_body_fields(
        &self,
        rd: &ResDef,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        let mut errors = opts.decode_errors.clone();
        errors.extend(fieldvalidation::unknown(&Self::unknown_fields(rd, body)));
        opts.enforce(errors, |msg| {
            ApiError::bad_request(format!(
                "{kind} in version \"{v}\" cannot be handled as a {kind}: {msg}",
                kind = rd.kind,
                v = rd.version
            ))
        })
    }

    /// fieldValidation for a JSON merge / JSON patch: the patch's own errors, then the unknown
    /// fields of the patched object; a strict refusal is 422 on field `patch`
    /// (apiserver `pkg/endpoints/handlers/patch.go` `jsonPatcher.applyPatchToCurrentObject`).
    fn check_patch_fields(
        &self,
        rd: &ResDef,
        patch_errors: Vec<String>,
        patched: &Value,
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        let mut errors = patch_errors;
        errors.extend(fieldvalidation::unknown(&Self::unknown_fields(rd, patched)));
        opts.enforce(errors, |msg| {
            ApiError::invalid(
                &GroupResource::new("", ""),
                "",
                &[FieldError::invalid(
                    "patch",
                    json!(patched.to_string()),
                    msg,
                )],
            )
        })
    }

    /// Server-side apply converts the applied object to its typed form first and refuses a
    /// field the schema does not declare, whatever fieldValidation says: a plain error, so a
    /// 500 with no reason (apimachinery `util/managedfields/internal/structuredmerge.go`
    /// `Apply`, "failed to create typed patch object"; kubernetes/kubernetes#122480). Several
    /// fields are listed as structured-merge-diff's `ValidationErrors` print them
    /// (`typed/validate.go`; their order here, sorted, is inferred).
    fn check_applied_fields(rd: &ResDef, applied: &Value) -> Result<(), ApiError> {
        let undeclared: Vec<String> = Self::unknown_fields(rd, applied)
            .iter()
            .map(|p| format!(".{p}: field not declared in schema"))
            .collect();
        if undeclared.is_empty() {
            return Ok(());
        }
        let detail = if undeclared.len() == 1 {
            undeclared[0].clone()
        } else {
            format!("errors:\n  {}", undeclared.join("\n  "))
        };
        Err(ApiError::new(
            500,
            "",
            format!(
                "failed to create typed patch object ({}/{}; {}, Kind={}): {detail}",
                meta_str(applied, "namespace"),
                meta_str(applied, "name"),
                rd.gv(),
                rd.kind
            ),
            None,
        ))
    }

    fn check_type_meta(&self, rd: &ResDef, body: &Value) -> Result<(), ApiError> {
        if let Some(k) = body.get("kind").and_then(Value::as_str) {
            if !k.is_empty() && k != rd.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rd.kind
                )));
            }
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
            if !av.is_empty() && av != rd.gv() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rd.gv()
                )));
            }
        }
        Ok(())
    }

    fn finish_create(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        if rd.namespaced {
            match self.namespace_state(ns) {
                None => {
                    return Err(ApiError::not_found(
                        &GroupResource::new("", "namespaces"),
                        ns,
                    ));
                }
                Some(true) => {
                    return Err(ApiError::forbidden(
                        &rd.gr(),
                        name,
                        &format!("unable to create new content in namespace {ns} because it is being terminated"),
                    ));
                }
                Some(false) => {}
            }
        }
        if let Some(existing) = self.get(rd, ns, name) {
            let deleting = existing.pointer("/metadata/deletionTimestamp").is_some();
            return Err(ApiError::already_exists(&rd.gr(), name, deleting));
        }
        {
            let o = obj.as_object_mut().expect("object");
            o.insert("apiVersion".into(), json!(rd.gv()));
            o.insert("kind".into(), json!(rd.kind));
        }
        let now = now_rfc3339();
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("managedFields");
            m.remove("resourceVersion");
            m.remove("generation");
            if rd.is_cr() {
                m.insert("generation".into(), json!(1));
            }
        }
        if rd.status_sub && rd.class == Class::Custom {
            obj.as_object_mut().expect("object").remove("status");
        }
        let mut errs = validate_name(name, rd.class == Class::Namespace);
        errs.extend(self.validate_finalizers(&obj));
        self.admit(rd, None, &mut obj, "", &mut errs, &mut Vec::new())?;
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rd.gk(), name, &errs));
        }
        let entries = fields::update_entries(None, &obj, &opts.writer, &rd.gv(), "", &now);
        meta_mut(&mut obj).insert("managedFields".into(), fields::render_entries(&entries));
        normalize(&mut obj);
        if opts.dry_run {
            return ok(201, Self::present(rd, &obj));
        }
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.store(rd, ns, name, obj.clone());
        self.push_event(rd, ns, "ADDED", obj.clone(), None);
        if rd.class == Class::Crd {
            self.register_crd_defs(&obj);
        }
        ok(201, Self::present(rd, &obj))
    }

    /// Store `obj` as-is, without admission (no pruning, defaulting, schema or CEL checks): the
    /// form an object written under an older, looser CRD version keeps in etcd. The apiserver
    /// validates only on writes (apiextensions-apiserver `pkg/registry/customresource/strategy.go`:
    /// `Validate` / `ValidateUpdate`); a read decodes the stored object through
    /// `unstructuredSchemaCoercer.apply` (`pkg/apiserver/customresource_handler.go`), which
    /// prunes unknown fields and non-nullable nulls but checks no value, so an out-of-range
    /// `format: int32` integer is served as stored. This hook skips that read-side pruning too:
    /// callers pass fields the schema knows. Server-set metadata (uid, creationTimestamp,
    /// generation 1, resourceVersion) is assigned as on create, and watchers get the same ADDED
    /// event. Test-only.
    pub fn insert_unvalidated(
        &mut self,
        rd: &ResDef,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request("metadata.name is required"));
        }
        if rd.namespaced && self.namespace_state(ns).is_none() {
            return Err(ApiError::not_found(
                &GroupResource::new("", "namespaces"),
                ns,
            ));
        }
        if self.get(rd, ns, &name).is_some() {
            return Err(ApiError::already_exists(&rd.gr(), &name, false));
        }
        {
            let o = obj.as_object_mut().expect("object");
            o.insert("apiVersion".into(), json!(rd.gv()));
            o.insert("kind".into(), json!(rd.kind));
        }
        let rv = self.next_rv();
        let m = meta_mut(&mut obj);
        if rd.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        self.store(rd, ns, &name, obj.clone());
        self.push_event(rd, ns, "ADDED", obj.clone(), None);
        Ok(Self::present(rd, &obj))
    }

    fn validate_finalizers(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for (i, f) in finalizers(obj).iter().enumerate() {
            errs.extend(validate_qualified_name(
                &format!("metadata.finalizers[{i}]"),
                f,
            ));
        }
        errs
    }

    /// Type-specific admission: pruning/defaulting/validation for CRs, and the built-in rules.
    fn admit(
        &self,
        rd: &ResDef,
        old: Option<&Value>,
        obj: &mut Value,
        sub: &str,
        errs: &mut Vec<FieldError>,
        warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        match rd.class {
            Class::Custom => {
                if let Some(s) = &rd.schema {
                    schema::prune_root(s, obj);
                    schema::apply_defaults(s, obj);
                    // Metadata errors (name, finalizers) and the schema's are reported together
                    // (customresource strategy `Validate` aggregates them; seen on a real 1.34
                    // apiserver: an invalid name plus a schema error lists both).
                    {
                        let only = if sub == "status" {
                            Some("status")
                        } else {
                            None
                        };
                        let (found, ratcheted) = schema::validate_object(
                            s,
                            obj,
                            old,
                            only,
                            schema::CelValues::of(self.version),
                        );
                        errs.extend(found);
                        warnings.extend(ratcheted);
                    }
                } else {
                    schema::prune_metadata(obj);
                }
            }
            Class::Secret => {
                let o = obj.as_object_mut().expect("object");
                if let Some(Value::Object(sd)) = o.remove("stringData") {
                    let data = o.entry("data").or_insert_with(|| json!({}));
                    if !data.is_object() {
                        *data = json!({});
                    }
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or("").to_string();
                        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                if !o.contains_key("type") {
                    o.insert("type".into(), json!("Opaque"));
                }
                if let Some(old) = old {
                    if old.get("immutable") == Some(&Value::Bool(true)) {
                        if old.get("data") != obj.get("data") {
                            errs.push(FieldError::forbidden(
                                "data",
                                "field is immutable when `immutable` is set",
                            ));
                        }
                        if obj.get("immutable") != Some(&Value::Bool(true)) {
                            errs.push(FieldError::forbidden(
                                "immutable",
                                "field is immutable when `immutable` is set",
                            ));
                        }
                    }
                    if old.get("type") != obj.get("type") {
                        errs.push(FieldError::invalid(
                            "type",
                            obj.get("type").cloned().unwrap_or(Value::Null),
                            "field is immutable",
                        ));
                    }
                }
            }
            Class::ConfigMap | Class::CoreEvent => {}
            Class::Namespace => {
                let o = obj.as_object_mut().expect("object");
                let phase = if o
                    .get("metadata")
                    .and_then(|m| m.get("deletionTimestamp"))
                    .is_some()
                {
                    "Terminating"
                } else {
                    "Active"
                };
                o.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
                o.insert("status".into(), json!({"phase": phase}));
            }
            Class::Event => validate_event(obj, old, errs),
            Class::Lease => validate_lease(obj, errs),
            Class::Crd => {
                let o = obj.as_object_mut().expect("object");
                let names = o
                    .get("spec")
                    .and_then(|s| s.get("names"))
                    .cloned()
                    .unwrap_or(json!({}));
                if o.get("spec")
                    .and_then(|s| s.get("group"))
                    .and_then(Value::as_str)
                    .is_none()
                {
                    errs.push(FieldError::required("spec.group", ""));
                }
                o.insert(
                    "status".into(),
                    json!({
                        "acceptedNames": names,
                        "conditions": [
                            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now_rfc3339()},
                            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now_rfc3339()}
                        ],
                        "storedVersions": o.get("spec").and_then(|s| s.get("versions")).and_then(Value::as_array)
                            .map(|vs| vs.iter().filter(|v| v.get("storage") == Some(&Value::Bool(true))).filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>())
                            .unwrap_or_default()
                    }),
                );
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- update

    /// PUT. `body` is the full object from the request.
    pub fn replace(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        self.check_type_meta(rd, &body)?;
        self.check_body_fields(rd, &body, opts)?;
        let body_name = meta_str(&body, "name").to_string();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if rd.namespaced {
            let bns = meta_str(&body, "namespace").to_string();
            if !bns.is_empty() && bns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(&mut body).insert("namespace".into(), json!(ns));
        }
        let body_rv = meta_str(&body, "resourceVersion").to_string();
        let Some(old) = self.get(rd, ns, name).cloned() else {
            if matches!(rd.class, Class::Lease | Class::Event) && opts.subresource.is_empty() {
                meta_mut(&mut body).remove("resourceVersion");
                return self.finish_create(rd, ns, name, body, opts);
            }
            return Err(ApiError::not_found(&rd.gr(), name));
        };
        let unconditional_ok = matches!(
            rd.class,
            Class::Secret | Class::ConfigMap | Class::Namespace
        );
        if body_rv.is_empty() {
            if !unconditional_ok {
                return Err(ApiError::invalid(
                    &rd.gr(),
                    name,
                    &[FieldError::invalid(
                        "metadata.resourceVersion",
                        json!(0),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if body_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::optimistic_conflict(&rd.gr(), name));
        }
        self.update_existing(rd, ns, name, old, body, opts)
    }

    /// Common update path for PUT, PATCH and apply on an existing object.
    fn update_existing(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        old: Value,
        mut new: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let sub = opts.subresource.as_str();
        let mut errs = Vec::new();
        if sub == "status" {
            // New object = old one plus only the request's status.
            let status = new.get("status").cloned();
            let mut n = old.clone();
            match status {
                Some(s) => {
                    n["status"] = s;
                }
                None => {
                    n.as_object_mut().expect("object").remove("status");
                }
            }
            new = n;
        } else {
            if rd.status_sub && rd.class == Class::Custom {
                let o = new.as_object_mut().expect("object");
                match old.get("status") {
                    Some(s) => {
                        o.insert("status".into(), s.clone());
                    }
                    None => {
                        o.remove("status");
                    }
                }
            }
            let old_uid = meta_str(&old, "uid").to_string();
            let new_uid = meta_str(&new, "uid").to_string();
            if !new_uid.is_empty() && new_uid != old_uid {
                errs.push(FieldError::invalid(
                    "metadata.uid",
                    json!(new_uid),
                    "field is immutable",
                ));
            }
            let om = meta(&old).clone();
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ] {
                match om.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            m.insert("name".into(), json!(name));
        }
        {
            let o = new.as_object_mut().expect("object");
            o.insert("apiVersion".into(), json!(rd.gv()));
            o.insert("kind".into(), json!(rd.kind));
            let m = meta_mut(&mut new);
            m.insert(
                "resourceVersion".into(),
                old["metadata"]["resourceVersion"].clone(),
            );
            m.remove("managedFields");
        }
        // Finalizers: no new ones while deleting.
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let of = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !of.contains(f))
                .collect();
            if !added.is_empty() {
                let list = added
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                errs.push(FieldError::forbidden(
                    "metadata.finalizers",
                    format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
                ));
            }
        }
        errs.extend(self.validate_finalizers(&new));
        let mut ratcheted = Vec::new();
        self.admit(rd, Some(&old), &mut new, sub, &mut errs, &mut ratcheted)?;
        opts.warnings.borrow_mut().extend(ratcheted);
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rd.gk(), name, &errs));
        }
        // generation
        if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
            let strip: &[&str] = if rd.status_sub {
                &["metadata", "status"]
            } else {
                &["metadata"]
            };
            if rd.is_cr() && without(&old, strip) != without(&new, strip) {
                meta_mut(&mut new).insert("generation".into(), json!(g + 1));
            }
        }
        let now = now_rfc3339();
        normalize(&mut new);
        let entries = fields::update_entries(Some(&old), &new, &opts.writer, &rd.gv(), sub, &now);
        meta_mut(&mut new).insert("managedFields".into(), fields::render_entries(&entries));
        normalize(&mut new);

        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        if deleting && finalizers(&new).is_empty() {
            if opts.dry_run {
                return ok(200, Self::present(rd, &new));
            }
            let rv = self.next_rv();
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
            let mut last = old.clone();
            meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
            self.remove_object(rd, ns, name, last);
            return ok(200, Self::present(rd, &new));
        }
        if comparable(&new) == comparable(&old) {
            return ok(200, Self::present(rd, &old));
        }
        if opts.dry_run {
            return ok(200, Self::present(rd, &new));
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        self.store(rd, ns, name, new.clone());
        self.push_event(rd, ns, "MODIFIED", new.clone(), Some(old));
        if rd.class == Class::Crd {
            self.register_crd_defs(&new);
        }
        ok(200, Self::present(rd, &new))
    }

    fn remove_object(&mut self, rd: &ResDef, ns: &str, name: &str, last: Value) {
        if let Some(m) = self.objects.get_mut(&rd.key()) {
            m.remove(&(ns.to_string(), name.to_string()));
        }
        self.push_event(rd, ns, "DELETED", last.clone(), Some(last.clone()));
        if rd.class == Class::Crd {
            self.unregister_crd(&last);
        }
        if rd.namespaced {
            self.maybe_finish_namespace(ns);
        }
    }

    // ---------------------------------------------------------------- patch

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        force: bool,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let is_cr = rd.is_cr();
        let accepted: &[&str] = if is_cr {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        };
        if !accepted.contains(&ct.as_str()) {
            return Err(ApiError::unsupported_media_type(accepted));
        }
        if ct == "application/apply-patch+yaml" {
            return self.apply(rd, ns, name, body, force, opts);
        }
        if force {
            return Err(ApiError::invalid(
                &GroupResource::new("meta.k8s.io", "PatchOptions"),
                "",
                &[FieldError::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let patch_errors = if ct == "application/json-patch+json" {
            fieldvalidation::json_patch_errors(body)
        } else {
            fieldvalidation::duplicate_fields(body)
        };
        let Some(old) = self.get(rd, ns, name).cloned() else {
            return Err(ApiError::not_found(&rd.gr(), name));
        };
        let mut doc = old.clone();
        normalize(&mut doc);
        let patched = if ct == "application/json-patch+json" {
            if !patch.is_array() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                ));
            }
            if patch.as_array().map(Vec::len).unwrap_or(0) > 10000 {
                return Err(ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    "The request is too large",
                    None,
                ));
            }
            patch::apply_json_patch(&doc, &patch).map_err(|_| {
                ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                    Some(json!({})),
                )
            })?
        } else {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}",
                ));
            }
            patch::merge_patch(&mut doc, &patch);
            doc
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request("patched object is not a JSON object"));
        }
        let prv = meta_str(&patched, "resourceVersion");
        if !prv.is_empty() && prv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::optimistic_conflict(&rd.gr(), name));
        }
        if meta_str(&patched, "name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&patched, "name")
            )));
        }
        self.check_patch_fields(rd, patch_errors, &patched, opts)?;
        self.update_existing(rd, ns, name, old, patched, opts)
    }

    /// Server-side apply.
    fn apply(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        body: &[u8],
        force: bool,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let Writer::Update { manager } = &opts.writer else {
            unreachable!("apply is called with the request's manager")
        };
        if manager.is_empty() {
            return Err(ApiError::invalid(
                &GroupResource::new("meta.k8s.io", "PatchOptions"),
                "",
                &[FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        if manager.len() > 128 {
            return Err(ApiError::invalid(
                &GroupResource::new("meta.k8s.io", "PatchOptions"),
                "",
                &[FieldError::too_long("fieldManager", 128)],
            ));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
        let applied: Value = serde_json::from_str(text)
            .or_else(|_| serde_saphyr::from_str::<Value>(text))
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        let av = applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if av != rd.gv() {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {av}, expected: {}",
                rd.gv()
            )));
        }
        let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != rd.kind {
            return Err(ApiError::bad_request(format!(
                "Incorrect kind specified in apply patch. Specified patch kind: {kind}, expected: {}",
                rd.kind
            )));
        }
        if applied
            .pointer("/metadata/managedFields")
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        Self::check_applied_fields(rd, &applied)?;
        let bname = meta_str(&applied, "name");
        // An apply body without a name (common for status patches) targets the URL's object.
        if !bname.is_empty() && bname != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        // Reset fields: status on the main resource (when a subresource), spec+metadata on /status.
        let mut effective = applied.clone();
        if opts.subresource == "status" {
            if let Some(o) = effective.as_object_mut() {
                o.remove("spec");
                let m = meta_mut(&mut effective);
                m.retain(|k, _| k == "name" || k == "namespace");
            }
        } else if rd.status_sub && rd.class == Class::Custom {
            effective.as_object_mut().expect("object").remove("status");
        }
        let applied_leaves: BTreeSet<fields::Path> = fields::leaves(&effective)
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(p, _)| p)
            .collect();
        let writer = Writer::Apply {
            manager: manager.clone(),
            applied: applied_leaves.clone(),
        };
        let wopts = WriteOpts {
            writer,
            ..opts.clone()
        };
        let Some(old) = self.get(rd, ns, name).cloned() else {
            if opts.subresource == "status" {
                return Err(ApiError::not_found(&rd.gr(), name));
            }
            let uid = meta_str(&applied, "uid");
            if !uid.is_empty() {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {} \"{name}\": uid mismatch: the provided object specified uid {uid}, and no existing object was found", rd.gr().qualified()),
                    Some(rd.gr().details(name)),
                ));
            }
            let mut obj = effective.clone();
            strip_nulls(&mut obj);
            meta_mut(&mut obj).insert("name".into(), json!(name));
            meta_mut(&mut obj).remove("resourceVersion");
            if rd.namespaced {
                meta_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
            return self.finish_create(rd, ns, name, obj, &wopts);
        };
        let arv = meta_str(&applied, "resourceVersion");
        if !arv.is_empty() && arv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::optimistic_conflict(&rd.gr(), name));
        }
        // Conflicts.
        let live_leaves = fields::leaves(&old);
        let applied_vals = fields::leaves(&effective);
        let entries = fields::parse_entries(&old);
        let mut conflicts: Vec<(String, String)> = Vec::new(); // (manager desc, path)
        for p in &applied_leaves {
            let Some(lv) = live_leaves.get(p) else {
                continue;
            };
            if Some(lv) == applied_vals.get(p) {
                continue;
            }
            for e in &entries {
                let own = e.manager == *manager
                    && e.operation == "Apply"
                    && e.subresource == opts.subresource;
                if own || !e.fields.contains(p) {
                    continue;
                }
                let desc = if e.operation == "Update" {
                    format!("\"{}\" using {}", e.manager, e.api_version)
                } else {
                    format!("\"{}\"", e.manager)
                };
                conflicts.push((desc, fields::path_string(p)));
            }
        }
        if !conflicts.is_empty() && !force {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
                .collect();
            let message = if conflicts.len() == 1 {
                format!(
                    "Apply failed with 1 conflict: conflict with {}: {}",
                    conflicts[0].0, conflicts[0].1
                )
            } else {
                let mut by_mgr: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for (m, p) in &conflicts {
                    by_mgr.entry(m.as_str()).or_default().push(p.as_str());
                }
                let mut s = format!("Apply failed with {} conflicts:", conflicts.len());
                for (m, ps) in by_mgr {
                    s.push_str(&format!(" conflicts with {m}:"));
                    for p in ps {
                        s.push_str(&format!("\n- {p}"));
                    }
                }
                s
            };
            let mut details = rd.gr().details(name);
            details["causes"] = Value::Array(causes);
            return Err(ApiError::new(409, "Conflict", message, Some(details)));
        }
        // Merge: drop fields this manager applied before, no longer applies, and nobody else owns.
        let mut merged = old.clone();
        if let Some(prev) = entries.iter().find(|e| {
            e.manager == *manager && e.operation == "Apply" && e.subresource == opts.subresource
        }) {
            for p in &prev.fields {
                if applied_leaves.contains(p) {
                    continue;
                }
                let others = entries.iter().any(|e| {
                    !(e.manager == *manager
                        && e.operation == "Apply"
                        && e.subresource == opts.subresource)
                        && e.fields.contains(p)
                });
                if !others {
                    fields::remove_path(&mut merged, p);
                }
            }
        }
        let mut eff = effective.clone();
        if let Some(m) = eff.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                m.remove(k);
            }
        }
        fields::merge_applied(&mut merged, &eff, &mut vec![]);
        self.update_existing(rd, ns, name, old, merged, &wopts)
    }

    // ---------------------------------------------------------------- delete

    pub fn delete(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        opts_body: &Value,
        dry_run: bool,
    ) -> Result<WriteResult, ApiError> {
        let Some(old) = self.get(rd, ns, name).cloned() else {
            return Err(ApiError::not_found(&rd.gr(), name));
        };
        if let Some(pre) = opts_body.get("preconditions") {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
                let cur = meta_str(&old, "uid");
                if uid != cur {
                    return Err(ApiError::conflict(
                        &rd.gk(),
                        name,
                        &format!("the UID in the precondition ({uid}) does not match the UID in record ({cur}). The object might have been deleted and then recreated"),
                    ));
                }
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
                let cur = meta_str(&old, "resourceVersion");
                if rv != cur {
                    return Err(ApiError::conflict(
                        &rd.gk(),
                        name,
                        &format!("the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({cur}). The object might have been modified"),
                    ));
                }
            }
        }
        if rd.class == Class::Namespace {
            return self.delete_namespace(rd, name, old, dry_run);
        }
        let fins = finalizers(&old);
        if fins.is_empty() {
            if !dry_run {
                let rv = self.next_rv();
                let mut last = old.clone();
                meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
                self.remove_object(rd, ns, name, last);
            }
            let mut details = rd.gr().details(name);
            details["uid"] = json!(meta_str(&old, "uid"));
            return ok(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            );
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return ok(200, Self::present(rd, &old));
        }
        let mut new = old.clone();
        {
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(g) = m.get("generation").and_then(Value::as_i64) {
                if g > 0 {
                    m.insert("generation".into(), json!(g + 1));
                }
            }
        }
        if dry_run {
            return ok(200, Self::present(rd, &new));
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        self.store(rd, ns, name, new.clone());
        self.push_event(rd, ns, "MODIFIED", new.clone(), Some(old));
        ok(200, Self::present(rd, &new))
    }

    fn delete_namespace(
        &mut self,
        rd: &ResDef,
        name: &str,
        old: Value,
        dry_run: bool,
    ) -> Result<WriteResult, ApiError> {
        if dry_run || old.pointer("/metadata/deletionTimestamp").is_some() {
            return ok(200, Self::present(rd, &old));
        }
        let mut new = old.clone();
        meta_mut(&mut new).insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
        new["status"] = json!({"phase": "Terminating"});
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        self.store(rd, "", name, new.clone());
        self.push_event(rd, "", "MODIFIED", new.clone(), Some(old));
        // Delete everything inside (objects with finalizers are only marked).
        let defs: Vec<ResDef> = self.defs.iter().filter(|d| d.namespaced).cloned().collect();
        let mut seen = BTreeSet::new();
        for d in defs {
            if !seen.insert(d.key()) {
                continue;
            }
            let names: Vec<String> = self
                .objects
                .get(&d.key())
                .map(|m| {
                    m.keys()
                        .filter(|(n, _)| n == name)
                        .map(|(_, o)| o.clone())
                        .collect()
                })
                .unwrap_or_default();
            for n in names {
                let _ = self.delete(&d, name, &n, &json!({}), false);
            }
        }
        self.maybe_finish_namespace(name);
        ok(200, Self::present(rd, &new))
    }

    fn maybe_finish_namespace(&mut self, ns: &str) {
        if self.namespace_state(ns) != Some(true) {
            return;
        }
        let empty = self.defs.iter().filter(|d| d.namespaced).all(|d| {
            self.objects
                .get(&d.key())
                .is_none_or(|m| !m.keys().any(|(n, _)| n == ns))
        });
        if empty {
            let nsdef = self
                .defs
                .iter()
                .find(|d| d.class == Class::Namespace)
                .cloned()
                .expect("ns def");
            if let Some(obj) = self.get(&nsdef, "", ns).cloned() {
                let rv = self.next_rv();
                let mut last = obj;
                meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
                if let Some(m) = self.objects.get_mut(&nsdef.key()) {
                    m.remove(&(String::new(), ns.to_string()));
                }
                self.push_event(&nsdef, "", "DELETED", last.clone(), Some(last));
            }
        }
    }

    // ---------------------------------------------------------------- read

    /// Matching objects of a resource, in key order, optionally restricted to a namespace.
    pub fn select(
        &self,
        rd: &ResDef,
        ns: Option<&str>,
        ls: &LabelSelector,
        fs: &FieldSelector,
    ) -> Vec<Value> {
        let Some(m) = self.objects.get(&rd.key()) else {
            return vec![];
        };
        m.iter()
            .filter(|((n, _), _)| ns.is_none_or(|x| x == n))
            .filter(|(_, o)| matches(o, ls, fs))
            .map(|(_, o)| o.clone())
            .collect()
    }

    // ---------------------------------------------------------------- CRDs

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
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
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

pub fn matches(o: &Value, ls: &LabelSelector, fs: &FieldSelector) -> bool {
    ls.matches(o.pointer("/metadata/labels").and_then(Value::as_object)) && fs.matches(o)
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()[..5]
        .iter()
        .map(|b| CHARS[*b as usize % CHARS.len()] as char)
        .collect()
}

fn validate_event(obj: &mut Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    for k in [
        "eventTime",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
    ] {
        if let Some(t) = obj.get(k).and_then(Value::as_str).and_then(micro_time) {
            if k == "eventTime" {
                obj[k] = json!(t);
            }
        }
    }
    if let Some(t) = obj
        .pointer("/series/lastObservedTime")
        .and_then(Value::as_str)
        .and_then(micro_time)
    {
        obj["series"]["lastObservedTime"] = json!(t);
    }
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if obj.get("eventTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required("eventTime", ""));
    }
    let t = s("type");
    if t != "Normal" && t != "Warning" {
        errs.push(FieldError::not_supported(
            "type",
            json!(t),
            &[json!("Normal"), json!("Warning")],
        ));
    }
    let rc = s("reportingController");
    if rc.is_empty() {
        errs.push(FieldError::required("reportingController", ""));
    } else {
        errs.extend(validate_qualified_name("reportingController", &rc));
    }
    for (k, max) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = s(k);
        if v.is_empty() {
            errs.push(FieldError::required(k, ""));
        } else if v.len() > max {
            errs.push(FieldError::too_long(k, max));
        }
    }
    if s("note").len() > 1024 {
        errs.push(FieldError::too_long("note", 1024));
    }
    if let Some(series) = obj.get("series").filter(|v| !v.is_null()) {
        let c = series.get("count").and_then(Value::as_i64).unwrap_or(0);
        if c < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                json!(c),
                "should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    let ens = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rns = obj
        .pointer("/regarding/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if rns.is_empty() {
        if ens != "default" && ens != "kube-system" {
            errs.push(FieldError::invalid(
                "regarding.namespace",
                json!(rns),
                "does not match event.namespace",
            ));
        }
    } else if rns != ens {
        errs.push(FieldError::invalid(
            "regarding.namespace",
            json!(rns),
            "does not match event.namespace",
        ));
    }
    if let Some(old) = old {
        for k in [
            "reason",
            "note",
            "action",
            "type",
            "eventTime",
            "related",
            "reportingController",
            "reportingInstance",
            "regarding",
        ] {
            if old.get(k) != obj.get(k) {
                errs.push(FieldError::invalid(
                    k,
                    obj.get(k).cloned().unwrap_or(Value::Null),
                    "field is immutable",
                ));
            }
        }
    }
}

fn validate_lease(obj: &mut Value, errs: &mut Vec<FieldError>) {
    for k in ["acquireTime", "renewTime"] {
        if let Some(t) = obj
            .pointer(&format!("/spec/{k}"))
            .and_then(Value::as_str)
            .and_then(micro_time)
        {
            obj["spec"][k] = json!(t);
        }
    }
    if let Some(d) = obj
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
    {
        if d <= 0 {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                json!(d),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = obj
        .pointer("/spec/leaseTransitions")
        .and_then(Value::as_i64)
    {
        if t < 0 {
            errs.push(FieldError::invalid(
                "spec.leaseTransitions",
                json!(t),
                "must be greater than or equal to 0",
            ));
        }
    }
    if obj
        .pointer("/spec/preferredHolder")
        .is_some_and(|v| !v.is_null())
        && obj.pointer("/spec/strategy").is_none_or(Value::is_null)
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}
