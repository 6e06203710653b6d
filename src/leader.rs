//! Leader election over a coordination.k8s.io Lease (kube-lease-manager): only the holder runs
//! the controller; a standby waits, ready to take over once the Lease expires.
//!
//! Losing the Lease while leading stops the controller and ends `run_as_leader` with an error,
//! so the process exits and restarts clean rather than risking two writers. On shutdown the
//! controller drains first, then the Lease is released so a standby takes over at once.
//!
//! A leader that was paused (SIGSTOP, a frozen VM or container, a starved runtime) cannot tell
//! from kube-lease-manager that its Lease ran out meanwhile: it only learns at its next renewal,
//! and the reconciles that wake with it would write first (the fault suite's frozen-leader
//! scenario showed a deposed leader re-creating endpoints the new leader had deleted). The
//! [`Fence`] closes that window: a watchdog ticks while leading, every Elasticsearch call checks
//! that the last tick is recent, and a pause longer than the renewal grace ends the process
//! before anything is sent (a restart rejoins as standby).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, Instrument};

use crate::controller::{self, Config};
use crate::http::Health;
use crate::metrics::Metrics;
use crate::shutdown::Stopped;

pub struct Election {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    /// Lease validity; renewed a third of it before expiry.
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lease manager: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the leader Lease while reconciling")]
    LostLease,
}

/// The pause detector of a leading process. One per process: only `main` elects a leader.
pub struct Fence {
    origin: Instant,
    /// Milliseconds from `origin` to the watchdog's last tick.
    last_tick_ms: AtomicU64,
    /// Longest gap between ticks that cannot have cost the Lease: the renewal grace.
    max_gap: Duration,
}

static FENCE: OnceLock<Fence> = OnceLock::new();

impl Fence {
    fn since_last_tick(&self) -> Duration {
        let last = Duration::from_millis(self.last_tick_ms.load(Ordering::Acquire));
        self.origin.elapsed().saturating_sub(last)
    }

    fn tick(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_tick_ms.store(now, Ordering::Release);
    }
}

/// Whether this process may talk to Elasticsearch: always without leader election; with it,
/// only while the watchdog has ticked within the renewal grace.
pub fn fence_open() -> bool {
    FENCE.get().is_none_or(|f| f.since_last_tick() <= f.max_gap)
}

/// A Kubernetes client's service behind the fence: while `open()` says no, a request is held
/// for good (the watchdog ends the process within a tick) and never reaches the API server.
/// Every Kubernetes request goes through it (`main`), so a paused leader's reconciles write no
/// status, finalizer or Event when they wake, as its Elasticsearch calls send nothing
/// (`reconcile::timed`). tower's `AsyncFilter` would do it but needs a `Clone` service, which
/// kube's boxed stack is not.
pub struct Fenced<S> {
    inner: S,
    open: fn() -> bool,
}

/// The layer that puts [`Fenced`] around a service, with [`fence_open`] as the check.
pub fn fenced<S>(inner: S) -> Fenced<S> {
    Fenced {
        inner,
        open: fence_open,
    }
}

impl<S: tower::Service<R>, R> tower::Service<R> for Fenced<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, futures::future::Pending<Result<S::Response, S::Error>>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        if (self.open)() {
            futures::future::Either::Left(self.inner.call(request))
        } else {
            futures::future::Either::Right(futures::future::pending())
        }
    }
}

/// Tick while leading; a gap longer than the grace means the process was paused long enough to
/// lose the Lease, so it exits at once, without draining (draining would run the very writes
/// the fence holds back).
async fn watchdog(grace: Duration) {
    let fence = FENCE.get_or_init(|| Fence {
        origin: Instant::now(),
        last_tick_ms: AtomicU64::new(0),
        max_gap: grace,
    });
    fence.tick();
    let every = (grace / 4).min(Duration::from_millis(250));
    loop {
        tokio::time::sleep(every).await;
        let gap = fence.since_last_tick();
        if gap > grace {
            tracing::error!(
                paused_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
                "this replica was paused longer than the leader Lease's renewal grace and may have lost the Lease; exiting before anything is written"
            );
            std::process::exit(1);
        }
        fence.tick();
    }
}

pub async fn run_as_leader(
    client: kube::Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    election: Election,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<Stopped, Error> {
    let duration = election.duration.as_secs().max(2);
    let grace = (duration / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(duration)
        .with_grace(grace)
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    // A standby is healthy and ready to take over; readiness must not block rollouts.
    health.set_standby(true);
    info!(lease = %election.lease_name, identity = %election.identity, "waiting for the leader Lease");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        if *leading.borrow_and_update() {
            info!(identity = %election.identity, "acquired the leader Lease; reconciling");
            let watchdog = tokio::spawn(watchdog(Duration::from_secs(grace)));
            let mut stop_rx = stop_rx.clone();
            let stopped = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            };
            let mut controller = tokio::spawn(
                controller::run_all(
                    client.clone(),
                    config.clone(),
                    metrics.clone(),
                    health.clone(),
                    stopped,
                )
                .in_current_span(),
            );
            let outcome = tokio::select! {
                _ = &mut shutdown => {
                    let _ = stop_tx.send(true);
                    Ok(controller.await.unwrap_or(Stopped::CutShort))
                }
                changed = leading.wait_for(|leader| !*leader) => {
                    let _ = stop_tx.send(true);
                    let _ = controller.await;
                    if changed.is_ok() { Err(Error::LostLease) } else { Ok(Stopped::Drained) }
                }
                stopped = &mut controller => Ok(stopped.unwrap_or(Stopped::CutShort)),
            };
            watchdog.abort();
            break outcome;
        }
        tokio::select! {
            _ = &mut shutdown => break Ok(Stopped::Drained),
            changed = leading.changed() => {
                if changed.is_err() {
                    break Ok(Stopped::Drained);
                }
            }
        }
    };
    // Closing the channel makes the lease task release the Lease and end.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => info!("released the leader Lease"),
        Ok(Err(error)) => tracing::warn!(%error, "could not release the leader Lease"),
        Err(error) => tracing::warn!(%error, "lease task failed"),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tower::{Service, ServiceExt};

    async fn sent_through(open: fn() -> bool) -> usize {
        let sent = Arc::new(AtomicUsize::new(0));
        let inner = tower::service_fn({
            let sent = sent.clone();
            move |request: u32| {
                sent.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, std::convert::Infallible>(request) }
            }
        });
        let mut service = Fenced { inner, open };
        let ready = service.ready().await.expect("ready");
        let _ = tokio::time::timeout(Duration::from_millis(50), ready.call(7)).await;
        sent.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_closed_fence_holds_every_request() {
        assert_eq!(sent_through(|| true).await, 1);
        assert_eq!(sent_through(|| false).await, 0);
    }
}
