//! Which InferenceEndpoints reference which Secrets, kept in step with the InferenceEndpoint
//! watch, so a Secret event finds its objects with one lookup instead of scanning every cached
//! object (a cluster may hold many unrelated Secrets).
//!
//! It follows the watcher's event protocol like the reflector store does: `Init` starts a fresh
//! index, `InitApply` fills it, `InitDone` swaps it in; `Apply` and `Delete` change it live.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::api::InferenceEndpoint;
use crate::controller::decode::Decoded;

/// A Secret, by namespace and name.
pub type SecretKey = (String, String);

/// Every Secret `iep` reads: the service's secrets, the Elasticsearch credentials and CA, or
/// ECK's conventional Secrets for `elasticsearchRef` (possibly in another namespace).
pub fn secrets_of(iep: &InferenceEndpoint) -> Vec<SecretKey> {
    // Without a namespace it reads nothing (its reconcile reports the missing identity).
    let Some(own) = iep.namespace() else {
        return Vec::new();
    };
    let local = |name: &str| (own.clone(), name.to_owned());
    let spec = &iep.spec;
    let mut keys = Vec::new();
    if let Some(azure) = &spec.azure_open_ai {
        let oauth2 = azure.oauth2.as_ref().map(|o| &o.client_secret_secret_ref);
        for reference in [
            azure.api_key_secret_ref.as_ref(),
            azure.entra_id_secret_ref.as_ref(),
            oauth2,
        ]
        .into_iter()
        .flatten()
        {
            keys.push(local(&reference.name));
        }
    }
    if let Some(service) = &spec.service {
        for source in service.secret_settings.values() {
            let key = source.secret_key_ref.as_ref().map(|k| k.name.as_str());
            let whole = source.secret_ref.as_ref().map(|s| s.name.as_str());
            keys.extend(key.or(whole).map(local));
        }
    }
    if let Some(connection) = &spec.elasticsearch {
        if let Some(reference) = &connection.credentials_secret_ref {
            keys.push(local(&reference.name));
        }
        if let Some(reference) = &connection.ca_secret_ref {
            keys.push(local(&reference.name));
        }
    }
    if let Some(eck) = &spec.elasticsearch_ref {
        let namespace = eck.namespace.clone().unwrap_or_else(|| own.clone());
        for suffix in ["-es-elastic-user", "-es-http-certs-public"] {
            keys.push((namespace.clone(), format!("{}{suffix}", eck.name)));
        }
    }
    keys
}

/// An indexed object, by namespace and name: all a Secret event needs to trigger its reconcile
/// (its resourceVersion and uid, which an `ObjectRef` also carries, are not needed), shared
/// between both maps.
#[derive(Debug, Hash, PartialEq, Eq)]
struct Object {
    namespace: Option<Box<str>>,
    name: Box<str>,
}

impl Object {
    fn of(decoded: &Decoded) -> Self {
        Object {
            namespace: decoded.namespace().map(String::into_boxed_str),
            name: decoded.name_any().into_boxed_str(),
        }
    }

    fn object_ref(&self) -> ObjectRef<Decoded> {
        let object = ObjectRef::new(&self.name);
        match &self.namespace {
            Some(namespace) => object.within(namespace),
            None => object,
        }
    }
}

/// Secrets are kept as 64-bit hashes of namespace/name (`hash_of`): a collision of two Secrets
/// only makes an event of one also reconcile the objects of the other (a re-check that writes
/// nothing), never misses an object. Per object this is one shared `Object` and a few words,
/// ~0.3 KB, where full `ObjectRef`s in a set per Secret and the Secret names per object were
/// ~1.1 KB (docs/benchmarks.md#memory-after-bounding-the-burst-issue-16).
#[derive(Default)]
struct Index {
    by_secret: HashMap<u64, Vec<Arc<Object>>>,
    by_object: HashMap<Arc<Object>, Box<[u64]>>,
}

