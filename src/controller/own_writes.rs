//! The versions of each InferenceEndpoint that this process's own writes superseded, so that no
//! reconcile acts on a cached copy older than what it wrote.
//!
//! kube-rs reconciles an object from the reflector's cache, which the watch fills after each
//! write has been answered. A second reconcile queued while the first one ran (the start queues
//! one for the object and one for each Secret it reads) can therefore start from the copy the
//! first one wrote over: without the finalizer it just added (the finalizer patch, guarded by
//! that copy's resourceVersion, is refused with 409 again and again), or without the status it
//! just wrote (the endpoint it created reads as someone else's and is "Adopted", a refused
//! credential is sent again). Each write of the object here records the resourceVersion it
//! replaced: the answer carries a new one, so the one written over is known to be stale. A
//! reconcile whose object still has such a version does nothing and comes back shortly
//! ([`retry_after`]); the watch's delivery of any version that is not superseded ends it.
//!
//! Why a set of superseded versions, not "the version our last write returned": a cached copy
//! whose version differs from ours is either older or newer (someone else wrote after us), and
//! telling which needs an order. resourceVersions are opaque strings to a client, compared for
//! equality only ([API concepts, resource versions](https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions);
//! comparing them is KEP-5504, Kubernetes 1.35, and not used here). Equality with a version we
//! wrote over is proof of staleness; anything else (ours or a later one) is acted on. A
//! foreign write between two of ours is not known to be stale and is acted on, as before.
//!
//! Bounded: entries exist only between a write and the watch delivering it (or a later
//! version), are dropped with the object, keep at most [`MAX_SUPERSEDED`] versions, and at most
//! [`MAX_OBJECTS`] objects are tracked (the oldest dropped). A cache that has not caught up
//! after [`GIVE_UP`] (a watch that stopped) no longer holds the object back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::watcher;
use kube::Resource;

/// Objects tracked at once; writes are only tracked until the watch delivers them, so this is
/// far above the reconciles in flight (`--concurrency`).
pub const MAX_OBJECTS: usize = 4096;
/// Superseded versions kept per object (a reconcile writes at most two: finalizer, status).
pub const MAX_SUPERSEDED: usize = 8;
/// How long a stale cache holds an object back at most.
pub const GIVE_UP: Duration = Duration::from_secs(30);

/// What a reconcile starting from a cached version should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The version is not one this process wrote over: act on it.
    Current,
    /// This process's own write superseded it: come back after this long.
    Stale(Duration),
}

/// How long a reconcile held back by a stale cache waits: the watch delivers a write within
/// milliseconds, so first at a short interval, then (a slow or restarting watch) once a second,
/// never a hot loop.
pub fn retry_after(age: Duration) -> Duration {
    if age < Duration::from_secs(2) {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    }
}

#[derive(Debug)]
struct Entry {
    superseded: Vec<String>,
    /// When the last write was recorded.
    since: Instant,
}

/// Per object (by uid), the resourceVersions this process's writes superseded.
#[derive(Debug, Default)]
pub struct OwnWrites {
    entries: Mutex<HashMap<String, Entry>>,
}

impl OwnWrites {
    /// A write of object `uid` replaced version `before` and was answered with `after`. A
    /// write that changed nothing keeps the version (the API server stores nothing): nothing
    /// is superseded then.
    pub fn wrote(&self, uid: &str, before: Option<&str>, after: Option<&str>) {
        let Some(before) = before.filter(|b| Some(*b) != after) else {
            return;
        };
        let now = Instant::now();
        let mut entries = self.lock();
        if !entries.contains_key(uid) && entries.len() >= MAX_OBJECTS {
            evict(&mut entries, now);
        }
        let entry = entries.entry(uid.to_owned()).or_insert_with(|| Entry {
            superseded: Vec::new(),
            since: now,
        });
        entry.since = now;
        if !entry.superseded.iter().any(|s| s == before) {
            if entry.superseded.len() >= MAX_SUPERSEDED {
                entry.superseded.remove(0);
            }
            entry.superseded.push(before.to_owned());
        }
    }

    /// Whether a reconcile may act on the cached version `rv` of `uid`. A version that is not
    /// superseded means the cache has caught up (or moved past): the entry goes.
    pub fn verdict(&self, uid: &str, rv: Option<&str>) -> Verdict {
        let mut entries = self.lock();
        let Some(entry) = entries.get(uid) else {
            return Verdict::Current;
        };
        let verdict = judge(entry, rv, Instant::now());
        if verdict == Verdict::Current {
            entries.remove(uid);
        }
        verdict
    }

    /// The watch delivered version `rv` of `uid` into the cache: unless it is one this process
    /// wrote over, the cache holds our writes (or later ones).
    pub fn seen(&self, uid: &str, rv: Option<&str>) {
        let mut entries = self.lock();
        if entries
            .get(uid)
            .is_some_and(|e| !rv.is_some_and(|rv| e.superseded.iter().any(|s| s == rv)))
        {
            entries.remove(uid);
        }
    }

