//! Leader election over a coordination.k8s.io Lease (kube-lease-manager): only the holder runs
//! the controller; a standby waits, ready to take over once the Lease expires.
//!
//! Losing the Lease while leading stops the controller and ends `run_as_leader` with an error,
//! so the process exits and restarts clean rather than risking two writers. On shutdown the
//! controller drains first, then the Lease is released so a standby takes over at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
            tokio::select! {
                _ = &mut shutdown => {
                    let _ = stop_tx.send(true);
                    break Ok(controller.await.unwrap_or(Stopped::CutShort));
                }
                changed = leading.wait_for(|leader| !*leader) => {
                    let _ = stop_tx.send(true);
                    let _ = controller.await;
                    break if changed.is_ok() { Err(Error::LostLease) } else { Ok(Stopped::Drained) };
                }
                stopped = &mut controller => break Ok(stopped.unwrap_or(Stopped::CutShort)),
            }
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
