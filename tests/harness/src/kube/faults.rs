//! Switchable API server faults for the fault suite (`tests/faults.rs`): each stays on until
//! switched off, unlike the counted rules of [`super::KubeEmulator::fail_next_matching`].
//!
//! * Watches closed every few seconds: a real apiserver ends every watch after its timeout
//!   (`timeoutSeconds`, else a random time between `--min-request-timeout`, 1800 s, and twice
//!   that: kubernetes `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/get.go`,
//!   `ListResource`; `pkg/endpoints/request` `GetTimeoutForWatch` in newer releases), and a load balancer or apiserver restart ends them at any moment; kube-rs
//!   re-watches from its last resourceVersion (docs/reference/kubernetes-api.md#watch).
//! * 410 on resume: a watch resumed from a resourceVersion the watch cache no longer holds gets
//!   one `ERROR` event `too old resource version`, code 410
//!   (`staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache_history.go`;
//!   docs/reference/kubernetes-api.md#watch-errors); kube-rs then lists again. Here, while the
//!   switch is on, every watch resumed from a resourceVersion that no list answered since the
//!   switch went on (an event's or a bookmark's) gets it, as after an apiserver restart whose
//!   watch cache starts at the current revision (inferred: how often a real resume falls outside
//!   the window depends on the cache size and the write rate). A watch from a fresh list's
//!   resourceVersion is served, so a client that re-lists recovers.
//! * 500 and 429 on writes: a status update or finalizer update refused with an `InternalError`
//!   Status or priority-and-fairness' plain-text 429 with `Retry-After`
//!   (docs/reference/kubernetes-api.md#status-errors). The write is not applied.
//! * Latency: [`super::KubeEmulator::set_latency`].
//!
//! The write faults can be aimed at one client ([`super::KubeEmulator::aim_write_faults_at`]):
//! only requests carrying its bearer token are refused, so a test's own writes (its changes to
//! the desired state) go through while the operator's are refused. A real apiserver tells
//! clients apart the same way for its 429s: priority and fairness classifies each request by
//! the authenticated user into a FlowSchema (`FlowSchemaSpec.Rules`, each a
//! `PolicyRulesWithSubjects` whose `Subjects` name users, groups or service accounts:
//! kubernetes `staging/src/k8s.io/api/flowcontrol/v1/types.go`), and only the requests of a
//! saturated priority level are rejected. A 500 aimed at one client is the test's selection
//! (inferred: a real apiserver's internal errors are not per user).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::http::Shared;

/// Which writes of a resource a [`WriteFault`] refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Writes (PUT, PATCH) of the `status` subresource.
    Status,
    /// Writes (PUT, PATCH) of the object itself: metadata such as finalizers, or the spec.
    Object,
}

#[derive(Clone, Debug)]
struct WriteFault {
    plural: String,
    writes: Writes,
    status: u16,
}

/// How often each switched fault struck, for a test to check its fault happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Rounds of closing every open watch.
    pub watch_closes: usize,
    /// Resumed watches answered with the 410 ERROR event.
    pub expired_resumes: usize,
    /// Writes refused by [`super::KubeEmulator::fail_writes`].
    pub refused_writes: usize,
}

