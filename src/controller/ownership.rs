//! Which object may manage an endpoint when several name the same one.
//!
//! An endpoint is identified by (cluster UUID, inference id). [`Record::owns`] is the one
//! definition of "this object manages that endpoint": its status records the id, and the
//! cluster it recorded (if any) is the one answering now. An object that owns an endpoint keeps
//! it. Before its status records one, an endpoint its own create left unseen is its own too
//! ([`own_create_landed`], from the creates recorded on the object). Among objects that have not created anything yet and point at the same Elasticsearch
//! (same URL or same ECK reference), the oldest wins; ties are broken by namespace/name. An
//! owner being deleted keeps its claim until it is gone (its cleanup may still delete the
//! endpoint); a newcomer being deleted has none.
//!
//! The decision ([`claimed_by`]) is pure. Its input comes from the [`OwnershipIndex`]: the
//! ownership facts of every object the operator watches, in every scope (`--namespace a,b`
//! runs one watch per namespace, and a claim in `a` must stop a newcomer in `b`). The index
//! follows each scope's watch events like the reflector store does: `Init` starts a fresh copy
//! of that scope, `InitApply` fills it, `InitDone` swaps it in; `Apply` and `Delete` change it
//! live.
//!
//! The index only knows what this operator installation watches: another installation (or
//! namespaces outside `--namespace`) can still hold the same id in the same cluster unseen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::api::{InferenceEndpoint, InferenceEndpointStatus};
use crate::controller::decode::Decoded;
use crate::controller::identity::Identity;
use crate::controller::in_flight::Intents;
use crate::elasticsearch::normalize::compare;
use crate::elasticsearch::{Endpoint, EsVersion};

/// What an object's status records about the endpoint it manages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub inference_id: Option<String>,
    pub cluster_uuid: Option<String>,
}

impl Record {
    pub fn of(status: Option<&InferenceEndpointStatus>) -> Self {
        Record {
            inference_id: status.and_then(|s| s.inference_id.clone()),
            cluster_uuid: status.and_then(|s| s.cluster.as_ref().map(|c| c.uuid.clone())),
        }
    }

    /// Whether the status records `inference_id`, in whatever cluster.
    pub fn names(&self, inference_id: &str) -> bool {
        self.inference_id.as_deref() == Some(inference_id)
    }

    /// The cluster recorded for the endpoint this object owns (none without a recorded id).
    pub fn recorded_cluster(&self) -> Option<&str> {
        self.inference_id.as_ref().and(self.cluster_uuid.as_deref())
    }

    /// Whether this object manages `inference_id` in cluster `cluster_uuid`. A recorded id
    /// without a recorded cluster counts in any cluster (the conservative reading).
    pub fn owns(&self, inference_id: &str, cluster_uuid: &str) -> bool {
        self.names(inference_id)
            && self
                .cluster_uuid
                .as_deref()
                .is_none_or(|recorded| recorded == cluster_uuid)
    }
}

/// Which Elasticsearch an object addresses by its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// `spec.elasticsearch.url`, without trailing `/`, lowercased.
    Url(String),
    /// `spec.elasticsearchRef` as (namespace, name).
    Eck(String, String),
}

/// The ownership facts of one object: all [`claimed_by`] needs, a few strings instead of the
/// whole object.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimant {
    uid: String,
    namespace: String,
    name: String,
    /// The id the spec names (immutable).
    pub inference_id: String,
    pub record: Record,
    target: Option<Target>,
    created: Option<Time>,
    deleting: bool,
}

impl Claimant {
    pub fn of(who: &Identity, iep: &InferenceEndpoint) -> Self {
        let namespace = who.namespace.clone();
        let spec = &iep.spec;
        let target = match (&spec.elasticsearch, &spec.elasticsearch_ref) {
            (Some(connection), _) => Some(Target::Url(
                connection.url.trim_end_matches('/').to_ascii_lowercase(),
            )),
            (None, Some(eck)) => Some(Target::Eck(
                eck.namespace.clone().unwrap_or_else(|| namespace.clone()),
                eck.name.clone(),
            )),
            (None, None) => None,
        };
        Claimant {
            uid: who.uid.clone(),
            name: who.name.clone(),
            inference_id: iep.inference_id().to_owned(),
            record: Record::of(iep.status.as_ref()),
            target,
            created: iep.metadata.creation_timestamp.clone(),
            deleting: iep.metadata.deletion_timestamp.is_some(),
            namespace,
        }
    }

