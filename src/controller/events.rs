//! Events off the reconcile path, in a bounded queue.
//!
//! A reconcile hands its Event to [`EventQueue::push`], which never waits: the Event goes into
//! a FIFO of at most [`QUEUE_CAPACITY`] entries, and [`WORKERS`] tasks POST them one at a time
//! each. A full queue drops its oldest Event and counts it in
//! `inference_operator_events_dropped_total`. Until this queue, each Event was a task of its
//! own: a create wave of 1,000 objects spawned 2,000 tasks at once, each holding its Event, a
//! request future and (with an HTTP/1 API server) possibly its own connection — the burst the
//! allocator kept as RSS after convergence (docs/benchmarks.md#memory-after-bounding-the-burst-issue-16).
//!
//! The same shape as client-go's Event broadcaster (`tools/record/event.go`: a queue of
//! `maxQueuedEvents = 1000`, `watch.DropIfChannelFull`, one goroutine writing to the API
//! server), except that client-go drops the newest Event; the oldest is dropped here, so the
//! latest transition of an object is the one that survives.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Event;
use tokio::sync::Notify;
use tracing::warn;

use super::EventRecorder;
use crate::metrics::Metrics;

/// Events waiting to be published, at most (client-go's `maxQueuedEvents`). An Event and its
/// object reference are a few hundred bytes: a full queue is well under 1 MB.
pub const QUEUE_CAPACITY: usize = 1000;

/// Event POSTs in flight, at most: enough for a create wave at `--concurrency 32` (two Events
/// per create at ~160 creates/s with L = 200 ms, each POST a few milliseconds), few enough that
/// the API server sees a handful of connections for Events rather than one per Event.
pub const WORKERS: usize = 4;

