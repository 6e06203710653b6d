//! Pure condition bookkeeping in the kstatus sense.
//!
//! * `Ready` is always present: `True` when Elasticsearch holds the desired endpoint.
//! * `Reconciling=True` while a transient failure is being retried (kstatus: InProgress).
//! * `Stalled=True` when a permanent failure waits for a change of the object or a Secret
//!   (kstatus: Failed).
//!
//! Abnormal-true conditions are removed when they no longer hold, so `kubectl describe` shows
//! only what is happening. `lastTransitionTime` changes only when a condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::metrics::ReconcileResult;
pub use crate::reason::{Kind, Reason};

/// The operator's one message bound (Events' 1 KiB `note` limit), shared with the Elasticsearch
/// client's messages so that nothing is cut twice at different lengths.
pub use crate::elasticsearch::error::{
    truncate_message as truncate, MAX_MESSAGE_BYTES as MAX_MESSAGE_LEN,
};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// A reconcile that reached what the object wants: the ready reason and message, and what was
/// applied (`T`: what the status records of the endpoint, or nothing at deletion).
#[derive(Clone, Debug, PartialEq)]
pub struct Applied<T = ()> {
    pub reason: Reason,
    pub message: String,
    pub applied: T,
}

impl Applied {
    /// `reason` must be a ready reason.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        debug_assert!(reason.is_ready(), "{reason} is not a ready reason");
        Applied {
            reason,
            message: message.into(),
            applied: (),
        }
    }

    pub fn with<T>(self, applied: T) -> Applied<T> {
        Applied {
            reason: self.reason,
            message: self.message,
            applied,
        }
    }
}

/// A reconcile that did not: the reason (whose kind says whether it is retried with backoff or
/// waits for a change) and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
    /// A permanent failure whose cause can go away unseen (a host that starts resolving): also
    /// re-checked at the periodic interval, like the reasons that always are.
    pub recheck: bool,
    /// For `CredentialsRejected`: the fingerprint of the rejected credential, which status
    /// records so that it is not tried again until the Secret changes.
    pub rejected_fingerprint: Option<String>,
}

impl Failure {
    /// `reason` must be a transient or permanent reason.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        debug_assert!(
            matches!(reason.kind(), Kind::Transient | Kind::Permanent),
            "{reason} is not a failure reason"
        );
        Failure {
            reason,
            message: message.into(),
            recheck: false,
            rejected_fingerprint: None,
        }
    }

    /// The reason as the declared service names it: a provider's failure is reported with the
    /// Azure-specific reasons for `azureopenai` (their names predate the other services).
    pub fn for_service(self, service: &str) -> Self {
        Failure {
            reason: self.reason.for_service(service),
            ..self
        }
    }

    /// Permanent for backoff, but tried again at the periodic re-check.
    pub fn rechecked(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            recheck: true,
            ..Failure::new(reason, message)
        }
    }
}

/// Where a reconcile left the object, as conditions, Events and metrics report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reason: Reason,
    pub message: String,
    recheck: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The endpoint exists as desired.
    Ready,
    /// Not ready; retried with backoff.
    Transient,
    /// Not ready; waits for a change of the object or of a referenced Secret.
    Permanent,
}

/// Metrics know results, not the controller's types.
impl From<State> for ReconcileResult {
    fn from(state: State) -> Self {
        match state {
            State::Ready => ReconcileResult::Ready,
            State::Transient => ReconcileResult::Transient,
            State::Permanent => ReconcileResult::Permanent,
        }
    }
}

impl<T> From<&Applied<T>> for Outcome {
    fn from(applied: &Applied<T>) -> Self {
        Outcome::new(applied.reason, applied.message.clone())
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        Outcome {
            reason: failure.reason,
            message: failure.message,
            recheck: failure.recheck,
        }
    }
}

impl Outcome {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Outcome {
            reason,
            message: message.into(),
            recheck: false,
        }
    }

    /// Read off the reason: its kind is the state (a warning reason is not an outcome of a
    /// reconcile; it would read as permanent).
    pub fn state(&self) -> State {
        match self.reason.kind() {
            Kind::Ready => State::Ready,
            Kind::Transient => State::Transient,
            Kind::Permanent | Kind::Warning | Kind::Health => State::Permanent,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state() == State::Ready
    }

    /// Permanent failures re-checked at the periodic interval: those whose reason says so
    /// ([`Reason::resolves_elsewhere`]) and those marked by [`Failure::rechecked`].
    pub fn resolves_elsewhere(&self) -> bool {
        self.state() == State::Permanent && (self.recheck || self.reason.resolves_elsewhere())
    }
}