    /// Follow the object watch, after the reflector stored the event. Only `Apply` updates the
    /// store at once (a relist's objects replace it at `InitDone`, which the reconcile entry
    /// then sees); a deleted object is forgotten.
    pub fn follow<K: Resource>(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                if let Some(uid) = object.meta().uid.as_deref() {
                    self.seen(uid, object.meta().resource_version.as_deref());
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.meta().uid.as_deref() {
                    self.forget(uid);
                }
            }
            watcher::Event::InitDone => {
                let now = Instant::now();
                self.lock()
                    .retain(|_, e| now.duration_since(e.since) < GIVE_UP);
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The object is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Objects tracked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pure rule: a superseded version is stale until [`GIVE_UP`] has passed since the write.
fn judge(entry: &Entry, rv: Option<&str>, now: Instant) -> Verdict {
    let age = now.saturating_duration_since(entry.since);
    let superseded = rv.is_some_and(|rv| entry.superseded.iter().any(|s| s == rv));
    if superseded && age < GIVE_UP {
        Verdict::Stale(retry_after(age))
    } else {
        Verdict::Current
    }
}

/// Make room: drop entries past [`GIVE_UP`], else the oldest.
fn evict(entries: &mut HashMap<String, Entry>, now: Instant) {
    entries.retain(|_, e| now.saturating_duration_since(e.since) < GIVE_UP);
    if entries.len() < MAX_OBJECTS {
        return;
    }
    if let Some(oldest) = entries
        .iter()
        .min_by_key(|(_, e)| e.since)
        .map(|(uid, _)| uid.clone())
    {
        entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_written_over_is_stale_until_a_later_one_is_seen() {
        let writes = OwnWrites::default();
        assert_eq!(writes.verdict("u", Some("10")), Verdict::Current);
        // Finalizer patch 10 → 11, status patch 11 → 12.
        writes.wrote("u", Some("10"), Some("11"));
        writes.wrote("u", Some("11"), Some("12"));
        let short = Verdict::Stale(Duration::from_millis(100));
        assert_eq!(writes.verdict("u", Some("10")), short);
        assert_eq!(writes.verdict("u", Some("11")), short);
        // Another object is not concerned.
        assert_eq!(writes.verdict("v", Some("10")), Verdict::Current);
        // The watch delivers the finalizer's version: still behind the status.
        writes.seen("u", Some("11"));
        assert_eq!(writes.verdict("u", Some("11")), short);
        writes.seen("u", Some("12"));
        assert!(writes.is_empty(), "the cache holds our last write");
        assert_eq!(writes.verdict("u", Some("11")), Verdict::Current);
    }

    #[test]
    fn versions_are_compared_for_equality_only() {
        let writes = OwnWrites::default();
        writes.wrote("u", Some("9"), Some("10"));
        // "10" > "9" numerically and "10" < "9" as text: neither order is used. A version
        // that is not one we wrote over (ours, or anyone's later) is acted on.
        assert_eq!(writes.verdict("u", Some("8")), Verdict::Current);
        writes.wrote("u", Some("9"), Some("10"));
        assert_eq!(writes.verdict("u", Some("opaque-7")), Verdict::Current);
        assert!(
            writes.is_empty(),
            "a version not written over ends the entry"
        );
    }

    #[test]
    fn a_write_that_changed_nothing_supersedes_nothing() {
        let writes = OwnWrites::default();
        writes.wrote("u", Some("10"), Some("10"));
        writes.wrote("u", None, Some("11"));
        assert!(writes.is_empty());
        assert_eq!(writes.verdict("u", Some("10")), Verdict::Current);
    }

    #[test]
    fn a_stale_cache_is_waited_for_at_a_slowing_pace_then_given_up() {
        assert_eq!(retry_after(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(retry_after(Duration::from_secs(5)), Duration::from_secs(1));
        let entry = Entry {
            superseded: vec!["10".into()],
            since: Instant::now(),
        };
        let later = |d| entry.since + d;
        assert_eq!(
            judge(&entry, Some("10"), later(Duration::from_secs(3))),
            Verdict::Stale(Duration::from_secs(1))
        );
        assert_eq!(
            judge(&entry, Some("10"), later(GIVE_UP)),
            Verdict::Current,
            "a watch that stopped does not hold the object for ever"
        );
        assert_eq!(judge(&entry, None, later(Duration::ZERO)), Verdict::Current);
    }

    #[test]
    fn memory_is_bounded_per_object_and_in_objects() {
        let writes = OwnWrites::default();
        for i in 0..(MAX_SUPERSEDED + 4) {
            writes.wrote("u", Some(&i.to_string()), Some(&(i + 1).to_string()));
        }
        let kept = writes.lock().get("u").map(|e| e.superseded.len());
        assert_eq!(kept, Some(MAX_SUPERSEDED));
        assert_eq!(
            writes.verdict("u", Some("0")),
            Verdict::Current,
            "the oldest version went first"
        );
        for i in 0..(MAX_OBJECTS + 10) {
            writes.wrote(&format!("uid-{i}"), Some("1"), Some("2"));
        }
        assert_eq!(writes.len(), MAX_OBJECTS);
        assert_eq!(
            writes.verdict(&format!("uid-{}", MAX_OBJECTS + 9), Some("1")),
            Verdict::Stale(Duration::from_millis(100)),
            "the newest is kept"
        );
        writes.forget(&format!("uid-{}", MAX_OBJECTS + 9));
        assert_eq!(writes.len(), MAX_OBJECTS - 1);
    }
}