impl Index {
    /// An object that does not decode references nothing the operator would read.
    fn put(&mut self, decoded: &Decoded) {
        let object = Object::of(decoded);
        let mut secrets: Vec<u64> = decoded
            .typed()
            .map(secrets_of)
            .unwrap_or_default()
            .iter()
            .map(|(namespace, name)| hash_of(&[namespace, name]))
            .collect();
        secrets.sort_unstable();
        secrets.dedup();
        // Most events of an object (its status, its other spec fields) keep its Secrets.
        if self.by_object.get(&object).map(|known| &known[..]) == Some(&secrets[..]) {
            return;
        }
        self.remove(&object);
        let object = Arc::new(object);
        for secret in &secrets {
            self.by_secret
                .entry(*secret)
                .or_default()
                .push(object.clone());
        }
        self.by_object.insert(object, secrets.into_boxed_slice());
    }

    fn remove(&mut self, object: &Object) {
        let Some((object, secrets)) = self.by_object.remove_entry(object) else {
            return;
        };
        for secret in secrets.iter() {
            if let Some(objects) = self.by_secret.get_mut(secret) {
                objects.retain(|o| !Arc::ptr_eq(o, &object));
                if objects.is_empty() {
                    self.by_secret.remove(secret);
                }
            }
        }
    }
}

#[derive(Default)]
pub struct SecretIndex {
    live: Mutex<Index>,
    /// Being rebuilt by a (re-)list.
    pending: Mutex<Option<Index>>,
}

impl SecretIndex {
    pub fn apply(&self, event: &watcher::Event<Decoded>) {
        match event {
            watcher::Event::Apply(iep) => lock(&self.live).put(iep),
            watcher::Event::Delete(iep) => lock(&self.live).remove(&Object::of(iep)),
            watcher::Event::Init => *lock(&self.pending) = Some(Index::default()),
            watcher::Event::InitApply(iep) => lock(&self.pending)
                .get_or_insert_with(Index::default)
                .put(iep),
            watcher::Event::InitDone => {
                let rebuilt = lock(&self.pending).take().unwrap_or_default();
                *lock(&self.live) = rebuilt;
            }
        }
    }

    /// The objects that read Secret `namespace/name`.
    pub fn referencing(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Decoded>> {
        lock(&self.live)
            .by_secret
            .get(&hash_of(&[namespace, name]))
            .map(|objects| objects.iter().map(|o| o.object_ref()).collect())
            .unwrap_or_default()
    }
}

/// Every scope's index, and a way into every scope's controller.
///
/// With `--namespace a,b` each namespace has its own controller and watches. A Secret event is
/// seen only by the scope of the Secret's namespace, yet an `elasticsearchRef` in `a` may read
/// ECK's Secrets in `b`: the event must reach `a`'s controller too. Each scope registers its
/// index here and gets a stream of objects to reconcile that other scopes' Secret watches
/// found.
#[derive(Default)]
pub struct SecretRouter {
    scopes: Mutex<Vec<Scope>>,
}

struct Scope {
    index: Arc<SecretIndex>,
    trigger: mpsc::UnboundedSender<ObjectRef<Decoded>>,
}

impl SecretRouter {
    /// Register a scope's index; the receiver yields objects of that scope to reconcile.
    pub fn join(&self, index: Arc<SecretIndex>) -> mpsc::UnboundedReceiver<ObjectRef<Decoded>> {
        let (trigger, triggered) = mpsc::unbounded_channel();
        lock(&self.scopes).push(Scope { index, trigger });
        triggered
    }

