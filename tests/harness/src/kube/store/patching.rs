//! Patch: JSON patch, merge patch and server-side apply.

use super::*;

impl State {
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

    /// fieldValidation for a JSON merge / JSON patch: the patch's own errors, then the unknown
    /// fields of the patched object; a strict refusal is 422 on field `patch`
    /// (apiserver `pkg/endpoints/handlers/patch.go` `jsonPatcher.applyPatchToCurrentObject`).
    pub(super) fn check_patch_fields(
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
    pub(super) fn check_applied_fields(rd: &ResDef, applied: &Value) -> Result<(), ApiError> {
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

    /// Server-side apply.
    pub(super) fn apply(
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
}