    /// The claim of a watched object. One whose spec does not decode still claims the
    /// endpoint its status records (its spec cannot name anything else); without one, nothing.
    /// Nor does an object without an identity (its reconcile reports the error).
    pub fn of_decoded(decoded: &Decoded) -> Option<Self> {
        let who = Identity::of(decoded).ok()?;
        let invalid = match &decoded.0 {
            Ok(iep) => return Some(Claimant::of(&who, iep)),
            Err(invalid) => invalid,
        };
        let record = Record::of(invalid.status.as_ref());
        let meta = &invalid.metadata;
        Some(Claimant {
            uid: who.uid,
            namespace: who.namespace,
            name: who.name,
            inference_id: record.inference_id.clone()?,
            record,
            target: None,
            created: meta.creation_timestamp.clone(),
            deleting: meta.deletion_timestamp.is_some(),
        })
    }

    fn same_target(&self, other: &Claimant) -> bool {
        self.target.is_some() && self.target == other.target
    }

    fn is_older_than(&self, other: &Claimant) -> bool {
        let key = |c: &Claimant| (c.created.clone(), c.namespace.clone(), c.name.clone());
        key(self) < key(other)
    }
}

/// `namespace/name` of another object that manages `me`'s inference id in cluster
/// `cluster_uuid` (or will, being older and aimed at the same Elasticsearch), if any.
pub fn claimed_by(me: &Claimant, others: &[Claimant], cluster_uuid: &str) -> Option<String> {
    let id = me.inference_id.as_str();
    if me.record.owns(id, cluster_uuid) {
        return None;
    }
    others
        .iter()
        .filter(|other| other.uid != me.uid && other.inference_id == id)
        .find(|other| {
            let unclaimed_elder = !other.deleting
                && other.record.inference_id.is_none()
                && me.same_target(other)
                && other.is_older_than(me);
            other.record.owns(id, cluster_uuid) || unclaimed_elder
        })
        .map(|other| format!("{}/{}", other.namespace, other.name))
}

/// Whether `endpoint`, which the status does not record, is one this object created itself: a
/// create whose answer it never saw (the process was killed, the PUT timed out) landed after all,
/// possibly after the spec changed. It is when the status records no endpoint at all and
/// `endpoint` holds the settings of a create the object recorded before sending it
/// ([`Intents`], the same comparison as adoption: service, task type and every setting).
///
/// Sound because Elasticsearch refuses a PUT for an id that exists: `ModelRegistry.storeModel`
/// indexes the endpoint with `OpType.CREATE` and turns the version conflict into
/// `resource_already_exists_exception` (elastic/elasticsearch
/// x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/registry/ModelRegistry.java,
/// `createIndexRequest` with `allowOverwriting` false). So an endpoint with those settings is
/// either the object's create, landed, or one that equals what the object asked for; an endpoint
/// that was there before (someone else's) made the object's PUT fail and keeps its own settings,
/// which match no recorded create unless they match the spec the object asked for (then
/// adoption takes it anyway). Another object's claim is checked separately ([`claimed_by`]) and
/// still wins.
pub fn own_create_landed(
    record: &Record,
    intents: &Intents,
    endpoint: &Endpoint,
    version: &EsVersion,
) -> bool {
    record.inference_id.is_none()
        && intents
            .asked()
            .iter()
            .any(|asked| compare(asked, endpoint, version).is_empty())
}

/// A watch scope: one namespace, or all (`None`).
pub type Scope = Option<String>;

/// Which id a stored claimant's status records: usually the one its spec names (the key it is
/// stored under), so that one costs no string.
#[derive(Clone, Debug, PartialEq)]
enum RecordedId {
    None,
    Spec,
    Other(Box<str>),
}

