//! Creates that may still land. Elasticsearch finishes a PUT whose client has gone: the REST
//! handler (`RestPutInferenceModelAction.prepareRequest`, elastic/elasticsearch
//! x-pack/plugin/inference/src/main/java/org/elasticsearch/xpack/inference/rest/RestPutInferenceModelAction.java)
//! runs the action on the plain node client with a `RestToXContentListener`, not through the
//! `RestCancellableNodeClient` that ties an action to its HTTP channel
//! (server/src/main/java/org/elasticsearch/rest/action/RestCancellableNodeClient.java), so
//! closing the connection, a client timeout or the operator's death do not cancel it.
//!
//! An object whose finalizer is set but whose status records no endpoint may therefore still
//! get one: a PUT sent by this process that timed out, or one sent by a process that died
//! (or a deposed leader, fenced before its Lease ran out: src/leader.rs). Its deletion waits
//! until every such create has landed or failed (docs/lifecycle.md#a-create-in-flight-at-deletion):
//! until `window` after the later of this process's start of reconciling (any earlier process
//! sent its creates before) and the last create this process sent for the object without getting
//! a definite answer (no answer, a timeout or a server error).
//!
//! Memory does not survive a kill: what each create asked for is recorded on the object itself
//! ([`CREATE_INTENT_ANNOTATION`], [`Intents`]), so that the endpoint a lost create leaves behind is
//! still known as the object's after the spec changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::controller::conditions::Failure;
use crate::endpoint::EndpointConfig;

/// Annotation the operator writes on an object whose status records no endpoint yet: the
/// settings of every create it may have sent for it (a JSON array of the configs asked for, in
/// Elasticsearch's field names, without secrets: what the spec says, never a key). Memory is lost
/// with the process; this is not. An endpoint that lands unseen from one of those creates (the
/// PUT answered after a kill, a timeout, a deposed leader) is then still recognised as the
/// object's own, even once the spec has moved on ([`crate::controller::ownership::own_create_landed`];
/// docs/lifecycle.md#a-create-that-lands-unseen).
pub const CREATE_INTENT_ANNOTATION: &str = "esinference.io/create-intent";

/// At most this many asks are kept (the latest): each new one takes a create with a spec the
/// object had not asked for yet, while its status still records no endpoint.
pub const MAX_INTENTS: usize = 4;

/// At most this many bytes of records: a spec may hold up to 256 KiB of settings
/// (`api::checks::MAX_SPEC_BYTES`), and the API server refuses an object whose annotations
/// together pass 256 KiB.
pub const MAX_INTENT_BYTES: usize = 16 * 1024;

/// The creates an object records it may have sent ([`CREATE_INTENT_ANNOTATION`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Intents(Vec<EndpointConfig>);

impl Intents {
    /// What the object's annotations record. An annotation that does not read as a list of
    /// configs records nothing (whoever can write it can set `esinference.io/adopt` anyway).
    pub fn of(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let recorded = annotations.and_then(|a| a.get(CREATE_INTENT_ANNOTATION));
        Intents(
            recorded
                .and_then(|value| serde_json::from_str(value).ok())
                .unwrap_or_default(),
        )
    }

    /// The configs asked for, oldest first.
    pub fn asked(&self) -> &[EndpointConfig] {
        &self.0
    }

    /// Whether a create of `config` is already recorded.
    pub fn covers(&self, config: &EndpointConfig) -> bool {
        self.0.contains(config)
    }

    /// The annotation's value once a create of `config` is recorded too (the oldest dropped
    /// beyond [`MAX_INTENTS`] or [`MAX_INTENT_BYTES`]); `None` when `config` alone is past the
    /// budget: such a create is not recorded (as before the record existed), rather than have
    /// the object's annotations refused (the API server caps them at 256 KiB in all).
    pub fn with(&self, config: &EndpointConfig) -> Option<String> {
        let mut asked: Vec<&EndpointConfig> = self.0.iter().filter(|c| *c != config).collect();
        asked.push(config);
        let mut kept = &asked[asked.len().saturating_sub(MAX_INTENTS)..];
        while !kept.is_empty() {
            let value = serde_json::to_string(kept).ok()?;
            if value.len() <= MAX_INTENT_BYTES {
                return Some(value);
            }
            kept = &kept[1..];
        }
        None
    }
}

/// When this process began reconciling, and per object (by uid) the last create it sent that
/// got no definite answer (yet).
#[derive(Debug)]
pub struct CreatesSent {
    since: Instant,
    sent: Mutex<HashMap<String, Instant>>,
    /// Per object: the last create Elasticsearch refused for good (what was asked, when, and
    /// the failure reported), so that a pass queued while it was sent (a Secret event) does not
    /// send it again: unlike a rejected rotation, status records nothing a plan could tell a
    /// refused create by, so waiting for the cache (`own_writes`) is not enough.
    refused: Mutex<HashMap<String, (String, Instant, Failure)>>,
}

impl Default for CreatesSent {
    fn default() -> Self {
        CreatesSent {
            since: Instant::now(),
            sent: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }
}

impl CreatesSent {
    /// A create for `uid` is about to be sent.
    pub fn sending(&self, uid: &str) {
        self.lock().insert(uid.to_owned(), Instant::now());
    }

    /// The create sent for `uid` was answered: it cannot land later.
    pub fn answered(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// The object is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
        self.refused_lock().remove(uid);
    }

    /// Elasticsearch refused for good the create `asked` (the config and credential
    /// fingerprint) of `uid`.
    pub fn refused(&self, uid: &str, asked: String, failure: &Failure) {
        let entry = (asked, Instant::now(), failure.clone());
        self.refused_lock().insert(uid.to_owned(), entry);
    }