#[derive(Default)]
pub struct Switches {
    counts: Mutex<FaultCounts>,
    writes: Mutex<Vec<WriteFault>>,
    expire_resumes: AtomicBool,
    /// List resourceVersions answered while `expire_resumes` is on.
    listed: Mutex<HashSet<u64>>,
    /// `Authorization` header value of the one client the write faults strike (`None`: all).
    target: Mutex<Option<String>>,
    closer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Switches {
    /// The status to answer a request with, if a write fault covers it.
    pub fn write_fault(
        &self,
        method: &str,
        plural: Option<&str>,
        subresource: Option<&str>,
        authorization: Option<&str>,
    ) -> Option<u16> {
        if !matches!(method, "PUT" | "PATCH") {
            return None;
        }
        let target = self.target.lock().expect("target");
        if target.as_deref().is_some_and(|t| authorization != Some(t)) {
            return None;
        }
        drop(target);
        let plural = plural?;
        let target = match subresource {
            Some("status") => Writes::Status,
            None => Writes::Object,
            Some(_) => return None,
        };
        let status = self
            .writes
            .lock()
            .expect("write faults")
            .iter()
            .find(|f| f.plural == plural && f.writes == target)
            .map(|f| f.status);
        if status.is_some() {
            self.counts.lock().expect("counts").refused_writes += 1;
        }
        status
    }

    /// Whether a watch resumed from `rv` is to get the 410 `ERROR` event.
    pub fn expires(&self, rv: u64) -> bool {
        let expires = self.expire_resumes.load(Ordering::SeqCst)
            && !self.listed.lock().expect("listed").contains(&rv);
        if expires {
            self.counts.lock().expect("counts").expired_resumes += 1;
        }
        expires
    }

    /// A list answered with resourceVersion `rv` (a JSON string); a watch from it is served.
    pub fn listed(&self, rv: &serde_json::Value) {
        if !self.expire_resumes.load(Ordering::SeqCst) {
            return;
        }
        if let Some(rv) = rv.as_str().and_then(|s| s.parse().ok()) {
            self.listed.lock().expect("listed").insert(rv);
        }
    }

    fn stop_closer(&self) {
        if let Some(task) = self.closer.lock().expect("closer").take() {
            task.abort();
        }
    }
}

impl Drop for Switches {
    fn drop(&mut self) {
        self.stop_closer();
    }
}

impl super::KubeEmulator {
    /// Refuse `writes` of resource `plural` (e.g. `inferenceendpoints`) with `status` (500 or
    /// 429, see [`super::KubeEmulator::fail_next`] for the bodies) until
    /// [`super::KubeEmulator::clear_switched_faults`].
    pub fn fail_writes(&self, plural: &str, writes: Writes, status: u16) {
        self.shared
            .switches
            .writes
            .lock()
            .expect("write faults")
            .push(WriteFault {
                plural: plural.to_owned(),
                writes,
                status,
            });
    }

    /// Strike only requests sent with bearer `token` with the write faults (`None`: every
    /// client); a client gets the token from [`super::KubeEmulator::write_kubeconfig_with_token`].
    pub fn aim_write_faults_at(&self, token: Option<&str>) {
        *self.shared.switches.target.lock().expect("target") = token.map(|t| format!("Bearer {t}"));
    }

    /// While on, answer a watch resumed from any resourceVersion but a fresh list's with the 410
    /// `too old resource version` ERROR event (see the module comment).
    pub fn expire_watch_resumes(&self, on: bool) {
        let switches = &self.shared.switches;
        switches.listed.lock().expect("listed").clear();
        switches.expire_resumes.store(on, Ordering::SeqCst);
    }

    /// End every open watch every `period` (`None`: stop), as watch timeouts and connection
    /// drops do.
    pub fn close_watches_every(&self, period: Option<Duration>) {
        let switches = &self.shared.switches;
        switches.stop_closer();
        let Some(period) = period else { return };
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.kill_tx.send_modify(|e| *e += 1);
                shared.switches.counts.lock().expect("counts").watch_closes += 1;
            }
        });
        *switches.closer.lock().expect("closer") = Some(task);
    }

    /// How often each switched fault struck since the emulator started.
    pub fn switched_fault_counts(&self) -> FaultCounts {
        *self.shared.switches.counts.lock().expect("counts")
    }

    /// Switch off every fault of this module: write faults, expired resumes, watch closing.
    pub fn clear_switched_faults(&self) {
        let switches = &self.shared.switches;
        switches.writes.lock().expect("write faults").clear();
        switches.expire_resumes.store(false, Ordering::SeqCst);
        switches.listed.lock().expect("listed").clear();
        switches.stop_closer();
    }
}