/// [`Target`] with exactly sized strings.
#[derive(Clone, Debug, PartialEq)]
enum StoredTarget {
    Url(Box<str>),
    Eck(Box<str>, Box<str>),
}

/// A [`Claimant`] as the index keeps it, without its inference id (the key it is stored
/// under): every string exactly sized, namespace and name in one allocation, the uid shared
/// with the uid → id map. About half the heap of a `Claimant` in a map of its own
/// (docs/benchmarks.md#memory-binary-and-per-object-h17-slim); [`Stored::claimant`] gives the
/// `Claimant` back whole.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    uid: Arc<str>,
    /// `namespace/name` in one allocation, split again at `namespace_len`.
    path: Box<str>,
    namespace_len: u32,
    recorded_id: RecordedId,
    cluster_uuid: Option<Box<str>>,
    target: Option<StoredTarget>,
    created: Option<Time>,
    deleting: bool,
}

impl Stored {
    fn of(claimant: Claimant, uid: Arc<str>) -> Self {
        let recorded_id = match claimant.record.inference_id {
            None => RecordedId::None,
            Some(id) if id == claimant.inference_id => RecordedId::Spec,
            Some(id) => RecordedId::Other(id.into_boxed_str()),
        };
        Stored {
            uid,
            namespace_len: claimant.namespace.len() as u32,
            path: format!("{}/{}", claimant.namespace, claimant.name).into_boxed_str(),
            recorded_id,
            cluster_uuid: claimant.record.cluster_uuid.map(String::into_boxed_str),
            target: claimant.target.map(|target| match target {
                Target::Url(url) => StoredTarget::Url(url.into_boxed_str()),
                Target::Eck(namespace, name) => {
                    StoredTarget::Eck(namespace.into_boxed_str(), name.into_boxed_str())
                }
            }),
            created: claimant.created,
            deleting: claimant.deleting,
        }
    }

    /// The claimant stored under `inference_id`, as [`Claimant::of_decoded`] made it.
    fn claimant(&self, inference_id: &str) -> Claimant {
        let (namespace, name) = self.path.split_at(self.namespace_len as usize);
        let recorded = match &self.recorded_id {
            RecordedId::None => None,
            RecordedId::Spec => Some(inference_id.to_owned()),
            RecordedId::Other(id) => Some(id.to_string()),
        };
        Claimant {
            uid: self.uid.to_string(),
            namespace: namespace.to_owned(),
            name: name[1..].to_owned(),
            inference_id: inference_id.to_owned(),
            record: Record {
                inference_id: recorded,
                cluster_uuid: self.cluster_uuid.as_deref().map(str::to_owned),
            },
            target: self.target.as_ref().map(|target| match target {
                StoredTarget::Url(url) => Target::Url(url.to_string()),
                StoredTarget::Eck(namespace, name) => {
                    Target::Eck(namespace.to_string(), name.to_string())
                }
            }),
            created: self.created.clone(),
            deleting: self.deleting,
        }
    }
}

/// One scope's claimants, by inference id, and each object's id by uid. Most ids are named by
/// one object, so each id holds an exactly sized slice rather than a map of its own.
#[derive(Default)]
struct ScopeClaims {
    by_id: HashMap<Arc<str>, Box<[Stored]>>,
    /// uid → inference id, to remove an object whose spec can no longer be read.
    id_of: HashMap<Arc<str>, Arc<str>>,
}

impl ScopeClaims {
    fn put(&mut self, decoded: &Decoded) {
        if let Some(uid) = decoded.uid() {
            self.remove(&uid);
        }
        let Some(claimant) = Claimant::of_decoded(decoded) else {
            return;
        };
        let uid: Arc<str> = Arc::from(claimant.uid.as_str());
        let id = match self.by_id.get_key_value(claimant.inference_id.as_str()) {
            Some((id, _)) => id.clone(),
            None => Arc::from(claimant.inference_id.as_str()),
        };
        self.id_of.insert(uid.clone(), id.clone());
        let stored = Stored::of(claimant, uid);
        let mut claimants = self.by_id.remove(&id).map(Vec::from).unwrap_or_default();
        claimants.push(stored);
        self.by_id.insert(id, claimants.into_boxed_slice());
    }