    /// The failure of the same create refused less than `within` ago. Right after a start,
    /// the object's and its Secret's first events both queue a reconcile; the second runs once
    /// the cache holds the first one's status (`own_writes`), which shows the refusal but not
    /// what was refused, so the same PUT would go out again.
    pub fn refused_recently(&self, uid: &str, asked: &str, within: Duration) -> Option<Failure> {
        let refused = self.refused_lock();
        let (last, when, failure) = refused.get(uid)?;
        (last == asked && when.elapsed() < within).then(|| failure.clone())
    }

    fn refused_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant, Failure)>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From when on no create for `uid` can still land, if each lands or fails within `window`
    /// of being sent.
    pub fn settled_at(&self, uid: &str, window: Duration) -> Instant {
        settled_at(self.since, self.lock().get(uid).copied(), window)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `window` after the later of `since` (creates of earlier processes were sent before it) and
/// `last_sent` (this process's last create).
pub fn settled_at(since: Instant, last_sent: Option<Instant>, window: Duration) -> Instant {
    last_sent.map_or(since, |sent| sent.max(since)) + window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: &str) -> EndpointConfig {
        serde_json::from_value(serde_json::json!({
            "inference_id": "x", "task_type": "text_embedding", "service": "azureopenai",
            "service_settings": {"resource_name": "r", "deployment_id": "d", "api_version": "v"},
            "task_settings": {"user": user}
        }))
        .unwrap()
    }

    fn annotated(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(CREATE_INTENT_ANNOTATION.to_owned(), value.to_owned())])
    }

    #[test]
    fn intents_round_trip_through_the_annotation_and_keep_the_latest() {
        assert_eq!(Intents::of(None), Intents::default());
        let one = Intents::default().with(&config("a")).unwrap();
        let recorded = Intents::of(Some(&annotated(&one)));
        assert_eq!(recorded.asked(), [config("a")]);
        assert!(recorded.covers(&config("a")));
        assert!(!recorded.covers(&config("b")));
        // Asking again for the same moves it to the end; no duplicate.
        let again = Intents::of(Some(&annotated(&recorded.with(&config("b")).unwrap())));
        let again = Intents::of(Some(&annotated(&again.with(&config("a")).unwrap())));
        assert_eq!(again.asked(), [config("b"), config("a")]);
        let mut many = Intents::default();
        for user in ["1", "2", "3", "4", "5", "6"] {
            many = Intents::of(Some(&annotated(&many.with(&config(user)).unwrap())));
        }
        let users: Vec<_> = many
            .asked()
            .iter()
            .map(|c| c.task_settings["user"].clone())
            .collect();
        assert_eq!(users, ["3", "4", "5", "6"]);
    }

    #[test]
    fn the_record_stays_within_its_byte_budget() {
        let user = |n: usize, len: usize| format!("{n}{}", "x".repeat(len));
        // Records of 6 KiB each: the newest two fit, the oldest goes.
        let mut intents = Intents::default();
        for n in 0..3 {
            let value = intents.with(&config(&user(n, 6 * 1024))).unwrap();
            assert!(value.len() <= MAX_INTENT_BYTES);
            intents = Intents::of(Some(&annotated(&value)));
        }
        let users: Vec<_> = intents
            .asked()
            .iter()
            .map(|c| {
                c.task_settings["user"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(users, ['1', '2']);
        // A config past the budget on its own is not recorded at all.
        assert_eq!(intents.with(&config(&user(9, MAX_INTENT_BYTES))), None);
    }

    #[test]
    fn an_annotation_that_does_not_read_records_nothing() {
        for value in ["", "{}", "not json", "[{\"inference_id\": 1}]"] {
            assert_eq!(
                Intents::of(Some(&annotated(value))),
                Intents::default(),
                "{value}"
            );
        }
    }

    #[test]
    fn the_later_of_the_start_and_the_last_create_plus_the_window() {
        let since = Instant::now();
        let window = Duration::from_secs(45);
        assert_eq!(settled_at(since, None, window), since + window);
        let later = since + Duration::from_secs(10);
        assert_eq!(settled_at(since, Some(later), window), later + window);
        // A create "before" the start cannot be this process's; the start bounds it.
        let earlier = since.checked_sub(Duration::from_secs(1)).unwrap_or(since);
        assert_eq!(settled_at(since, Some(earlier), window), since + window);
    }

    #[test]
    fn a_refused_create_is_remembered_briefly_and_only_for_the_same_ask() {
        let creates = CreatesSent::default();
        let failure = Failure::new(crate::reason::Reason::AzureRejectedCredentials, "refused");
        creates.refused("u", "ask".into(), &failure);
        let within = Duration::from_secs(10);
        assert_eq!(creates.refused_recently("u", "ask", within), Some(failure));
        assert_eq!(creates.refused_recently("u", "other ask", within), None);
        assert_eq!(creates.refused_recently("v", "ask", within), None);
        assert_eq!(creates.refused_recently("u", "ask", Duration::ZERO), None);
        creates.forget("u");
        assert_eq!(creates.refused_recently("u", "ask", within), None);
    }

    #[test]
    fn a_create_sent_moves_the_bound_and_forgetting_drops_it() {
        let creates = CreatesSent::default();
        let window = Duration::from_secs(1);
        let before = creates.settled_at("u", window);
        std::thread::sleep(Duration::from_millis(5));
        creates.sending("u");
        assert!(creates.settled_at("u", window) > before);
        creates.forget("u");
        assert_eq!(creates.settled_at("u", window), before);
    }
}
