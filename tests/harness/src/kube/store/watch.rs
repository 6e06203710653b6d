//! List and watch: the change history watches replay, its compaction, and selection for lists.

use super::*;

impl State {
    pub(super) fn push_event(
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
        // One key, not a scan, when the field selector names the object and the scope is known
        // (`Store.ListPredicate`, apiserver `pkg/registry/generic/registry/store.go`: "if name,
        // ok := p.MatchesSingle()" → `GetList` of that key). An operator reading each Secret with
        // a LIST by name made every read scan all Secrets (O(N²) at a restart).
        let scope = if rd.namespaced { ns } else { Some("") };
        if let (Some(ns), Some(name)) = (scope, fs.single_name()) {
            return m
                .get(&(ns.to_string(), name.to_string()))
                .filter(|o| matches(o, ls, fs))
                .into_iter()
                .cloned()
                .collect();
        }
        m.iter()
            .filter(|((n, _), _)| ns.is_none_or(|x| x == n))
            .filter(|(_, o)| matches(o, ls, fs))
            .map(|(_, o)| o.clone())
            .collect()
    }

    // ---------------------------------------------------------------- CRDs
}

pub fn matches(o: &Value, ls: &LabelSelector, fs: &FieldSelector) -> bool {
    ls.matches(o.pointer("/metadata/labels").and_then(Value::as_object)) && fs.matches(o)
}