    /// The objects of scope `own` that read Secret `namespace/name`; objects of other scopes
    /// that read it are sent to their controllers.
    pub fn route(
        &self,
        own: &Arc<SecretIndex>,
        namespace: &str,
        name: &str,
    ) -> Vec<ObjectRef<Decoded>> {
        for scope in lock(&self.scopes).iter() {
            if Arc::ptr_eq(&scope.index, own) {
                continue;
            }
            for object in scope.index.referencing(namespace, name) {
                // A closed receiver means that scope has stopped; nothing to wake.
                let _ = scope.trigger.send(object);
            }
        }
        own.referencing(namespace, name)
    }
}

/// The resourceVersion of every Secret the metadata-only watch sees, so a re-check can tell a
/// Secret it read before is unchanged without reading it again (docs/lifecycle.md#batched-re-checks).
/// Kept as 64-bit hashes of namespace/name and of the version (resourceVersions are opaque
/// strings; a collision of two versions of one Secret, the only one that matters, has odds of
/// 2^-64), so 10,000 unrelated Secrets cost ~0.3 MiB. Follows the watcher's event protocol like
/// [`SecretIndex`]: a re-list replaces the map once complete, so a Secret deleted while the
/// watch was down does not keep its old version.
#[derive(Default)]
pub struct SecretVersions {
    live: Mutex<HashMap<u64, u64>>,
    pending: Mutex<Option<HashMap<u64, u64>>>,
    /// A listing has completed: `live` is what the watch saw before any re-list.
    listed: std::sync::atomic::AtomicBool,
}

/// A Secret's resourceVersion as the watch last saw it, hashed ([`SecretVersions`]).
pub type Version = u64;

fn hash_of(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same within the process, which is all the map needs.
    let mut hasher = std::hash::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// A resourceVersion as [`SecretVersions`] keeps it.
pub fn version_of(resource_version: &str) -> Version {
    hash_of(&[resource_version])
}

impl SecretVersions {
    pub fn apply<K>(&self, event: &watcher::Event<K>)
    where
        K: kube::Resource,
    {
        let entry = |secret: &K| {
            let meta = secret.meta();
            let (namespace, name) = (meta.namespace.as_deref()?, meta.name.as_deref()?);
            let version = meta.resource_version.as_deref()?;
            Some((hash_of(&[namespace, name]), version_of(version)))
        };
        match event {
            watcher::Event::Apply(secret) => {
                if let Some((key, version)) = entry(secret) {
                    lock(&self.live).insert(key, version);
                }
            }
            watcher::Event::Delete(secret) => {
                if let Some((key, _)) = entry(secret) {
                    lock(&self.live).remove(&key);
                }
            }
            watcher::Event::Init => *lock(&self.pending) = Some(HashMap::new()),
            watcher::Event::InitApply(secret) => {
                if let Some((key, version)) = entry(secret) {
                    lock(&self.pending)
                        .get_or_insert_with(HashMap::new)
                        .insert(key, version);
                }
            }
            watcher::Event::InitDone => {
                let rebuilt = lock(&self.pending).take().unwrap_or_default();
                *lock(&self.live) = rebuilt;
                self.listed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Whether `event` (not yet applied) tells of a change of a Secret, so the objects naming it
    /// must look again. A listing tells of none at the first start (every object has its own
    /// first pass, which reads what it needs); a re-list after a gap tells of the Secrets whose
    /// version differs from the one last seen, or that were not seen (created in the gap).
    /// Otherwise a re-list, or the first listing racing the objects' first passes, would bring
    /// a second pass to every object.
    pub fn is_change<K>(&self, event: &watcher::Event<K>) -> bool
    where
        K: kube::Resource,
    {
        match event {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => true,
            watcher::Event::InitApply(secret) => {
                let meta = secret.meta();
                let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) else {
                    return false;
                };
                let version = meta.resource_version.as_deref().map(version_of);
                self.listed.load(Ordering::Relaxed)
                    && (version.is_none() || self.current(namespace, name) != version)
            }
            watcher::Event::Init | watcher::Event::InitDone => false,
        }
    }

    /// The version of Secret `namespace/name` the watch last saw (`None`: not seen, e.g. in a
    /// namespace this scope does not watch, or deleted).
    pub fn current(&self, namespace: &str, name: &str) -> Option<Version> {
        lock(&self.live).get(&hash_of(&[namespace, name])).copied()
    }

    /// The versions of every Secret in `secrets`, in order; `None` if any is unknown.
    pub fn all(&self, secrets: &[SecretKey]) -> Option<Vec<Version>> {
        secrets
            .iter()
            .map(|(namespace, name)| self.current(namespace, name))
            .collect()
    }
}

/// A hash of a list of versions (with what they belong to), for cache keys.
pub fn versions_key(parts: &[&str], versions: &[Version]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    parts.hash(&mut hasher);
    versions.hash(&mut hasher);
    hasher.finish()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The index is rebuilt on every re-list; a poisoned lock cannot leave it worse than stale.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use kube::core::PartialObjectMeta;
    use serde_json::{json, Value};

    fn iep(name: &str, namespace: &str, spec: Value) -> Decoded {
        serde_json::from_value(json!({
            "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec
        }))
        .unwrap()
    }

    fn direct(name: &str, azure_secret: &str) -> Decoded {
        iep(
            name,
            "ns",
            json!({
                "elasticsearch": {"url": "https://es:9200", "credentialsSecretRef": {"name": "es-creds"}, "caSecretRef": {"name": "es-ca"}},
                "taskType": "completion",
                "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v", "apiKeySecretRef": {"name": azure_secret, "key": "k"}}
            }),
        )
    }

    fn names(refs: Vec<ObjectRef<Decoded>>) -> Vec<String> {
        let mut names: Vec<_> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn every_kind_of_reference_is_indexed() {
        let eck = iep(
            "b",
            "ns",
            json!({
                "elasticsearchRef": {"name": "quickstart", "namespace": "elastic"},
                "taskType": "completion",
                "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v", "entraIdSecretRef": {"name": "entra", "key": "k"}}
            }),
        );
        let index = SecretIndex::default();
        index.apply(&watcher::Event::Apply(direct("a", "azure")));
        index.apply(&watcher::Event::Apply(eck));
        for secret in ["es-creds", "es-ca", "azure"] {
            assert_eq!(names(index.referencing("ns", secret)), ["a"], "{secret}");
        }
        assert_eq!(names(index.referencing("ns", "entra")), ["b"]);
        assert_eq!(
            names(index.referencing("elastic", "quickstart-es-elastic-user")),
            ["b"]
        );
        assert_eq!(
            names(index.referencing("elastic", "quickstart-es-http-certs-public")),
            ["b"]
        );
        assert!(index
            .referencing("ns", "quickstart-es-elastic-user")
            .is_empty());
        assert!(index.referencing("other", "azure").is_empty());
        assert!(index.referencing("ns", "unrelated").is_empty());
    }

    #[test]
    fn changes_and_deletes_update_the_index() {
        let index = SecretIndex::default();
        index.apply(&watcher::Event::Apply(direct("a", "azure")));
        index.apply(&watcher::Event::Apply(direct("b", "azure")));
        assert_eq!(names(index.referencing("ns", "azure")), ["a", "b"]);
        index.apply(&watcher::Event::Apply(direct("a", "azure-v2")));
        assert_eq!(names(index.referencing("ns", "azure")), ["b"]);
        assert_eq!(names(index.referencing("ns", "azure-v2")), ["a"]);
        index.apply(&watcher::Event::Delete(direct("b", "azure")));
        assert!(index.referencing("ns", "azure").is_empty());
        assert_eq!(names(index.referencing("ns", "es-creds")), ["a"]);
    }

    #[test]
    fn an_object_is_found_once_however_often_it_names_a_secret() {
        let both = iep(
            "a",
            "ns",
            json!({
                "elasticsearch": {"url": "https://es:9200", "credentialsSecretRef": {"name": "es"}, "caSecretRef": {"name": "es"}},
                "taskType": "completion",
                "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v", "apiKeySecretRef": {"name": "es", "key": "k"}}
            }),
        );
        let index = SecretIndex::default();
        index.apply(&watcher::Event::Apply(both));
        // The same object again (a status change): still one entry.
        index.apply(&watcher::Event::Apply(direct("b", "azure")));
        index.apply(&watcher::Event::Apply(direct("b", "azure")));
        assert_eq!(names(index.referencing("ns", "es")), ["a"]);
        assert_eq!(names(index.referencing("ns", "azure")), ["b"]);
        let found = index.referencing("ns", "azure").pop().unwrap();
        assert_eq!(found.namespace.as_deref(), Some("ns"));
        index.apply(&watcher::Event::Delete(direct("b", "azure")));
        assert!(index.referencing("ns", "azure").is_empty());
        assert_eq!(names(index.referencing("ns", "es")), ["a"]);
    }

    #[test]
    fn secret_events_reach_objects_of_other_scopes() {
        let router = SecretRouter::default();
        let (a, b) = (
            Arc::new(SecretIndex::default()),
            Arc::new(SecretIndex::default()),
        );
        let mut to_a = router.join(a.clone());
        let mut to_b = router.join(b.clone());
        let eck = iep(
            "search",
            "team-a",
            json!({
                "elasticsearchRef": {"name": "quickstart", "namespace": "elastic"},
                "taskType": "completion",
                "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v", "apiKeySecretRef": {"name": "azure", "key": "k"}}
            }),
        );
        a.apply(&watcher::Event::Apply(eck));
        // Scope b (namespace elastic) sees the rotated password; the object lives in a.
        let own = router.route(&b, "elastic", "quickstart-es-elastic-user");
        assert!(own.is_empty());
        assert_eq!(to_a.try_recv().unwrap().name, "search");
        assert!(to_a.try_recv().is_err() && to_b.try_recv().is_err());
        // An event in a's own namespace is returned, not sent.
        assert_eq!(names(router.route(&a, "team-a", "azure")), ["search"]);
        assert!(to_a.try_recv().is_err());
    }

    fn secret(namespace: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata.namespace = Some(namespace.into());
        meta.metadata.name = Some(name.into());
        meta.metadata.resource_version = Some(version.into());
        meta
    }

    #[test]
    fn versions_follow_the_watch() {
        let versions = SecretVersions::default();
        assert_eq!(versions.current("ns", "a"), None);
        versions.apply(&watcher::Event::Apply(secret("ns", "a", "1")));
        let first = versions.current("ns", "a").unwrap();
        assert_eq!(versions.current("other", "a"), None);
        versions.apply(&watcher::Event::Apply(secret("ns", "a", "2")));
        assert_ne!(versions.current("ns", "a"), Some(first));
        versions.apply(&watcher::Event::Apply(secret("ns", "b", "7")));
        let keys = [
            ("ns".to_owned(), "a".to_owned()),
            ("ns".to_owned(), "b".to_owned()),
        ];
        assert!(versions.all(&keys).is_some());
        versions.apply(&watcher::Event::Delete(secret("ns", "b", "8")));
        assert_eq!(versions.current("ns", "b"), None);
        assert!(versions.all(&keys).is_none());
        // A re-list: until it is complete the old view answers; then Secrets not listed are gone.
        versions.apply(&watcher::Event::<PartialObjectMeta<Secret>>::Init);
        versions.apply(&watcher::Event::InitApply(secret("ns", "c", "9")));
        assert!(versions.current("ns", "a").is_some());
        versions.apply(&watcher::Event::<PartialObjectMeta<Secret>>::InitDone);
        assert_eq!(versions.current("ns", "a"), None);
        assert!(versions.current("ns", "c").is_some());
    }

    #[test]
    fn only_a_relist_after_a_gap_tells_of_changed_secrets() {
        let versions = SecretVersions::default();
        let init = watcher::Event::<PartialObjectMeta<Secret>>::Init;
        let done = watcher::Event::<PartialObjectMeta<Secret>>::InitDone;
        let listed = watcher::Event::InitApply;
        // The first listing: every object has its own first pass.
        versions.apply(&init);
        assert!(!versions.is_change(&listed(secret("ns", "a", "1"))));
        versions.apply(&listed(secret("ns", "a", "1")));
        versions.apply(&listed(secret("ns", "b", "1")));
        versions.apply(&done);
        assert!(versions.is_change(&watcher::Event::Apply(secret("ns", "a", "2"))));
        assert!(versions.is_change(&watcher::Event::Delete(secret("ns", "a", "1"))));
        // A re-list: unchanged, changed in the gap, created in the gap.
        versions.apply(&init);
        assert!(!versions.is_change(&listed(secret("ns", "a", "1"))));
        assert!(versions.is_change(&listed(secret("ns", "b", "5"))));
        assert!(versions.is_change(&listed(secret("ns", "c", "1"))));
        assert!(!versions.is_change(&init) && !versions.is_change(&done));
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let index = SecretIndex::default();
        index.apply(&watcher::Event::Apply(direct("gone", "old")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(direct("kept", "new")));
        // Until InitDone the previous view still answers.
        assert_eq!(names(index.referencing("ns", "old")), ["gone"]);
        index.apply(&watcher::Event::InitDone);
        assert!(index.referencing("ns", "old").is_empty());
        assert_eq!(names(index.referencing("ns", "new")), ["kept"]);
    }
}
