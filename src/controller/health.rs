//! The live probe and the `Healthy` condition (docs/lifecycle.md, "Health and verified
//! rotation").
//!
//! Probes run inside the reconcile of their object, so one writer (the reconcile) owns the
//! object's status and Kubernetes' one-reconcile-per-object rule keeps two probes of one object
//! from overlapping. A reconcile probes only when its object's probe is due; the reconcile is
//! requeued at the earlier of the periodic re-check and the next probe, and a re-check that is
//! not due makes no extra request. Pure here: whether health checks apply and at which interval,
//! when the next probe is due (jittered), and what condition a probe's answer gives. The
//! schedule and the last verdict per object live in memory ([`Probes`]); the probe slots are a
//! semaphore of `--health-check-concurrency` permits, taken without waiting, so a busy operator
//! postpones a probe instead of holding a reconcile slot for it; a slot given back wakes the
//! object postponed longest ago (a reconcile of it, through the controller), so a new object's
//! first probe waits for a slot, not for a tenth of its interval.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, Semaphore};

use crate::api::HealthCheck;
use crate::controller::conditions::{truncate, Reason};
use crate::controller::decode::Decoded;
use crate::elasticsearch::{ErrorClass, EsError};
use crate::endpoint::{SecretValue, ServiceSecrets};

/// The condition type.
pub const HEALTHY: &str = "Healthy";
/// The interval of an object that asks for health checks (`healthCheck: {}`) while the operator
/// has no default interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);

/// `Healthy`'s status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    True,
    False,
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::True => "True",
            Health::False => "False",
            Health::Unknown => "Unknown",
        }
    }

    /// `inference_operator_endpoint_healthy`: 1, 0, -1.
    pub fn gauge(self) -> i64 {
        match self {
            Health::True => 1,
            Health::False => 0,
            Health::Unknown => -1,
        }
    }

    /// The `result` label of `inference_operator_endpoint_probes_total`.
    pub fn label(self) -> &'static str {
        match self {
            Health::True => "healthy",
            Health::False => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    pub reason: Reason,
    pub message: String,
}

/// The probe interval of an object: its own `healthCheck.interval`, else the operator's default
/// (`--health-check-interval`), else [`DEFAULT_INTERVAL`] for an object that asks; `None` when
/// health checks are off for it (`enabled: false`, or neither the object nor the operator asks).
pub fn interval(spec: Option<&HealthCheck>, default: Option<Duration>) -> Option<Duration> {
    match spec {
        Some(h) if h.enabled == Some(false) => None,
        Some(h) => Some(
            h.interval()
                .ok()
                .flatten()
                .or(default)
                .unwrap_or(DEFAULT_INTERVAL),
        ),
        None => default,
    }
}

/// When an object seen for the first time is probed: at once when it has no `Healthy`
/// condition yet (a new object, or health checks just turned on: the user is waiting for it),
/// else anywhere within one interval, so that a restarted operator spreads its probes.
pub fn first_due(now: Instant, interval: Duration, has_condition: bool, spread: f64) -> Instant {
    if has_condition {
        now + interval.mul_f64(spread.clamp(0.0, 1.0))
    } else {
        now
    }
}