/// The conditions that describe `outcome`, carrying over `lastTransitionTime` from `previous`
/// for every condition whose status did not change.
pub fn conditions_for(
    previous: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let message = truncate(&outcome.message);
    let ready_status = if outcome.is_ready() { "True" } else { "False" };
    let mut wanted = vec![(READY, ready_status)];
    match outcome.state() {
        State::Ready => {}
        State::Transient => wanted.push((RECONCILING, "True")),
        State::Permanent => wanted.push((STALLED, "True")),
    }
    wanted
        .into_iter()
        .map(|(type_, status)| {
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: outcome.reason.as_str().to_owned(),
                message: message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The `Ready` condition, if any.
pub fn ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}

/// Whether moving from `previous` to `outcome` is a transition worth an Event: the Ready status
/// or its reason changed. Repeats of the same failure are not re-announced.
pub fn is_transition(previous: &[Condition], outcome: &Outcome) -> bool {
    match ready(previous) {
        None => true,
        Some(c) => {
            let was_ready = c.status == "True";
            was_ready != outcome.is_ready() || c.reason != outcome.reason.as_str()
        }
    }
}

/// A Warning about how the operator connects (credentials over `http://`, TLS unverified). It
/// does not change Ready: the connection works, the user should know it is unsafe.
pub const INSECURE_TRANSPORT: &str = "InsecureTransport";
/// A Warning that the spec names a service missing from the operator's table: it is passed
/// through, compared only on the keys the user set, and not version-gated.
pub const UNKNOWN_SERVICE: &str = "UnknownService";

/// A warning condition (`<type>=True`) that does not change Ready.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub condition: &'static str,
    pub reason: Reason,
    pub message: String,
}

/// Add `<warning.condition>=True` (reason, message); a warning that no longer holds is left
/// out. Returns whether it is new or its reason changed, so the caller announces it with one
/// Event.
pub fn set_warning(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    warning: &Warning,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let (reason, message) = (warning.reason, warning.message.as_str());
    let before = previous
        .iter()
        .find(|c| c.type_ == warning.condition && c.status == "True");
    conditions.push(Condition {
        type_: warning.condition.to_owned(),
        status: "True".to_owned(),
        reason: reason.as_str().to_owned(),
        message: truncate(message),
        observed_generation: generation,
        last_transition_time: before
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone()),
    });
    before.is_none_or(|c| c.reason != reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn ready_outcome_has_only_ready_true() {
        let c = conditions_for(
            &[],
            &Outcome::new(Reason::Created, "created"),
            Some(1),
            &at(10),
        );
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].type_.as_str(), c[0].status.as_str()), (READY, "True"));
        assert_eq!(c[0].reason, "Created");
        assert_eq!(c[0].observed_generation, Some(1));
    }

    #[test]
    fn failures_add_the_kstatus_condition_matching_their_kind() {
        let t = conditions_for(
            &[],
            &Outcome::new(Reason::ElasticsearchUnreachable, "x"),
            None,
            &at(1),
        );
        let types: Vec<_> = t
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, [(READY, "False"), (RECONCILING, "True")]);
        let p = conditions_for(
            &[],
            &Outcome::new(Reason::InvalidSettings, "x"),
            None,
            &at(1),
        );
        let types: Vec<_> = p
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, [(READY, "False"), (STALLED, "True")]);
    }

    #[test]
    fn last_transition_time_is_kept_while_status_is_unchanged() {
        let first = conditions_for(
            &[],
            &Outcome::new(Reason::SecretNotFound, "a"),
            Some(1),
            &at(10),
        );
        let again = conditions_for(
            &first,
            &Outcome::new(Reason::SecretKeyMissing, "b"),
            Some(2),
            &at(20),
        );
        assert_eq!(again[0].last_transition_time, at(10), "Ready stayed False");
        assert_eq!(again[0].reason, "SecretKeyMissing");
        let healed = conditions_for(
            &again,
            &Outcome::new(Reason::Created, "ok"),
            Some(2),
            &at(30),
        );
        assert_eq!(
            healed[0].last_transition_time,
            at(30),
            "Ready flipped to True"
        );
        let same = conditions_for(
            &healed,
            &Outcome::new(Reason::InSync, "ok"),
            Some(2),
            &at(40),
        );
        assert_eq!(same[0].last_transition_time, at(30));
    }

    #[test]
    fn transitions_are_status_or_reason_changes() {
        let failing = conditions_for(
            &[],
            &Outcome::new(Reason::SecretNotFound, "a"),
            None,
            &at(1),
        );
        assert!(is_transition(
            &[],
            &Outcome::new(Reason::SecretNotFound, "a")
        ));
        assert!(!is_transition(
            &failing,
            &Outcome::new(Reason::SecretNotFound, "other text")
        ));
        assert!(is_transition(
            &failing,
            &Outcome::new(Reason::SecretKeyMissing, "a")
        ));
        assert!(is_transition(&failing, &Outcome::new(Reason::Created, "")));
    }

    #[test]
    fn only_marked_permanent_failures_are_rechecked() {
        assert!(
            Outcome::from(Failure::rechecked(Reason::InvalidSettings, "host")).resolves_elsewhere()
        );
        assert!(!Outcome::new(Reason::InvalidSettings, "x").resolves_elsewhere());
        assert!(Outcome::new(Reason::Conflict, "x").resolves_elsewhere());
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_LEN);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_MESSAGE_LEN, "{}", cut.len());
        assert!(cut.ends_with('…'));
        let short = "é".repeat(MAX_MESSAGE_LEN / 2);
        assert_eq!(truncate(&short), short, "exactly the limit is kept whole");
    }

    #[test]
    fn warnings_are_added_kept_and_announced_once() {
        let base = conditions_for(&[], &Outcome::new(Reason::Created, "ok"), Some(1), &at(1));
        let http = Warning {
            condition: INSECURE_TRANSPORT,
            reason: Reason::PlaintextCredentials,
            message: "http".into(),
        };
        let mut first = base.clone();
        assert!(set_warning(&mut first, &[], &http, Some(1), &at(1)));
        assert_eq!(first.len(), 2);
        assert_eq!(
            ready(&first).unwrap().status,
            "True",
            "Ready keeps its meaning"
        );
        let mut again = base.clone();
        assert!(!set_warning(&mut again, &first, &http, Some(2), &at(9)));
        assert_eq!(again[1].last_transition_time, at(1));
        let unknown = Warning {
            condition: UNKNOWN_SERVICE,
            reason: Reason::NotInServiceTable,
            message: "future".into(),
        };
        let mut both = again.clone();
        assert!(set_warning(&mut both, &again, &unknown, Some(2), &at(9)));
        assert_eq!(both.len(), 3);
        // A warning that no longer holds is simply not set again.
        assert_eq!(base.len(), 1);
    }
}