    fn remove(&mut self, uid: &str) {
        let Some(id) = self.id_of.remove(uid) else {
            return;
        };
        let Some(claimants) = self.by_id.remove(&id) else {
            return;
        };
        let rest: Box<[Stored]> = Vec::from(claimants)
            .into_iter()
            .filter(|stored| &*stored.uid != uid)
            .collect();
        if !rest.is_empty() {
            self.by_id.insert(id, rest);
        }
    }

    fn claimants(&self, inference_id: &str) -> impl Iterator<Item = Claimant> + '_ {
        let stored = self.by_id.get_key_value(inference_id);
        stored
            .into_iter()
            .flat_map(|(id, claimants)| claimants.iter().map(move |c| c.claimant(id)))
    }
}

#[derive(Default)]
struct Scopes {
    live: HashMap<Scope, ScopeClaims>,
    /// Scopes being rebuilt by a (re-)list.
    pending: HashMap<Scope, ScopeClaims>,
}

/// The ownership facts of every object in every watched scope, shared by all scopes'
/// controllers.
#[derive(Default)]
pub struct OwnershipIndex {
    scopes: Mutex<Scopes>,
}

impl OwnershipIndex {
    /// Follow one watch event of `scope`.
    pub fn apply(&self, scope: &Scope, event: &watcher::Event<Decoded>) {
        let mut scopes = self.lock();
        match event {
            watcher::Event::Apply(iep) => scopes.live.entry(scope.clone()).or_default().put(iep),
            watcher::Event::Delete(iep) => {
                if let Some(claims) = scopes.live.get_mut(scope) {
                    if let Some(uid) = iep.uid() {
                        claims.remove(&uid);
                    }
                }
            }
            watcher::Event::Init => {
                scopes.pending.insert(scope.clone(), ScopeClaims::default());
            }
            watcher::Event::InitApply(iep) => {
                scopes.pending.entry(scope.clone()).or_default().put(iep)
            }
            watcher::Event::InitDone => {
                let rebuilt = scopes.pending.remove(scope).unwrap_or_default();
                scopes.live.insert(scope.clone(), rebuilt);
            }
        }
    }

