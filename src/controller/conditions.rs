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

/// The operator's one message bound (Events' 1 KiB `note` limit), shared with the Elasticsearch
/// client's messages so that nothing is cut twice at different lengths.
pub use crate::elasticsearch::error::{
    truncate_message as truncate, MAX_MESSAGE_BYTES as MAX_MESSAGE_LEN,
};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Where a reconcile left the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub state: State,
    /// Stable CamelCase reason, shared by conditions, Events and metrics.
    pub reason: &'static str,
    pub message: String,
    /// A permanent failure whose cause can go away unseen (a host that starts resolving, an id
    /// whose last reference is removed): re-checked at the periodic interval.
    pub recheck: bool,
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

impl Outcome {
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            state: State::Ready,
            reason,
            message: message.into(),
            recheck: false,
        }
    }

    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            state: State::Transient,
            reason,
            message: message.into(),
            recheck: false,
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            state: State::Permanent,
            reason,
            message: message.into(),
            recheck: false,
        }
    }

    /// Permanent for backoff, but tried again at the periodic re-check.
    pub fn permanent_rechecked(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            recheck: true,
            ..Outcome::permanent(reason, message)
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Permanent failures that something other than this object or its Secrets can resolve
    /// (another object letting go of the endpoint, the original cluster coming back): these are
    /// re-checked at the periodic interval instead of waiting for a change that never comes.
    pub fn resolves_elsewhere(&self) -> bool {
        self.state == State::Permanent
            && (self.recheck || matches!(self.reason, "Conflict" | "ClusterChanged"))
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
    match outcome.state {
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
                reason: outcome.reason.to_owned(),
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
            was_ready != outcome.is_ready() || c.reason != outcome.reason
        }
    }
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
        let c = conditions_for(&[], &Outcome::ready("Created", "created"), Some(1), &at(10));
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].type_.as_str(), c[0].status.as_str()), (READY, "True"));
        assert_eq!(c[0].reason, "Created");
        assert_eq!(c[0].observed_generation, Some(1));
    }

    #[test]
    fn failures_add_the_kstatus_condition_matching_their_kind() {
        let t = conditions_for(
            &[],
            &Outcome::transient("ElasticsearchUnreachable", "x"),
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
            &Outcome::permanent("InvalidSettings", "x"),
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
            &Outcome::permanent("SecretNotFound", "a"),
            Some(1),
            &at(10),
        );
        let again = conditions_for(
            &first,
            &Outcome::permanent("SecretKeyMissing", "b"),
            Some(2),
            &at(20),
        );
        assert_eq!(again[0].last_transition_time, at(10), "Ready stayed False");
        assert_eq!(again[0].reason, "SecretKeyMissing");
        let healed = conditions_for(&again, &Outcome::ready("Created", "ok"), Some(2), &at(30));
        assert_eq!(
            healed[0].last_transition_time,
            at(30),
            "Ready flipped to True"
        );
        let same = conditions_for(&healed, &Outcome::ready("InSync", "ok"), Some(2), &at(40));
        assert_eq!(same[0].last_transition_time, at(30));
    }

    #[test]
    fn transitions_are_status_or_reason_changes() {
        let failing = conditions_for(
            &[],
            &Outcome::permanent("SecretNotFound", "a"),
            None,
            &at(1),
        );
        assert!(is_transition(
            &[],
            &Outcome::permanent("SecretNotFound", "a")
        ));
        assert!(!is_transition(
            &failing,
            &Outcome::permanent("SecretNotFound", "other text")
        ));
        assert!(is_transition(
            &failing,
            &Outcome::permanent("SecretKeyMissing", "a")
        ));
        assert!(is_transition(&failing, &Outcome::ready("Created", "")));
    }

    #[test]
    fn only_marked_permanent_failures_are_rechecked() {
        assert!(Outcome::permanent_rechecked("InvalidSettings", "host").resolves_elsewhere());
        assert!(!Outcome::permanent("InvalidSettings", "x").resolves_elsewhere());
        assert!(Outcome::permanent("Conflict", "x").resolves_elsewhere());
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
}
