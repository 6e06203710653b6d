//! Who uses an endpoint: `status.usedBy`, from Elasticsearch's dry-run DELETE (the ingest
//! pipelines from 8.15, the indexes whose `semantic_text` fields use it from 8.16;
//! docs/reference/elasticsearch-inference-api.md#used-by).
//!
//! The read is its own, slower clock (`--used-by-interval`, jittered per object), plus once
//! before every delete or recreate; a plain re-check never makes it, and neither does the pass
//! that creates the endpoint (a create costs a GET and a PUT): a new endpoint's clock starts when
//! it became Ready, which status keeps, so a restart does not read every new object at once. Whether a read is due is
//! the pure [`refresh_due`]; what status records after a read (or a failed one) is the pure
//! [`recorded`]. A failed read never fails the reconcile: the last lists are kept, marked
//! `stale` (docs/lifecycle.md#who-uses-an-endpoint).

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::UsedBy;
use crate::elasticsearch::{DeleteResponse, EsVersion};

/// Names listed per kind (pipelines, indexes); the counts say how many there are in all.
pub const MAX_LISTED: usize = 20;
/// A name longer than this is cut (index names are at most 255 bytes; pipeline ids have no
/// limit in Elasticsearch), so that status stays bounded.
pub const MAX_NAME_CHARS: usize = 512;

/// What a reconcile learnt of the endpoint's users.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum UsageRead {
    /// No read was made (not due, or the cluster cannot list users).
    #[default]
    NotRead,
    /// The dry-run DELETE's answer, from a cluster of this version.
    Read(DeleteResponse, EsVersion),
    /// The read failed; the reconcile went on.
    Failed,
}

impl UsageRead {
    pub fn was_attempted(&self) -> bool {
        *self != UsageRead::NotRead
    }
}

/// Whether the users should be read again: never read, or `interval` (spread per object by
/// [`spread`]) has passed since `last_read`.
pub fn refresh_due(
    last_read: Option<Timestamp>,
    now: Timestamp,
    interval: Duration,
    uid: &str,
) -> bool {
    let Some(last) = last_read else {
        return true;
    };
    let every = i64::try_from(spread(interval, uid).as_millis()).unwrap_or(i64::MAX);
    now.as_millisecond().saturating_sub(last.as_millisecond()) >= every
}

/// `interval` scaled by a factor in [0.9, 1.1) fixed per object (a hash of its uid): objects
/// created together do not all read at the same re-check, and each keeps a steady period.
pub fn spread(interval: Duration, uid: &str) -> Duration {
    let mut hasher = DefaultHasher::new();
    uid.hash(&mut hasher);
    let unit = (hasher.finish() % 10_000) as f64 / 10_000.0;
    interval.mul_f64(0.9 + unit * 0.2)
}

/// The later of the time status says the users were read and this process's last attempt
/// (which a failed read moves on too, so it is not retried at every re-check).
pub fn last_read(status: Option<&UsedBy>, attempted: Option<Timestamp>) -> Option<Timestamp> {
    let observed = status.map(|u| u.observed_at.0);
    observed.max(attempted)
}

/// When the clock of an object's reads starts: its last read ([`last_read`]); never read, the
/// time its Ready condition last changed (`since`: the create of a new endpoint); neither, now
/// (`None`: due).
pub fn clock_start(last_read: Option<Timestamp>, since: Option<Timestamp>) -> Option<Timestamp> {
    last_read.or(since)
}

/// What status records after a reconcile: the new lists, the last ones marked stale after a
/// failed read, or the last ones unchanged when nothing was read.
pub fn recorded(previous: Option<&UsedBy>, read: &UsageRead, now: &Time) -> Option<UsedBy> {
    match read {
        UsageRead::NotRead => previous.cloned(),
        UsageRead::Failed => previous.map(|p| UsedBy {
            stale: true,
            ..p.clone()
        }),
        UsageRead::Read(report, version) => Some(from_report(report, version, now)),
    }
}

/// The status record of a dry-run report: sorted, de-duplicated, capped lists with the full
/// counts. Before 8.16 Elasticsearch does not report indexes, and status says so by leaving
/// `indexCount` out rather than claiming none.
pub fn from_report(report: &DeleteResponse, version: &EsVersion, now: &Time) -> UsedBy {
    let (pipelines, pipeline_count) = capped(&report.pipelines);
    let (indexes, index_count) = if version.lists_index_users() {
        let (listed, count) = capped(&report.indexes);
        (listed, Some(count))
    } else {
        (Vec::new(), None)
    };
    UsedBy {
        pipelines,
        indexes,
        pipeline_count,
        index_count,
        total: pipeline_count.saturating_add(index_count.unwrap_or(0)),
        observed_at: now.clone(),
        stale: false,
    }
}

fn capped(names: &[String]) -> (Vec<String>, i64) {
    let unique: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let count = i64::try_from(unique.len()).unwrap_or(i64::MAX);
    let listed = unique
        .into_iter()
        .take(MAX_LISTED)
        .map(|n| n.chars().take(MAX_NAME_CHARS).collect())
        .collect();
    (listed, count)
}