    /// Every known object, in any scope, whose spec names `inference_id`.
    pub fn claimants(&self, inference_id: &str) -> Vec<Claimant> {
        self.lock()
            .live
            .values()
            .flat_map(|claims| claims.claimants(inference_id))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Scopes> {
        // Rebuilt on every re-list; a poisoned lock cannot leave it worse than stale.
        self.scopes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimant(iep: &InferenceEndpoint) -> Claimant {
        Claimant::of(&Identity::of(iep).unwrap(), iep)
    }
    use std::sync::Arc;

    use serde_json::{json, Value};

    /// `claimed_by` for `me` among `all` (which may include `me`), the way the reconcile asks.
    fn claim(
        me: &InferenceEndpoint,
        all: &[Arc<InferenceEndpoint>],
        cluster: &str,
    ) -> Option<String> {
        let others: Vec<Claimant> = all.iter().map(|o| claimant(o)).collect();
        claimed_by(&claimant(me), &others, cluster)
    }

    fn iep(name: &str, created: &str, url: &str, status: Value) -> Arc<InferenceEndpoint> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": created},
                "spec": {
                    "elasticsearch": {"url": url}, "inferenceId": "shared", "taskType": "completion",
                    "azureOpenAI": {"resourceName": "r", "deploymentId": "d", "apiVersion": "v",
                                    "apiKeySecretRef": {"name": "s", "key": "k"}}
                },
                "status": status
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_recorded_owner_keeps_the_endpoint() {
        let owner = iep(
            "b-owner",
            "2026-01-02T00:00:00Z",
            "https://es:9200",
            json!({"inferenceId": "shared", "cluster": {"uuid": "c1", "version": "9.1.0"}}),
        );
        let newcomer = iep(
            "a-new",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({}),
        );
        let all = vec![owner.clone(), newcomer.clone()];
        assert_eq!(claim(&newcomer, &all, "c1").as_deref(), Some("ns/b-owner"));
        assert_eq!(claim(&owner, &all, "c1"), None);
        // In another cluster the recorded ownership does not count.
        assert_eq!(claim(&newcomer, &all, "c2"), None);
    }

    #[test]
    fn among_newcomers_the_oldest_wins() {
        let first = iep(
            "first",
            "2026-01-01T00:00:00Z",
            "https://es:9200/",
            json!({}),
        );
        let second = iep(
            "second",
            "2026-01-02T00:00:00Z",
            "https://ES:9200",
            json!({}),
        );
        let all = vec![first.clone(), second.clone()];
        assert_eq!(claim(&second, &all, "c1").as_deref(), Some("ns/first"));
        assert_eq!(claim(&first, &all, "c1"), None);
    }

    #[test]
    fn different_targets_and_deleting_newcomers_do_not_claim() {
        let elsewhere = iep(
            "elsewhere",
            "2026-01-01T00:00:00Z",
            "https://other:9200",
            json!({}),
        );
        let me = iep("me", "2026-01-02T00:00:00Z", "https://es:9200", json!({}));
        assert_eq!(claim(&me, &[elsewhere, me.clone()], "c1"), None);
        let mut leaving = (*iep(
            "leaving",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({}),
        ))
        .clone();
        leaving.metadata.deletion_timestamp = me.metadata.creation_timestamp.clone();
        assert_eq!(claim(&me, &[Arc::new(leaving), me.clone()], "c1"), None);
    }

    #[test]
    fn an_owner_being_deleted_keeps_its_claim_until_gone() {
        let me = iep("me", "2026-01-02T00:00:00Z", "https://es:9200", json!({}));
        let mut owner = (*iep(
            "owner",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({"inferenceId": "shared", "cluster": {"uuid": "c1", "version": "9.1.0"}}),
        ))
        .clone();
        owner.metadata.deletion_timestamp = me.metadata.creation_timestamp.clone();
        assert_eq!(
            claim(&me, &[Arc::new(owner), me.clone()], "c1").as_deref(),
            Some("ns/owner")
        );
    }

    fn in_namespace(iep: &InferenceEndpoint, namespace: &str) -> InferenceEndpoint {
        let mut iep = iep.clone();
        iep.metadata.namespace = Some(namespace.into());
        iep.metadata.uid = Some(format!("{namespace}-{}", iep.name_any()));
        iep
    }

    fn typed(iep: &InferenceEndpoint) -> Decoded {
        Decoded(Ok(iep.clone()))
    }

    #[test]
    fn a_record_owns_its_id_in_its_cluster_only() {
        let record = |id: Option<&str>, cluster: Option<&str>| Record {
            inference_id: id.map(str::to_owned),
            cluster_uuid: cluster.map(str::to_owned),
        };
        assert!(record(Some("x"), Some("c1")).owns("x", "c1"));
        assert!(!record(Some("x"), Some("c1")).owns("x", "c2"));
        assert!(!record(Some("x"), Some("c1")).owns("y", "c1"));
        assert!(!record(None, Some("c1")).owns("x", "c1"));
        assert!(
            record(Some("x"), None).owns("x", "c2"),
            "no recorded cluster: counts anywhere"
        );
    }

    fn asked(user: &str) -> crate::endpoint::EndpointConfig {
        serde_json::from_value(json!({
            "inference_id": "shared", "task_type": "text_embedding", "service": "azureopenai",
            "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v"},
            "task_settings": {"user": user}
        }))
        .unwrap()
    }

    /// What Elasticsearch answers for an endpoint created with `asked(user)`: defaults filled in.
    fn landed(user: &str) -> Endpoint {
        serde_json::from_value(json!({
            "inference_id": "shared", "task_type": "text_embedding", "service": "azureopenai",
            "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v",
                                 "dimensions": 1536, "similarity": "dot_product",
                                 "rate_limit": {"requests_per_minute": 1440}},
            "task_settings": {"user": user},
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
        }))
        .unwrap()
    }

    fn intents(users: &[&str]) -> Intents {
        let mut intents = Intents::default();
        for user in users {
            let value = intents.with(&asked(user)).unwrap();
            let annotations = std::collections::BTreeMap::from([(
                crate::controller::in_flight::CREATE_INTENT_ANNOTATION.to_owned(),
                value,
            )]);
            intents = Intents::of(Some(&annotations));
        }
        intents
    }

