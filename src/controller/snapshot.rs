//! Batched observation (docs/lifecycle.md#batched-re-checks): one `GET _inference/_all` per
//! connection serves every periodic re-check on that connection while it is fresh, instead of
//! one `GET _inference/{task}/{id}` per object.
//!
//! A listing belongs to one [`Connection`](super::connection::Connection), i.e. one URL and one
//! credential: an object is never answered from a read made with another credential. The pure
//! parts ([`lookup`], [`is_fresh`], [`may_use_listing`], [`worth_listing`]) decide; [`Listings`]
//! holds the current listing of one connection and makes concurrent callers share one request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::elasticsearch::{Endpoint, EsError, TaskType};

/// One answer to `GET _inference/_all`.
#[derive(Debug)]
pub struct Listing {
    /// When the request was sent: a write that completed after it may be missing.
    pub requested: Instant,
    /// Sorted by id (Elasticsearch sorts them too; sorted again here to search).
    endpoints: Vec<Listed>,
    /// As long as Elasticsearch's limit: an id missing from it may exist.
    truncated: bool,
}

/// One listed endpoint, kept as compact JSON: a listing lives as long as a re-check interval
/// and holds every endpoint of the cluster, and JSON text is a third of the decoded map's size.
/// Decoded again when a re-check reads it.
#[derive(Debug)]
struct Listed {
    inference_id: String,
    task_type: String,
    json: Box<str>,
}

impl Listing {
    pub fn new(requested: Instant, endpoints: Vec<Endpoint>, limit: usize) -> Self {
        let truncated = endpoints.len() >= limit;
        let mut endpoints: Vec<Listed> = endpoints
            .into_iter()
            .filter_map(|e| {
                let json = serde_json::to_string(&e).ok()?.into_boxed_str();
                Some(Listed {
                    inference_id: e.inference_id,
                    task_type: e.task_type,
                    json,
                })
            })
            .collect();
        endpoints.sort_by(|a, b| a.inference_id.cmp(&b.inference_id));
        endpoints.shrink_to_fit();
        Listing {
            requested,
            truncated,
            endpoints,
        }
    }
}

/// What a listing says about one id.
#[derive(Debug, PartialEq)]
pub enum Found {
    Endpoint(Endpoint),
    /// Not in a complete listing: the GET of the id would answer 404.
    Absent,
    /// The listing cannot tell (written since it was requested, listed with another task type,
    /// or the listing may be cut short): ask with a GET of the id.
    Unknown,
}

/// Match `id` (of task type `task`) in `listing`; `written_since` is whether this operator wrote
/// the id after the listing was requested.
pub fn lookup(listing: &Listing, task: TaskType, id: &str, written_since: bool) -> Found {
    if written_since {
        return Found::Unknown;
    }
    let at = listing
        .endpoints
        .binary_search_by(|e| e.inference_id.as_str().cmp(id));
    match at {
        // Another task type: the GET of the id answers with the mismatch error the reconcile
        // reports, which the listing does not reproduce.
        Ok(i) if listing.endpoints[i].task_type == task.as_str() => {
            // It was encoded from an `Endpoint` a moment ago; a failure would be a bug, and
            // the GET of the id still answers.
            serde_json::from_str(&listing.endpoints[i].json).map_or(Found::Unknown, Found::Endpoint)
        }
        Ok(_) => Found::Unknown,
        Err(_) if listing.truncated => Found::Unknown,
        Err(_) => Found::Absent,
    }
}

/// How long a listing serves re-checks: the longest jittered re-check delay (1.1 × the
/// interval), so a round of re-checks, spread over one interval, is served by one listing, and
/// listings are requested at most once per 1.1 intervals per connection. An out-of-band change
/// in Elasticsearch is therefore seen within about two intervals instead of one.
pub fn freshness(recheck_interval: Duration) -> Duration {
    recheck_interval.mul_f64(1.1)
}

pub fn is_fresh(requested: Instant, now: Instant, freshness: Duration) -> bool {
    now.saturating_duration_since(requested) < freshness
}

