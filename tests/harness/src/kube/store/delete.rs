//! Delete: graceful deletion with finalizers, and namespace deletion.

use super::*;

impl State {
    pub(super) fn remove_object(&mut self, rd: &ResDef, ns: &str, name: &str, last: Value) {
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

    pub(super) fn delete_namespace(
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

    pub(super) fn maybe_finish_namespace(&mut self, ns: &str) {
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
}