    #[test]
    fn an_unrecorded_endpoint_holding_a_recorded_ask_is_the_objects_own_create() {
        let version = EsVersion::new(9, 4, 0);
        let nothing = Record::default();
        // The create of user-28 landed after the spec moved on to user-29.
        let recorded = intents(&["user-28", "user-29"]);
        assert!(own_create_landed(
            &nothing,
            &recorded,
            &landed("user-28"),
            &version
        ));
        assert!(own_create_landed(
            &nothing,
            &recorded,
            &landed("user-29"),
            &version
        ));
        // Someone else's endpoint at the id: settings the object never asked for.
        assert!(!own_create_landed(
            &nothing,
            &recorded,
            &landed("someone-else"),
            &version
        ));
        assert!(!own_create_landed(
            &nothing,
            &Intents::default(),
            &landed("user-28"),
            &version
        ));
        let mut other_service = landed("user-28");
        other_service.service = "openai".into();
        assert!(!own_create_landed(
            &nothing,
            &recorded,
            &other_service,
            &version
        ));
        let mut other_deployment = landed("user-28");
        other_deployment.service_settings["deployment_id"] = json!("other");
        assert!(!own_create_landed(
            &nothing,
            &recorded,
            &other_deployment,
            &version
        ));
        // A status that records an endpoint decides on its own (Record::owns): recorded
        // asks are not consulted, not even in another cluster.
        let owner = Record {
            inference_id: Some("shared".into()),
            cluster_uuid: Some("c1".into()),
        };
        assert!(!own_create_landed(
            &owner,
            &recorded,
            &landed("user-28"),
            &version
        ));
    }

    #[test]
    fn the_index_sees_an_owner_in_another_scope() {
        let owner = iep(
            "emb",
            "2026-01-01T00:00:00Z",
            "https://es:9200",
            json!({"inferenceId": "shared", "cluster": {"uuid": "c1", "version": "9.1.0"}}),
        );
        let (in_a, in_b) = (in_namespace(&owner, "a"), in_namespace(&owner, "b"));
        let mut in_b = in_b;
        in_b.status = None;
        let index = OwnershipIndex::default();
        let (a, b) = (Some("a".to_owned()), Some("b".to_owned()));
        index.apply(&a, &watcher::Event::Apply(typed(&in_a)));
        index.apply(&b, &watcher::Event::Apply(typed(&in_b)));
        let me = claimant(&in_b);
        assert_eq!(
            claimed_by(&me, &index.claimants("shared"), "c1").as_deref(),
            Some("a/emb")
        );
        assert_eq!(
            claimed_by(&claimant(&in_a), &index.claimants("shared"), "c1"),
            None
        );

        // A re-list of scope b does not forget scope a; a re-list of a without the owner does.
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(typed(&in_b)),
            watcher::Event::InitDone,
        ] {
            index.apply(&b, &event);
        }
        assert_eq!(index.claimants("shared").len(), 2);
        index.apply(&a, &watcher::Event::Init);
        assert_eq!(
            index.claimants("shared").len(),
            2,
            "the old copy serves until InitDone"
        );
        index.apply(&a, &watcher::Event::InitDone);
        assert_eq!(claimed_by(&me, &index.claimants("shared"), "c1"), None);