/// This process's last read attempt per object (by uid).
#[derive(Debug, Default)]
pub struct UsageReads {
    attempts: Mutex<HashMap<String, Timestamp>>,
}

impl UsageReads {
    pub fn last_attempt(&self, uid: &str) -> Option<Timestamp> {
        self.lock().get(uid).copied()
    }

    pub fn attempted(&self, uid: &str, at: Timestamp) {
        self.lock().insert(uid.to_owned(), at);
    }

    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn report(pipelines: &[&str], indexes: &[&str]) -> DeleteResponse {
        DeleteResponse {
            acknowledged: false,
            pipelines: pipelines.iter().map(|s| s.to_string()).collect(),
            indexes: indexes.iter().map(|s| s.to_string()).collect(),
            error_message: None,
        }
    }

    #[test]
    fn a_read_is_due_first_and_then_once_per_spread_interval() {
        let hour = Duration::from_secs(3600);
        assert!(refresh_due(None, at(0), hour, "uid-a"));
        let every = spread(hour, "uid-a");
        assert!(every >= hour.mul_f64(0.9) && every < hour.mul_f64(1.1));
        let secs = every.as_secs() as i64;
        assert!(!refresh_due(Some(at(0)), at(secs - 1), hour, "uid-a"));
        assert!(refresh_due(Some(at(0)), at(secs + 1), hour, "uid-a"));
        // Stable per object, different across objects.
        assert_eq!(spread(hour, "uid-a"), every);
        let spreads: BTreeSet<Duration> =
            (0..20).map(|i| spread(hour, &format!("uid-{i}"))).collect();
        assert!(spreads.len() > 10, "{spreads:?}");
    }

    #[test]
    fn a_new_endpoint_is_read_one_interval_after_it_became_ready() {
        let hour = Duration::from_secs(3600);
        let every = spread(hour, "uid-a").as_secs() as i64;
        let start = clock_start(None, Some(at(0)));
        assert!(
            !refresh_due(start, at(1), hour, "uid-a"),
            "not in the create's pass"
        );
        assert!(refresh_due(start, at(every + 1), hour, "uid-a"));
        // A read, once made, is the clock.
        assert_eq!(clock_start(Some(at(50)), Some(at(0))), Some(at(50)));
        assert!(refresh_due(clock_start(None, None), at(0), hour, "uid-a"));
    }

    #[test]
    fn a_failed_attempt_moves_the_clock_on() {
        let used = from_report(&report(&["p"], &[]), &EsVersion::new(9, 1, 0), &Time(at(0)));
        assert_eq!(last_read(Some(&used), None), Some(at(0)));
        assert_eq!(last_read(Some(&used), Some(at(60))), Some(at(60)));
        assert_eq!(last_read(None, Some(at(60))), Some(at(60)));
        assert_eq!(last_read(None, None), None);
    }

    #[test]
    fn lists_are_sorted_deduplicated_capped_and_counted() {
        let pipelines: Vec<String> = (0..25).rev().map(|i| format!("p{i:02}")).collect();
        let mut indexes = vec!["b".to_owned(), "a".to_owned(), "a".to_owned()];
        indexes.push("x".repeat(MAX_NAME_CHARS + 10));
        let report = DeleteResponse {
            pipelines,
            indexes,
            ..DeleteResponse::default()
        };
        let used = from_report(&report, &EsVersion::new(8, 16, 0), &Time(at(0)));
        assert_eq!(used.pipelines.len(), MAX_LISTED);
        assert_eq!(used.pipelines[0], "p00");
        assert_eq!(used.pipeline_count, 25);
        assert_eq!(used.indexes[..2], ["a".to_owned(), "b".to_owned()]);
        assert_eq!(used.indexes[2].chars().count(), MAX_NAME_CHARS);
        assert_eq!(used.index_count, Some(3));
        assert_eq!(used.total, 28);
        assert!(!used.stale);
    }

    #[test]
    fn before_8_16_indexes_are_not_claimed_to_be_none() {
        let used = from_report(
            &report(&["p"], &["ignored"]),
            &EsVersion::new(8, 15, 2),
            &Time(at(0)),
        );
        assert_eq!(used.index_count, None);
        assert!(used.indexes.is_empty());
        assert_eq!(used.total, 1);
    }

    #[test]
    fn a_failed_read_keeps_the_last_lists_marked_stale() {
        let version = EsVersion::new(9, 1, 0);
        let now = Time(at(10));
        let last = from_report(&report(&["p"], &["i"]), &version, &Time(at(0)));
        let kept = recorded(Some(&last), &UsageRead::Failed, &now).unwrap();
        assert!(kept.stale);
        assert_eq!(kept.observed_at, last.observed_at);
        assert_eq!(kept.pipelines, last.pipelines);
        assert_eq!(recorded(None, &UsageRead::Failed, &now), None);
        assert_eq!(
            recorded(Some(&last), &UsageRead::NotRead, &now),
            Some(last.clone())
        );
        let read = UsageRead::Read(report(&[], &[]), version);
        let fresh = recorded(Some(&kept), &read, &now).unwrap();
        assert!(!fresh.stale && fresh.total == 0 && fresh.observed_at == now);
    }
}