/// Whether a reconcile may be served from a listing: a re-check of an object that was Ready for
/// its current spec, with the service credential the one applied. A spec change (generation
/// not yet observed), a changed Secret (another fingerprint) or a failed last attempt must see
/// Elasticsearch as it is now, so they GET the id. Whatever a listing says, a write is only
/// made after a GET of the id confirms it (the reconcile observes again before writing).
pub fn may_use_listing(
    ready: bool,
    generation: Option<i64>,
    observed_generation: Option<i64>,
    fingerprint: &str,
    applied_fingerprint: Option<&str>,
) -> bool {
    ready && generation == observed_generation && applied_fingerprint == Some(fingerprint)
}

/// A new listing is not worth it for the only object known on a connection: its GET costs one
/// request as well, and a smaller answer. `users` is how many objects last used the connection
/// (0 after a restart, when many may be about to). A fresh listing is used whatever `users`
/// says: it costs nothing (after a restart the first object to finish makes `users` 1 while
/// the others are still to come).
pub fn worth_listing(users: usize) -> bool {
    users != 1
}

enum State {
    Empty,
    Listed(Arc<Listing>),
    /// The last listing failed at this instant: GETs of single ids until it is stale.
    Failed(Instant),
}

/// The current listing of one connection.
pub struct Listings {
    state: tokio::sync::Mutex<State>,
}

impl Default for Listings {
    fn default() -> Self {
        Listings {
            state: tokio::sync::Mutex::new(State::Empty),
        }
    }
}

