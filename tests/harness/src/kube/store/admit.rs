//! Admission shared by the write verbs: type meta, unknown fields, names, finalizers, the CRD
//! schema and CEL, and the built-in kinds' validation (Events, Leases).

use super::*;

impl State {
    /// The fields of a custom resource's schema that pruning would drop (none for built-ins).
    pub(super) fn unknown_fields(rd: &ResDef, obj: &Value) -> Vec<String> {
        match (&rd.schema, rd.is_cr()) {
            (Some(s), true) => schema::unknown_fields(s, obj),
            _ => vec![],
        }
    }

    /// fieldValidation for a create / update body: duplicate keys, then unknown fields; a
    /// strict refusal is 400 `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`
    /// (apiserver `pkg/endpoints/handlers/rest.go` `transformDecodeError`).
    pub(super) fn check_body_fields(
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

    /// What every create and update body must pass first: a JSON object, its kind and
    /// apiVersion, and fieldValidation.
    pub(super) fn check_write_body(
        &self,
        rd: &ResDef,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        self.check_type_meta(rd, body)?;
        self.check_body_fields(rd, body, opts)
    }

    pub(super) fn check_type_meta(&self, rd: &ResDef, body: &Value) -> Result<(), ApiError> {
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

    pub(super) fn validate_finalizers(&self, obj: &Value) -> Vec<FieldError> {
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
    pub(super) fn admit(
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
}

/// Whether `s` matches the pattern `re`; each pattern is compiled once per thread (compiling
/// the name patterns on every write was a twentieth of the write path; perf, issue 16).
pub(super) fn re_match(re: &str, s: &str) -> bool {
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Option<regex::Regex>>> =
            RefCell::new(HashMap::new());
    }
    COMPILED.with(|cache| {
        cache
            .borrow_mut()
            .entry(re.to_owned())
            .or_insert_with(|| regex::Regex::new(re).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(s))
    })
}

pub(super) fn validate_name(name: &str, label: bool) -> Vec<FieldError> {
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

pub(super) fn validate_qualified_name(field: &str, v: &str) -> Vec<FieldError> {
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

pub(super) fn validate_event(obj: &mut Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
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

pub(super) fn validate_lease(obj: &mut Value, errs: &mut Vec<FieldError>) {
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
