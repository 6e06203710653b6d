//! What the log says about a reconcile's outcome, for the on-call engineer reading it: a pure
//! decision ([`decide`]) and the one place that writes the line ([`log`]).
//!
//! * A transition into an outcome that warns (every failure, and a chunking reset) is one WARN
//!   line naming the object, the reason and the status message: the same transitions, and the
//!   same classification, as the Warning Events.
//! * A repeat of a failure being retried with backoff is INFO with the next delay, so the log
//!   shows it is still being tried; a repeat of a failure that waits for a change is DEBUG.
//! * Success stays INFO on its transition (and DEBUG on the periodic re-check that finds the
//!   endpoint still right); a model that is still deploying is progress, INFO.
//!
//! The message is the status message, already scrubbed of secrets where it was built (the
//! error types hold no request body; Secret errors name keys, never values).

use std::time::Duration;

use crate::controller::conditions::{Outcome, Reason, State};
use crate::controller::identity::Identity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warn,
    Info,
    Debug,
}

/// When the object is looked at next, as the retry policy decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Retried with backoff after this delay.
    Retry(Duration),
    /// Looked at again after this delay (the periodic re-check, a deployment poll).
    Recheck(Duration),
    /// Only a change of the object or a referenced Secret brings it back.
    AwaitChange,
}

impl Next {
    pub fn delay(self) -> Option<Duration> {
        match self {
            Next::Retry(delay) | Next::Recheck(delay) => Some(delay),
            Next::AwaitChange => None,
        }
    }
}

/// The level of the line that reports `outcome`; `transition` is whether the Ready condition's
/// status or reason changed ([`crate::controller::conditions::is_transition`]).
pub fn decide(outcome: &Outcome, transition: bool, next: Next) -> Level {
    let warns = outcome.reason.warns();
    match (transition, warns, outcome.state()) {
        (true, true, _) => Level::Warn,
        (true, false, _) => Level::Info,
        // Progress of a deployment, re-polled at a fixed interval: visible at DEBUG only.
        (false, _, _) if outcome.reason == Reason::ModelDeploying => Level::Debug,
        (false, _, State::Transient) if matches!(next, Next::Retry(_)) => Level::Info,
        (false, _, _) => Level::Debug,
    }
}

/// Write the line [`decide`] chose: object, reason, the next delay (if any) and the message.
pub fn log(who: &Identity, outcome: &Outcome, transition: bool, next: Next) {
    let object = format!("{}/{}", who.namespace, who.name);
    let reason = outcome.reason.as_str();
    let message = outcome.message.as_str();
    let retry_in = next.delay().map(|d| format!("{:.1}s", d.as_secs_f64()));
    let retry_in = retry_in.as_deref().unwrap_or("on change");
    let summary = summary(outcome, transition, next);
    match decide(outcome, transition, next) {
        Level::Warn => tracing::warn!(object, reason, retry_in, message, "{summary}"),
        Level::Info => tracing::info!(object, reason, retry_in, message, "{summary}"),
        Level::Debug => tracing::debug!(object, reason, retry_in, message, "{summary}"),
    }
}

/// The line's headline: what happened and what the operator does next.
fn summary(outcome: &Outcome, transition: bool, next: Next) -> &'static str {
    match (outcome.state(), transition, next) {
        (State::Ready, _, _) => "ready",
        (_, _, _) if outcome.reason == Reason::ModelDeploying => "model deploying; polling",
        (_, true, Next::Retry(_)) => "not ready; retrying with backoff",
        (_, false, Next::Retry(_)) => "still not ready; retrying with backoff",
        (_, _, Next::Recheck(_)) => "not ready; checked again at the periodic re-check",
        (_, _, Next::AwaitChange) => "not ready; waiting for a change of the object or its Secrets",
    }
}

/// The Kubernetes API server's failure episodes, for the line the watches log: the first
/// failure after a success (or at start) is WARN, the repeats until the next success DEBUG,
/// and the first success after failures INFO. One episode, one WARN, however long the outage.
#[derive(Debug, Default)]
pub struct ApiServerEpisodes {
    failing: std::sync::atomic::AtomicBool,
}

impl ApiServerEpisodes {
    /// A watch failed: the level of its line.
    pub fn failed(&self) -> Level {
        if self
            .failing
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            Level::Debug
        } else {
            Level::Warn
        }
    }

    /// A watch received something: whether an episode just ended (log it at INFO).
    pub fn succeeded(&self) -> bool {
        self.failing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Next = Next::Retry(Duration::from_secs(4));
    const RECHECK: Next = Next::Recheck(Duration::from_secs(300));

    fn outcome(reason: Reason) -> Outcome {
        Outcome::new(reason, "m")
    }

    #[test]
    fn a_failure_is_one_warn_on_its_transition() {
        for reason in [
            Reason::ElasticsearchUnreachable, // transient
            Reason::AzureRejectedCredentials, // permanent
            Reason::SecretNotFound,
            Reason::DeletionBlocked,
            Reason::InvalidSpec,
        ] {
            assert_eq!(
                decide(&outcome(reason), true, RETRY),
                Level::Warn,
                "{reason}"
            );
            assert_eq!(
                decide(&outcome(reason), true, Next::AwaitChange),
                Level::Warn,
                "{reason}"
            );
        }
    }

    #[test]
    fn a_repeated_transient_failure_is_info_with_its_delay_and_a_waiting_one_debug() {
        let transient = outcome(Reason::ElasticsearchUnreachable);
        assert_eq!(decide(&transient, false, RETRY), Level::Info);
        let permanent = outcome(Reason::ElasticsearchAuthFailed);
        assert_eq!(decide(&permanent, false, Next::AwaitChange), Level::Debug);
        assert_eq!(decide(&permanent, false, RECHECK), Level::Debug);
    }

    #[test]
    fn success_is_info_on_its_transition_and_debug_on_a_recheck() {
        let created = outcome(Reason::Created);
        assert_eq!(decide(&created, true, RECHECK), Level::Info);
        assert_eq!(decide(&created, false, RECHECK), Level::Debug);
    }

    #[test]
    fn a_chunking_reset_warns_like_its_event_and_a_deployment_is_progress() {
        assert!(Reason::ChunkingReset.is_ready());
        assert_eq!(
            decide(&outcome(Reason::ChunkingReset), true, RECHECK),
            Level::Warn
        );
        let deploying = outcome(Reason::ModelDeploying);
        let poll = Next::Recheck(Duration::from_secs(15));
        assert_eq!(decide(&deploying, true, poll), Level::Info);
        assert_eq!(decide(&deploying, false, poll), Level::Debug);
    }

    #[test]
    fn the_summary_says_what_happens_next() {
        let failed = outcome(Reason::ElasticsearchUnreachable);
        assert!(summary(&failed, true, RETRY).contains("retrying"));
        let waiting = outcome(Reason::SecretNotFound);
        assert!(summary(&waiting, true, Next::AwaitChange).contains("waiting for a change"));
        assert_eq!(summary(&outcome(Reason::Updated), true, RECHECK), "ready");
    }

    #[test]
    fn an_api_server_outage_is_one_warn_then_debug_until_it_answers() {
        let episodes = ApiServerEpisodes::default();
        assert!(!episodes.succeeded(), "no episode yet");
        assert_eq!(episodes.failed(), Level::Warn);
        assert_eq!(episodes.failed(), Level::Debug);
        assert_eq!(episodes.failed(), Level::Debug);
        assert!(episodes.succeeded(), "the episode ends");
        assert!(!episodes.succeeded());
        assert_eq!(episodes.failed(), Level::Warn, "a new episode");
    }
}