/// The probe after one that was made: between 80 % and 100 % of the interval later, so probes
/// of objects created together drift apart and a change is seen within one interval.
pub fn next_due(now: Instant, interval: Duration, jitter: f64) -> Instant {
    now + interval.mul_f64(0.8 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// No probe slot was free: try again after 10–30 % of the interval (never at once; each try
/// is a reconcile).
pub fn postponed(now: Instant, interval: Duration, jitter: f64) -> Instant {
    now + interval.mul_f64(0.1 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// What a probe's answer means. Healthy=False when the provider (or the license) refused the
/// call or did not answer it: ingest through the endpoint fails the same way now. Unknown when
/// the question could not be put: Elasticsearch unreachable or refusing the operator, the
/// endpoint missing (the reconcile recreates it).
pub fn verdict(inference_id: &str, result: &Result<(), EsError>) -> Verdict {
    let error = match result {
        Ok(()) => {
            return Verdict {
                health: Health::True,
                reason: Reason::ProbeSucceeded,
                message: format!("inference endpoint {inference_id} answered the probe"),
            }
        }
        Err(error) => error,
    };
    let class = match error {
        // The probe's own time box: the provider did not answer in time.
        EsError::Timeout { .. } => ErrorClass::ProviderTimeout,
        _ => error.inference_class(),
    };
    let unhealthy = |reason| (Health::False, reason);
    let (health, reason) = match class {
        ErrorClass::ProviderRejectedCredentials => unhealthy(Reason::ProviderRejectedCredentials),
        ErrorClass::ProviderNotFound => unhealthy(Reason::ProviderNotFound),
        ErrorClass::ProviderRateLimited => unhealthy(Reason::ProviderRateLimited),
        ErrorClass::ProviderUnavailable => unhealthy(Reason::ProviderUnavailable),
        ErrorClass::ProviderTimeout | ErrorClass::ElasticsearchTimeout => {
            unhealthy(Reason::ProviderTimeout)
        }
        ErrorClass::ProviderUnreachable | ErrorClass::ProviderUnknownHost => {
            unhealthy(Reason::ProviderUnreachable)
        }
        ErrorClass::ProviderValidationFailed | ErrorClass::InvalidSettings => {
            unhealthy(Reason::ProviderError)
        }
        ErrorClass::LicenseRequired => unhealthy(Reason::LicenseRequired),
        other => (Health::Unknown, other.reason()),
    };
    let what = match health {
        Health::Unknown => "could not be probed",
        _ => "failed its probe",
    };
    Verdict {
        health,
        reason,
        message: format!(
            "inference endpoint {inference_id} {what}: {}",
            error.message()
        ),
    }
}

/// The verdict before any probe of an object whose health checks are on.
pub fn not_probed(inference_id: &str) -> Verdict {
    Verdict {
        health: Health::Unknown,
        reason: Reason::NotProbed,
        message: format!(
            "inference endpoint {inference_id} has not been probed yet (it is probed once Ready)"
        ),
    }
}

/// The `Healthy` condition for `verdict`, keeping `lastTransitionTime` while the status stays.
pub fn condition(
    previous: &[Condition],
    verdict: &Verdict,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = verdict.health.as_str();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == HEALTHY && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: HEALTHY.to_owned(),
        status: status.to_owned(),
        reason: verdict.reason.as_str().to_owned(),
        message: truncate(&verdict.message),
        observed_generation: generation,
        last_transition_time,
    }
}

/// The `Healthy` condition in `conditions`, if any.
pub fn healthy(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == HEALTHY)
}

/// The verdict a `Healthy` condition records (read back from status after a restart).
pub fn recorded(condition: &Condition) -> Option<Verdict> {
    let health = match condition.status.as_str() {
        "True" => Health::True,
        "False" => Health::False,
        _ => Health::Unknown,
    };
    Some(Verdict {
        health,
        reason: Reason::parse(&condition.reason)?,
        message: condition.message.clone(),
    })
}

/// Whether moving to `verdict` deserves an Event: `Healthy` changed status or reason.
pub fn is_transition(previous: &[Condition], verdict: &Verdict) -> bool {
    healthy(previous)
        .is_none_or(|c| c.status != verdict.health.as_str() || c.reason != verdict.reason.as_str())
}

/// A probe's credential refusal: what a rotation probe rolls back on (401 and 403).
pub fn rejects_credentials(verdict: &Verdict) -> bool {
    verdict.reason == Reason::ProviderRejectedCredentials
}

/// Every secret text of `secrets`, to scrub from what Elasticsearch echoes.
pub fn secret_texts(secrets: &ServiceSecrets) -> Vec<String> {
    use secrecy::ExposeSecret;
    secrets
        .iter()
        .flat_map(|s| match &s.value {
            SecretValue::Text(t) => vec![t.expose_secret().to_owned()],
            SecretValue::Map(m) => m.values().map(|v| v.expose_secret().to_owned()).collect(),
        })
        .collect()
}

/// Per object (by uid): when it is probed next, and what its last probe found.
#[derive(Clone, Debug)]
struct Entry {
    due: Instant,
    verdict: Option<Verdict>,
}

/// The probe schedule, the last verdicts and the probe slots, shared by every reconcile.
pub struct Probes {
    entries: Mutex<HashMap<String, Entry>>,
    slots: Semaphore,
    /// Probes in flight now, and the most ever seen at once (tests assert the bound).
    in_flight: Mutex<(usize, usize)>,
    /// Objects whose probe found no free slot, oldest first, each once.
    waiting: Mutex<Waiting>,
    /// Where a woken object is sent: the controller reconciles it.
    wake: OnceLock<mpsc::UnboundedSender<ObjectRef<Decoded>>>,
}

#[derive(Default)]
struct Waiting {
    queue: VecDeque<(String, ObjectRef<Decoded>)>,
    uids: HashSet<String>,
}

impl Probes {
    pub fn new(concurrency: usize) -> Self {
        Probes {
            entries: Mutex::new(HashMap::new()),
            slots: Semaphore::new(concurrency.max(1)),
            in_flight: Mutex::new((0, 0)),
            waiting: Mutex::default(),
            wake: OnceLock::new(),
        }
    }

    /// Send the objects woken by a freed slot to `wake` (the controller's trigger stream).
    pub fn wake_with(&self, wake: mpsc::UnboundedSender<ObjectRef<Decoded>>) {
        let _ = self.wake.set(wake);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `uid`'s probe is due at `now` (scheduling it first if it is new).
    pub fn due(&self, uid: &str, now: Instant, interval: Duration, has_condition: bool) -> bool {
        let mut entries = self.lock();
        let entry = entries.entry(uid.to_owned()).or_insert_with(|| Entry {
            due: first_due(now, interval, has_condition, fastrand::f64()),
            verdict: None,
        });
        entry.due <= now
    }

    /// When `uid` is probed next (`None`: not scheduled).
    pub fn next(&self, uid: &str) -> Option<Instant> {
        self.lock().get(uid).map(|e| e.due)
    }

    /// Record a probe's verdict and schedule the next one.
    pub fn record(&self, uid: &str, now: Instant, interval: Duration, verdict: Verdict) {
        self.lock().insert(
            uid.to_owned(),
            Entry {
                due: next_due(now, interval, fastrand::f64()),
                verdict: Some(verdict),
            },
        );
    }

    /// No slot was free: probe later, or as soon as a slot is given back (then `object` is woken).
    pub fn postpone(
        &self,
        uid: &str,
        object: ObjectRef<Decoded>,
        now: Instant,
        interval: Duration,
    ) {
        if let Some(entry) = self.lock().get_mut(uid) {
            entry.due = postponed(now, interval, fastrand::f64());
        }
        if self.wake.get().is_none() {
            return;
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.uids.insert(uid.to_owned()) {
            waiting.queue.push_back((uid.to_owned(), object));
        }
    }

    /// A slot was given back: the object postponed longest ago (and still scheduled) is due now
    /// and reconciled.
    fn wake_next(&self) {
        let Some(wake) = self.wake.get() else {
            return;
        };
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((uid, object)) = waiting.queue.pop_front() {
            waiting.uids.remove(&uid);
            if let Some(entry) = self.lock().get_mut(&uid) {
                entry.due = Instant::now();
                let _ = wake.send(object);
                return;
            }
        }
    }

    /// The last verdict of this process for `uid`.
    pub fn verdict(&self, uid: &str) -> Option<Verdict> {
        self.lock().get(uid).and_then(|e| e.verdict.clone())
    }

    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
        // Its place in `waiting` is skipped when reached (no schedule left).
    }

    /// A probe slot if one is free now (periodic probes never wait for one).
    pub fn try_slot(&self) -> Option<Slot<'_>> {
        let permit = self.slots.try_acquire().ok()?;
        Some(self.occupy(permit))
    }

    /// A probe slot, waiting for one (the probe that verifies a rotation is not skipped).
    pub async fn slot(&self) -> Slot<'_> {
        let permit = self
            .slots
            .acquire()
            .await
            .expect("the probe semaphore is never closed");
        self.occupy(permit)
    }

    fn occupy<'a>(&'a self, permit: tokio::sync::SemaphorePermit<'a>) -> Slot<'a> {
        let mut counts = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        counts.0 += 1;
        counts.1 = counts.1.max(counts.0);
        Slot {
            probes: self,
            _permit: permit,
        }
    }

    /// The most probes ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// One probe slot, given back when dropped.
pub struct Slot<'a> {
    probes: &'a Probes,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .probes
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.0 -= 1;
        drop(counts);
        self.probes.wake_next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elasticsearch::ApiError;

    fn provider_error(status: u16, inner: &str) -> EsError {
        let reason = format!(
            "{inner} for request from inference entity id [e] status [{status}]. Error message: [nope]"
        );
        let body = serde_json::json!({
            "error": {"root_cause": [{"type": "status_exception", "reason": reason}],
                      "type": "status_exception", "reason": reason},
            "status": status
        });
        EsError::Api(ApiError::from_response(status, body.to_string().as_bytes()))
    }

    #[test]
    fn the_interval_comes_from_the_object_then_the_operator() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(interval(None, None), None, "off by default");
        assert_eq!(interval(None, Some(minutes(5))), Some(minutes(5)));
        let asks = HealthCheck::default();
        assert_eq!(interval(Some(&asks), None), Some(DEFAULT_INTERVAL));
        let own = HealthCheck {
            interval: Some("2m".into()),
            ..HealthCheck::default()
        };
        assert_eq!(interval(Some(&own), Some(minutes(5))), Some(minutes(2)));
        let off = HealthCheck {
            enabled: Some(false),
            ..HealthCheck::default()
        };
        assert_eq!(interval(Some(&off), Some(minutes(5))), None);
    }

    #[test]
    fn probes_are_spread_and_never_later_than_one_interval() {
        let now = Instant::now();
        let i = Duration::from_secs(100);
        assert_eq!(first_due(now, i, false, 0.7), now, "a new object at once");
        assert_eq!(first_due(now, i, true, 0.5), now + Duration::from_secs(50));
        assert_eq!(next_due(now, i, 0.0), now + Duration::from_secs(80));
        assert_eq!(next_due(now, i, 1.0), now + i);
        let later = postponed(now, i, 0.0);
        assert!(later >= now + Duration::from_secs(10) && later <= now + Duration::from_secs(30));
    }

    #[test]
    fn a_provider_refusal_is_unhealthy_an_unreachable_cluster_unknown() {
        let v = verdict("e", &Ok(()));
        assert_eq!((v.health, v.reason), (Health::True, Reason::ProbeSucceeded));
        let revoked = verdict(
            "e",
            &Err(provider_error(
                401,
                "Received an authentication error status code",
            )),
        );
        assert_eq!(
            (revoked.health, revoked.reason),
            (Health::False, Reason::ProviderRejectedCredentials),
            "a relayed 401 is the provider's, not the operator's"
        );
        assert!(
            revoked.message.contains("Error message: [nope]"),
            "{}",
            revoked.message
        );
        assert!(rejects_credentials(&revoked));
        let limited = verdict(
            "e",
            &Err(provider_error(429, "Received a rate limit status code")),
        );
        assert_eq!(limited.reason, Reason::ProviderRateLimited);
        let missing = verdict(
            "e",
            &Err(provider_error(404, "Resource not found at [https://x]")),
        );
        assert_eq!(missing.reason, Reason::ProviderNotFound);
        let bad = verdict(
            "e",
            &Err(provider_error(400, "Received a bad request status code")),
        );
        assert_eq!(
            (bad.health, bad.reason),
            (Health::False, Reason::ProviderError)
        );
        let own = EsError::Api(ApiError::from_response(
            401,
            br#"{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}"#,
        ));
        let v = verdict("e", &Err(own));
        assert_eq!(
            (v.health, v.reason),
            (Health::Unknown, Reason::ElasticsearchAuthFailed)
        );
        let timeout = EsError::Timeout {
            method: "POST".into(),
            path: "/_inference/text_embedding/e".into(),
            timeout: Duration::from_secs(30),
        };
        assert_eq!(verdict("e", &Err(timeout)).reason, Reason::ProviderTimeout);
        let unreachable = EsError::Connect {
            url: "http://es".into(),
            detail: String::new(),
        };
        assert_eq!(verdict("e", &Err(unreachable)).health, Health::Unknown);
    }

    #[test]
    fn the_condition_keeps_its_transition_time_while_its_status_stays() {
        use k8s_openapi::jiff::Timestamp;
        let at = |s| Time(Timestamp::from_second(s).unwrap());
        let ok = verdict("e", &Ok(()));
        let first = condition(&[], &ok, Some(1), &at(1));
        assert_eq!(
            (first.type_.as_str(), first.status.as_str()),
            (HEALTHY, "True")
        );
        let again = condition(std::slice::from_ref(&first), &ok, Some(1), &at(9));
        assert_eq!(again.last_transition_time, at(1));
        assert!(!is_transition(std::slice::from_ref(&first), &ok));
        assert_eq!(recorded(&first), Some(ok));
        let pending = not_probed("e");
        assert!(is_transition(&[first], &pending));
    }

    #[test]
    fn a_slot_given_back_wakes_the_object_postponed_longest_ago() {
        let probes = Probes::new(1);
        let (wake, mut woken) = mpsc::unbounded_channel();
        probes.wake_with(wake);
        let (now, interval) = (Instant::now(), Duration::from_secs(600));
        let object = |name: &str| ObjectRef::<Decoded>::new(name).within("ns");
        for uid in ["a", "b"] {
            assert!(probes.due(uid, now, interval, false));
        }
        let slot = probes.try_slot().expect("a free slot");
        assert!(probes.try_slot().is_none());
        probes.postpone("a", object("a"), now, interval);
        probes.postpone("a", object("a"), now, interval);
        probes.postpone("b", object("b"), now, interval);
        assert!(!probes.due("a", now, interval, false), "postponed");
        drop(slot);
        assert_eq!(woken.try_recv().ok(), Some(object("a")));
        assert!(woken.try_recv().is_err(), "one object per slot given back");
        assert!(
            probes.due("a", Instant::now(), interval, false),
            "due once woken"
        );
        // An object forgotten meanwhile is skipped; "a" was queued once.
        probes.forget("b");
        drop(probes.try_slot());
        assert!(woken.try_recv().is_err());
    }

    #[tokio::test]
    async fn slots_bound_the_probes_in_flight() {
        let probes = Probes::new(2);
        let a = probes.try_slot().unwrap();
        let _b = probes.try_slot().unwrap();
        assert!(probes.try_slot().is_none(), "a third waits");
        drop(a);
        let _c = probes.slot().await;
        assert_eq!(probes.max_in_flight(), 2);
    }
}
