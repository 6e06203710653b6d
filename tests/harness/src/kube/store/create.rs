//! Create: `POST` and the objects the emulator stores itself.

use super::admit::validate_name;
use super::*;

impl State {
    pub fn create(
        &mut self,
        rd: &ResDef,
        ns: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        self.check_write_body(rd, &body, opts)?;
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

    pub(super) fn finish_create(
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
}
