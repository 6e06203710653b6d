//! Stopping (docs/lifecycle.md#stopping): a shutdown never waits for the watches to sync. Once
//! it is requested, reconciles already running get [`SHUTDOWN_GRACE`] to finish; what is still
//! running then is dropped and the process exits non-zero. A controller whose watches never
//! listed anything has nothing in flight and stops at once.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// How long in-flight reconciles may take to finish after SIGTERM/SIGINT. Well inside the
/// Kubernetes default `terminationGracePeriodSeconds` (30 s); a reconcile cut short is repeated
/// from the start by the next leader, as every reconcile is idempotent.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How the controller stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was left running.
    Drained,
    /// The grace period ended with reconciles still running; they were dropped.
    CutShort,
}

impl Stopped {
    /// `CutShort` if either is.
    pub fn and(self, other: Stopped) -> Stopped {
        if self == Stopped::CutShort || other == Stopped::CutShort {
            Stopped::CutShort
        } else {
            Stopped::Drained
        }
    }
}

/// Run `work` until it ends on its own, or until `shutdown` resolves: then give it `grace`
/// more, unless `listed` is still false (nothing listed means no reconcile can have started:
/// kube's Controller holds every reconcile until its store has listed once).
pub async fn drain(
    work: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()>,
    listed: watch::Receiver<bool>,
    grace: Duration,
) -> Stopped {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        () = &mut work => return Stopped::Drained,
        () = shutdown => {}
    }
    if !*listed.borrow() {
        tracing::info!("nothing listed yet, so nothing in flight; stopping now");
        return Stopped::Drained;
    }
    match tokio::time::timeout(grace, work).await {
        Ok(()) => Stopped::Drained,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "in-flight reconciles did not finish in the grace period; dropping them"
            );
            Stopped::CutShort
        }
    }
}

/// The API server's address for log lines: scheme, host, port and path, never the user
/// information or query a kubeconfig's `server` could carry.
pub fn api_server_url(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    format!("{scheme}://{host}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(3);

    #[tokio::test(start_paused = true)]
    async fn nothing_listed_stops_at_once() {
        let (_tx, listed) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let stopped = drain(std::future::pending(), async {}, listed, GRACE).await;
        assert_eq!(stopped, Stopped::Drained);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_finishes_within_the_grace_is_drained() {
        let (_tx, listed) = watch::channel(true);
        let work = tokio::time::sleep(Duration::from_secs(2));
        assert_eq!(drain(work, async {}, listed, GRACE).await, Stopped::Drained);
    }

    #[tokio::test(start_paused = true)]
    async fn work_still_running_after_the_grace_is_cut_short() {
        let (_tx, listed) = watch::channel(true);
        let started = tokio::time::Instant::now();
        let stopped = drain(std::future::pending(), async {}, listed, GRACE).await;
        assert_eq!(stopped, Stopped::CutShort);
        assert_eq!(started.elapsed(), GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_without_a_shutdown_is_drained() {
        let (_tx, listed) = watch::channel(true);
        let work = tokio::time::sleep(Duration::from_secs(60));
        let stopped = drain(work, std::future::pending(), listed, GRACE).await;
        assert_eq!(stopped, Stopped::Drained);
    }

    #[test]
    fn the_api_server_url_keeps_no_credentials() {
        let uri: http::Uri = "https://admin:s3cret@10.0.0.1:6443/k8s/?token=abc"
            .parse()
            .unwrap();
        assert_eq!(api_server_url(&uri), "https://10.0.0.1:6443/k8s");
        let plain: http::Uri = "http://127.0.0.1:8001".parse().unwrap();
        assert_eq!(api_server_url(&plain), "http://127.0.0.1:8001");
    }
}