        index.apply(&a, &watcher::Event::Apply(typed(&in_a)));
        index.apply(&a, &watcher::Event::Delete(typed(&in_a)));
        assert_eq!(claimed_by(&me, &index.claimants("shared"), "c1"), None);
        assert!(index.claimants("other").is_empty());
    }

    /// An object as the watch delivers it: decoded from JSON, or kept as undecodable.
    fn decoded(value: Value) -> Decoded {
        serde_json::from_value(value).unwrap()
    }

    /// The compact form the index stores gives back every fact `claimed_by` and the reconcile
    /// read, for every shape of claimant: URL or ECK target (with and without a namespace),
    /// a recorded id equal to the spec's, another one, or none, a recorded cluster or none, a
    /// creation time or none, being deleted, and an object whose spec does not decode.
    #[test]
    fn the_index_gives_back_each_claimant_whole() {
        let meta = |name: &str, extra: Value| {
            let mut m = json!({"name": name, "namespace": "team-a", "uid": format!("uid-{name}")});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            m
        };
        let azure = json!({"resourceName": "r", "deploymentId": "d", "apiVersion": "v",
                           "apiKeySecretRef": {"name": "s", "key": "k"}});
        let object = |name: &str, extra_meta: Value, target: Value, status: Value| {
            let mut spec = json!({"inferenceId": "shared", "taskType": "completion",
                                  "azureOpenAI": azure.clone()});
            spec.as_object_mut()
                .unwrap()
                .extend(target.as_object().unwrap().clone());
            decoded(json!({
                "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": meta(name, extra_meta), "spec": spec, "status": status
            }))
        };
        let created = json!({"creationTimestamp": "2026-01-01T00:00:00Z"});
        let objects = vec![
            object(
                "url-owner",
                created.clone(),
                json!({"elasticsearch": {"url": "HTTPS://Es:9200/"}}),
                json!({"inferenceId": "shared", "cluster": {"uuid": "c1", "version": "9.1.0"}}),
            ),
            object(
                "url-new",
                json!({}),
                json!({"elasticsearch": {"url": "https://es:9200"}}),
                json!({}),
            ),
            object(
                "eck-other-id",
                created.clone(),
                json!({"elasticsearchRef": {"name": "quickstart", "namespace": "elastic"}}),
                json!({"inferenceId": "renamed"}),
            ),
            object(
                "eck-local",
                json!({"creationTimestamp": "2026-02-03T04:05:06Z",
                                       "deletionTimestamp": "2026-02-04T00:00:00Z",
                                       "finalizers": ["x"]}),
                json!({"elasticsearchRef": {"name": "quickstart"}}),
                json!({"inferenceId": "shared"}),
            ),
            // Undecodable spec: it claims what its status records, and targets nothing.
            decoded(json!({
                "apiVersion": "esinference.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": meta("broken", created.clone()),
                "spec": {"inferenceId": 7},
                "status": {"inferenceId": "shared", "cluster": {"uuid": "c2", "version": "9.1.0"}}
            })),
        ];
        assert!(
            objects[4].typed().is_none(),
            "the last object must be undecodable"
        );
        let index = OwnershipIndex::default();
        let scope = Some("team-a".to_owned());
        for object in &objects {
            index.apply(&scope, &watcher::Event::Apply(object.clone()));
        }
        let mut expected: Vec<Claimant> = objects
            .iter()
            .map(|o| Claimant::of_decoded(o).unwrap())
            .filter(|c| c.inference_id == "shared")
            .collect();
        let mut stored = index.claimants("shared");
        let by_uid = |c: &Claimant| c.uid.clone();
        expected.sort_by_key(by_uid);
        stored.sort_by_key(by_uid);
        assert_eq!(stored, expected);
        assert_eq!(stored.len(), 5, "the id the status records is not the key");
        // The one whose status records another id is still found by its spec's id only.
        assert!(index.claimants("renamed").is_empty());

        // An update replaces, a delete removes, and the others stay whole.
        use kube::Resource;
        let mut updated = objects[1].clone();
        updated.meta_mut().deletion_timestamp = updated.meta().creation_timestamp.clone();
        if let Ok(iep) = updated.0.as_mut() {
            iep.status = Some(serde_json::from_value(json!({"inferenceId": "shared"})).unwrap());
        }
        index.apply(&scope, &watcher::Event::Apply(updated.clone()));
        index.apply(&scope, &watcher::Event::Delete(objects[4].clone()));
        let mut expected: Vec<Claimant> = [&objects[0], &updated, &objects[2], &objects[3]]
            .into_iter()
            .map(|o| Claimant::of_decoded(o).unwrap())
            .collect();
        let mut stored = index.claimants("shared");
        expected.sort_by_key(by_uid);
        stored.sort_by_key(by_uid);
        assert_eq!(stored, expected);
    }
}