impl Listings {
    /// Drop the listing (its connection has no user left), unless it is being refreshed.
    pub fn clear(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            *state = State::Empty;
        }
    }

    /// The current listing if fresh (`None`: there is none, and the caller GETs its id). A
    /// listing being requested is waited for.
    pub async fn fresh(&self, freshness: Duration) -> Option<Arc<Listing>> {
        match &*self.state.lock().await {
            State::Listed(listing) if is_fresh(listing.requested, Instant::now(), freshness) => {
                Some(listing.clone())
            }
            _ => None,
        }
    }

    /// The current listing if fresh, else one requested with `list` (`None`: it failed, now or
    /// within the freshness, and the caller GETs its id). The lock is held while listing, so
    /// concurrent callers wait for the one request and share its answer. `replaced` gets the
    /// request time of the listing being replaced.
    pub async fn current<F, Fut>(
        &self,
        freshness: Duration,
        list: F,
        replaced: impl FnOnce(Instant),
    ) -> Option<Arc<Listing>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listing, EsError>>,
    {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        match &*state {
            State::Listed(listing) if is_fresh(listing.requested, now, freshness) => {
                return Some(listing.clone())
            }
            State::Failed(at) if is_fresh(*at, now, freshness) => return None,
            State::Listed(previous) => replaced(previous.requested),
            _ => {}
        }
        match list().await {
            Ok(listing) => {
                let listing = Arc::new(listing);
                *state = State::Listed(listing.clone());
                Some(listing)
            }
            Err(error) => {
                tracing::debug!(%error, "listing the inference endpoints failed; each object is read on its own");
                *state = State::Failed(Instant::now());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn endpoint(id: &str, task: &str) -> Endpoint {
        serde_json::from_value(
            json!({"inference_id": id, "task_type": task, "service": "azureopenai"}),
        )
        .unwrap()
    }

    fn listing(ids: &[(&str, &str)], limit: usize) -> Listing {
        let endpoints = ids.iter().map(|(id, task)| endpoint(id, task)).collect();
        Listing::new(Instant::now(), endpoints, limit)
    }

    #[test]
    fn an_id_is_found_absent_or_unknown() {
        let l = listing(&[("b", "completion"), ("a", "text_embedding")], 100);
        let emb = TaskType::TextEmbedding;
        assert_eq!(
            lookup(&l, emb, "a", false),
            Found::Endpoint(endpoint("a", "text_embedding"))
        );
        assert_eq!(
            lookup(&l, TaskType::Completion, "b", false),
            Found::Endpoint(endpoint("b", "completion"))
        );
        assert_eq!(lookup(&l, emb, "c", false), Found::Absent);
        // Listed with another task type: the GET's mismatch error decides.
        assert_eq!(lookup(&l, emb, "b", false), Found::Unknown);
        // Written after the listing was requested.
        assert_eq!(lookup(&l, emb, "a", true), Found::Unknown);
        assert_eq!(lookup(&l, emb, "c", true), Found::Unknown);
    }

    #[test]
    fn a_listing_as_long_as_the_limit_proves_no_absence() {
        let l = listing(&[("a", "completion"), ("b", "completion")], 2);
        assert_eq!(lookup(&l, TaskType::Completion, "c", false), Found::Unknown);
        assert!(matches!(
            lookup(&l, TaskType::Completion, "a", false),
            Found::Endpoint(_)
        ));
    }

    #[test]
    fn freshness_covers_the_longest_jittered_delay() {
        let interval = Duration::from_secs(300);
        let fresh = freshness(interval);
        assert_eq!(fresh, Duration::from_secs(330));
        let t = Instant::now();
        assert!(is_fresh(t, t + Duration::from_secs(329), fresh));
        assert!(!is_fresh(t, t + fresh, fresh));
        // A clock read before the listing (a caller that waited for the lock) is fresh.
        assert!(is_fresh(t + Duration::from_secs(1), t, fresh));
    }

    #[test]
    fn only_a_steady_recheck_uses_a_listing() {
        let fp = "hmac-sha256:1";
        assert!(may_use_listing(true, Some(2), Some(2), fp, Some(fp)));
        assert!(
            !may_use_listing(false, Some(2), Some(2), fp, Some(fp)),
            "not Ready"
        );
        assert!(
            !may_use_listing(true, Some(3), Some(2), fp, Some(fp)),
            "spec changed"
        );
        assert!(
            !may_use_listing(true, Some(2), Some(2), fp, Some("hmac-sha256:0")),
            "Secret changed"
        );
        assert!(
            !may_use_listing(true, Some(2), Some(2), fp, None),
            "nothing applied"
        );
        assert!(worth_listing(0) && worth_listing(2) && !worth_listing(1));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_listing_and_a_failure_is_not_retried_while_fresh() {
        let listings = Arc::new(Listings::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let fresh = Duration::from_secs(60);
        let call = |fail: bool| {
            let (listings, calls) = (listings.clone(), calls.clone());
            async move {
                listings
                    .current(
                        fresh,
                        || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            if fail {
                                Err(EsError::Config("refused".into()))
                            } else {
                                Ok(Listing::new(
                                    Instant::now(),
                                    vec![endpoint("a", "completion")],
                                    10,
                                ))
                            }
                        },
                        |_| {},
                    )
                    .await
            }
        };
        let answers = futures::future::join_all((0..10).map(|_| call(false))).await;
        assert!(answers.iter().all(Option::is_some));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let failing = Arc::new(Listings::default());
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let c = calls.clone();
            let got = failing
                .current(
                    fresh,
                    || async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Err::<Listing, _>(EsError::Config("refused".into()))
                    },
                    |_| {},
                )
                .await;
            assert!(got.is_none());
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a failed listing is not retried while fresh"
        );
    }

    #[tokio::test]
    async fn only_a_fresh_listing_is_reused() {
        let listings = Listings::default();
        let fresh = Duration::from_secs(60);
        assert!(listings.fresh(fresh).await.is_none());
        let old = Instant::now() - Duration::from_secs(120);
        let listed = |at| async move { Ok(Listing::new(at, vec![], 10)) };
        listings.current(fresh, || listed(old), |_| {}).await;
        assert!(listings.fresh(fresh).await.is_none(), "stale");
        let now = Instant::now();
        listings.current(fresh, || listed(now), |_| {}).await;
        assert_eq!(listings.fresh(fresh).await.unwrap().requested, now);
    }

    #[tokio::test]
    async fn a_stale_listing_is_replaced() {
        let listings = Listings::default();
        let old = Instant::now() - Duration::from_secs(120);
        let first = listings
            .current(
                Duration::from_secs(60),
                || async move { Ok(Listing::new(old, vec![], 10)) },
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(first.requested, old);
        let mut replaced = None;
        let second = listings
            .current(
                Duration::from_secs(60),
                || async { Ok(Listing::new(Instant::now(), vec![], 10)) },
                |at| replaced = Some(at),
            )
            .await
            .unwrap();
        assert!(second.requested > old);
        assert_eq!(replaced, Some(old));
    }
}
