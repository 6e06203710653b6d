//! The operator's own HTTP endpoints: `/metrics` (Prometheus text), `/livez` (the process
//! serves requests) and `/readyz` (every watch has listed once, so the controller acts on a
//! complete view of the cluster).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// What the endpoints report on; shared with the controller(s).
pub struct Health {
    /// Controllers (one per watched scope) whose watches have not listed everything yet.
    unsynced: AtomicUsize,
    /// A leader-election standby is ready to take over, with nothing to sync.
    standby: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            unsynced: AtomicUsize::new(1),
            standby: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// How many controllers must report [`Health::synced`] before the process is ready.
    pub fn expect_synced(&self, controllers: usize) {
        self.unsynced.store(controllers, Ordering::Release);
    }

    pub fn synced(&self) {
        let _ = self
            .unsynced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.standby.load(Ordering::Acquire) || self.unsynced.load(Ordering::Acquire) == 0
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

pub fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { health, metrics })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet")
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Bind first (so a taken port fails start-up, not a later scrape), then serve until
/// `shutdown` resolves.
pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /livez and /readyz");
    Ok(listener)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