/// A FIFO of at most `capacity` items that makes room by dropping its oldest (pure, no I/O).
#[derive(Debug)]
pub struct DropOldest<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> DropOldest<T> {
    pub fn new(capacity: usize) -> Self {
        DropOldest {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Append `item`; the oldest item when the queue was full.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() >= self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    pub fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front();
        if self.items.is_empty() {
            // A burst's buffer is not kept for the rest of the process.
            self.items = VecDeque::new();
        }
        item
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// One Event and the object it is about.
struct Pending {
    event: Event,
    reference: ObjectReference,
}

struct Shared {
    queue: Mutex<DropOldest<Pending>>,
    /// One permit per pushed Event (`notify_one`), all waiters on close.
    ready: Notify,
    closed: AtomicBool,
    recorder: EventRecorder,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// The bounded Event queue of one controller (see the module doc). Dropping it stops its
/// workers once they are idle; Events still queued then are not published.
pub struct EventQueue {
    shared: Arc<Shared>,
    workers: usize,
    started: AtomicBool,
}

impl EventQueue {
    /// A queue of `capacity` Events published by `workers` tasks, each POST bounded by
    /// `timeout`. The workers start with the first Event (inside the runtime).
    pub fn new(
        recorder: EventRecorder,
        capacity: usize,
        workers: usize,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        EventQueue {
            shared: Arc::new(Shared {
                queue: Mutex::new(DropOldest::new(capacity)),
                ready: Notify::new(),
                closed: AtomicBool::new(false),
                recorder,
                timeout,
                metrics,
            }),
            workers: workers.max(1),
            started: AtomicBool::new(false),
        }
    }

    /// Queue `event` about `reference` for publishing. Never waits; a full queue drops its
    /// oldest Event (counted).
    pub fn push(&self, event: Event, reference: ObjectReference) {
        let dropped = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pending { event, reference });
        if let Some(old) = dropped {
            self.shared.metrics.event_dropped();
            warn!(
                reason = %old.event.reason,
                "too many Events queued: dropped the oldest"
            );
        }
        self.shared.ready.notify_one();
        self.start_workers();
    }

    /// Events waiting (not yet taken by a worker).
    pub fn queued(&self) -> usize {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn start_workers(&self) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime yet: the Event waits for the first push made inside one.
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for _ in 0..self.workers {
            runtime.spawn(worker(self.shared.clone()));
        }
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.ready.notify_waiters();
    }
}

/// Publish queued Events one at a time until the queue is dropped.
async fn worker(shared: Arc<Shared>) {
    loop {
        // Registered before looking, so a close between the look and the wait is not missed.
        let notified = shared.ready.notified();
        let next = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match next {
            Some(pending) => publish(&shared, pending).await,
            None if shared.closed.load(Ordering::Acquire) => return,
            None => notified.await,
        }
    }
}

/// One Event, best effort: a failure or a timeout is logged (reason only: the note may name
/// the object, never a secret) and the Event is not retried.
async fn publish(shared: &Shared, pending: Pending) {
    let reason = pending.event.reason.as_str();
    let sent = shared.recorder.publish(&pending.event, &pending.reference);
    match tokio::time::timeout(shared.timeout, sent).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(%error, reason, "could not publish event"),
        Err(_) => warn!(reason, "publishing event timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::FIELD_MANAGER;
    use inference_testenv::kube::{EmulatorOptions, KubeEmulator};
    use kube::runtime::events::{EventType, Reporter};

    #[test]
    fn a_full_queue_drops_its_oldest() {
        let mut queue = DropOldest::new(3);
        assert_eq!(queue.push(1), None);
        assert_eq!(queue.push(2), None);
        assert_eq!(queue.push(3), None);
        assert_eq!(queue.push(4), Some(1));
        assert_eq!(queue.push(5), Some(2));
        assert_eq!(queue.len(), 3);
        assert_eq!(
            std::iter::from_fn(|| queue.pop()).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(queue.is_empty());
    }

    fn event(n: usize) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "Created".into(),
            note: Some(format!("event {n}")),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn reference() -> ObjectReference {
        ObjectReference {
            api_version: Some("esinference.io/v1alpha1".into()),
            kind: Some("InferenceEndpoint".into()),
            name: Some("a".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        }
    }

    fn recorder(url: &str) -> EventRecorder {
        EventRecorder {
            client: inference_testenv::client_for(url, "ns"),
            reporter: Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        }
    }

    fn queue(url: &str, capacity: usize, metrics: Arc<Metrics>) -> EventQueue {
        EventQueue::new(recorder(url), capacity, 2, Duration::from_secs(5), metrics)
    }

    #[tokio::test]
    async fn events_are_not_kept_per_object() {
        let kube = KubeEmulator::start(EmulatorOptions::default()).await;
        kube.create_namespace("ns");
        let recorder = recorder(&kube.url());
        for _ in 0..2 {
            recorder.publish(&event(1), &reference()).await.unwrap();
        }
        // kube's Recorder remembers the first and PATCHes it into a series; nothing is kept
        // here, so the repeat is created like the first.
        let methods: Vec<String> = kube
            .requests()
            .into_iter()
            .filter(|r| r.resource.as_deref() == Some("events"))
            .map(|r| r.method)
            .collect();
        assert_eq!(methods, ["POST", "POST"]);
    }

    fn notes(kube: &KubeEmulator) -> Vec<String> {
        kube.list_objects("events")
            .into_iter()
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .collect()
    }

    /// The pushes run without yielding (a current-thread runtime): the workers cannot take
    /// anything before the last push, so exactly the overflow is dropped, and what is
    /// published is the newest `capacity` Events.
    #[tokio::test]
    async fn a_burst_beyond_the_capacity_drops_the_oldest_and_counts_them() {
        let kube = KubeEmulator::start(EmulatorOptions::default()).await;
        kube.create_namespace("ns");
        let metrics = Arc::new(Metrics::default());
        let events = queue(&kube.url(), 8, metrics.clone());
        for n in 0..20 {
            events.push(event(n), reference());
        }
        assert_eq!(events.queued(), 8);
        assert_eq!(metrics.events_dropped(), 12);
        wait_until(|| notes(&kube).len() == 8).await;
        let mut published = notes(&kube);
        published.sort_by_key(|note| note[6..].parse::<usize>().unwrap());
        let expected: Vec<String> = (12..20).map(|n| format!("event {n}")).collect();
        assert_eq!(published, expected);
        assert_eq!(events.queued(), 0);
    }

    /// An API server that takes Events but never answers: pushes still return at once, and
    /// what piles up is the queue's capacity plus one Event per worker, not one task per Event.
    #[tokio::test]
    async fn a_stalled_api_server_never_blocks_the_caller() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn({
            let held = held.clone();
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    held.lock().unwrap().push(socket);
                }
            }
        });
        let metrics = Arc::new(Metrics::default());
        let events = queue(&url, 8, metrics.clone());
        let started = std::time::Instant::now();
        for round in 0..5 {
            for n in 0..10 {
                events.push(event(round * 10 + n), reference());
            }
            // Let the workers take their Event and hang on the silent server.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        // 2 workers each hold one Event; the queue holds 8; the other 40 were dropped.
        assert_eq!(events.queued(), 8);
        assert_eq!(metrics.events_dropped(), 40);
        assert!(held.lock().unwrap().len() <= 2);
    }

    async fn wait_until(mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
