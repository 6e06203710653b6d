//! Update: `PUT`, and the common path of every write to an existing object.

use super::*;

impl State {
    /// PUT. `body` is the full object from the request.
    pub fn replace(
        &mut self,
        rd: &ResDef,
        ns: &str,
        name: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        self.check_write_body(rd, &body, opts)?;
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
    pub(super) fn update_existing(
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
}
