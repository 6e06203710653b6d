//! Fair reconcile slots: `--concurrency` shared between namespaces so that one namespace whose
//! Elasticsearch hangs cannot starve the others (docs/lifecycle.md#fair-reconcile-slots).
//!
//! kube-rs 5 has one global limit (`controller::Config::concurrency`), first come first served:
//! 40 objects at a server that hangs on PUT hold all 32 slots for the PUT's time-box (45 s,
//! src/elasticsearch/client.rs) and everyone else waits. The controller therefore runs kube-rs
//! unbounded and every reconcile first takes a slot here.
//!
//! * [`FairShare`] is the policy, pure: who may take a slot, given who holds and who waits.
//! * [`Slots`] is the plumbing: a mutex around the policy and one oneshot per waiter, so a
//!   waiter sleeps (no polling) and does not count as a holder.
//!
//! The policy. A group (a namespace) is *active* while it holds or waits for a slot; its *share*
//! is `max(1, total / active groups)`. A free slot goes to the waiting group holding the fewest
//! slots (oldest waiter first on a tie), so a group at or above its share gets nothing while a
//! group below it waits, and a lone group gets every slot. A slot already held cannot be taken
//! back (a reconcile is not preempted; each Elasticsearch request is time-boxed), so slots a
//! group holds beyond its share are treated as *lent*: a group below its share may start even
//! when all `total` slots are held, as long as the slots held *within* shares stay at most
//! `total` and no more than `2 × total` are held in all (shares shrink as groups arrive, so
//! without that ceiling the lent slots could add up). Reconciles in flight fall back to `total`
//! as the lent slots are returned.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// A waiter's place in line; increasing, so the smaller is the older.
pub type Ticket = u64;

#[derive(Debug, Default)]
struct Group {
    held: usize,
    waiting: VecDeque<Ticket>,
}

/// The fair-share policy over groups named by `K`, without any I/O or clock.
#[derive(Debug)]
pub struct FairShare<K> {
    total: usize,
    next: Ticket,
    groups: BTreeMap<K, Group>,
}

impl<K: Ord + Clone> FairShare<K> {
    /// `total` slots (at least one).
    pub fn new(total: usize) -> Self {
        FairShare {
            total: total.max(1),
            next: 0,
            groups: BTreeMap::new(),
        }
    }

    /// Join `group`'s line; call [`FairShare::grant`] afterwards.
    pub fn enqueue(&mut self, group: K) -> Ticket {
        let ticket = self.next;
        self.next += 1;
        self.groups
            .entry(group)
            .or_default()
            .waiting
            .push_back(ticket);
        ticket
    }

    /// Leave the line (a waiter given up). `false` when the ticket was not waiting: granted.
    pub fn cancel(&mut self, group: &K, ticket: Ticket) -> bool {
        let Some(entry) = self.groups.get_mut(group) else {
            return false;
        };
        let before = entry.waiting.len();
        entry.waiting.retain(|t| *t != ticket);
        let removed = entry.waiting.len() != before;
        self.tidy(group);
        removed
    }

    /// Give a held slot back; call [`FairShare::grant`] afterwards.
    pub fn release(&mut self, group: &K) {
        if let Some(entry) = self.groups.get_mut(group) {
            entry.held = entry.held.saturating_sub(1);
        }
        self.tidy(group);
    }

    /// The next waiter to start, if any may: it now holds a slot.
    pub fn grant(&mut self) -> Option<(K, Ticket)> {
        let share = self.share();
        let held: usize = self.groups.values().map(|g| g.held).sum();
        let within: usize = self.groups.values().map(|g| g.held.min(share)).sum();
        let (group, _) = self
            .groups
            .iter()
            .filter_map(|(key, g)| g.waiting.front().map(|t| (key, (g.held, *t))))
            .filter(|(key, _)| self.admissible(key, share, held, within))
            .min_by_key(|(_, order)| *order)?;
        let group = group.clone();
        let entry = self.groups.get_mut(&group)?;
        let ticket = entry.waiting.pop_front()?;
        entry.held += 1;
        Some((group, ticket))
    }

    /// A free slot, or one lent by a group above its share to a group below it.
    fn admissible(&self, group: &K, share: usize, held: usize, within: usize) -> bool {
        let mine = self.groups.get(group).map_or(0, |g| g.held);
        held < self.total || (mine < share && within < self.total && held < 2 * self.total)
    }

    /// Each active group's share of the slots.
    pub fn share(&self) -> usize {
        (self.total / self.groups.len().max(1)).max(1)
    }

    /// Slots `group` holds.
    pub fn held(&self, group: &K) -> usize {
        self.groups.get(group).map_or(0, |g| g.held)
    }

    /// Slots held by every group.
    pub fn held_total(&self) -> usize {
        self.groups.values().map(|g| g.held).sum()
    }

    /// Waiters of every group.
    pub fn waiting_total(&self) -> usize {
        self.groups.values().map(|g| g.waiting.len()).sum()
    }

    /// An idle group is forgotten, so it no longer dilutes the others' share.
    fn tidy(&mut self, group: &K) {
        if self
            .groups
            .get(group)
            .is_some_and(|g| g.held == 0 && g.waiting.is_empty())
        {
            self.groups.remove(group);
        }
    }
}

struct State {
    policy: FairShare<String>,
    wake: HashMap<Ticket, oneshot::Sender<()>>,
    /// Shutting down: waiters are sent away, nobody new waits.
    closed: bool,
}

/// The reconcile slots of one controller: [`Slots::acquire`] waits for a [`Slot`].
pub struct Slots {
    state: Mutex<State>,
    /// As many permits as slots, for the Kubernetes writes that end a pass after its slot was
    /// given back ([`Slot::report`]): they stay bounded by `--concurrency` too.
    reports: Arc<Semaphore>,
}

impl Slots {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Slots {
            state: Mutex::new(State {
                policy: FairShare::new(total),
                wake: HashMap::new(),
                closed: false,
            }),
            reports: Arc::new(Semaphore::new(total.clamp(1, Semaphore::MAX_PERMITS))),
        })
    }

    /// Wait (asleep) for a slot for `group`; `None` once [`Slots::close`]d. Cancel-safe:
    /// dropped while waiting, it leaves the line; dropped just after being granted, it gives the
    /// slot back.
    pub async fn acquire(self: &Arc<Self>, group: &str) -> Option<Slot> {
        let (tx, rx) = oneshot::channel();
        let ticket = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            let ticket = state.policy.enqueue(group.to_owned());
            state.wake.insert(ticket, tx);
            dispatch(&mut state);
            ticket
        };
        let mut waiting = Waiting {
            slots: self.clone(),
            group: group.to_owned(),
            ticket,
            granted: false,
        };
        // The sender lives in `wake` until the grant sends on it, or `close` drops it.
        rx.await.ok()?;
        waiting.granted = true;
        Some(Slot {
            slots: self.clone(),
            group: group.to_owned(),
        })
    }

    /// Send every waiter away (they were never started) and refuse new ones: on shutdown, only
    /// the reconciles already running are finished.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.wake.clear();
    }

    /// (held by `group`, held in all, waiting in all, share): for logs and tests.
    pub fn snapshot(&self, group: &str) -> (usize, usize, usize, usize) {
        let state = self.lock();
        let p = &state.policy;
        (
            p.held(&group.to_owned()),
            p.held_total(),
            p.waiting_total(),
            p.share(),
        )
    }

    fn release(&self, group: &str) {
        let mut state = self.lock();
        state.policy.release(&group.to_owned());
        dispatch(&mut state);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No invariant spans a panic inside the lock: the policy's updates are single steps.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Wake every waiter the policy lets start now.
fn dispatch(state: &mut State) {
    while let Some((group, ticket)) = state.policy.grant() {
        let delivered = state
            .wake
            .remove(&ticket)
            .is_some_and(|tx| tx.send(()).is_ok());
        if !delivered {
            // Its waiter is gone: the slot goes back at once.
            state.policy.release(&group);
        }
    }
}

/// A waiter not yet handed its [`Slot`].
struct Waiting {
    slots: Arc<Slots>,
    group: String,
    ticket: Ticket,
    granted: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut state = self.slots.lock();
        state.wake.remove(&self.ticket);
        if !state.policy.cancel(&self.group, self.ticket) {
            // Granted between the send and this drop: give it back.
            state.policy.release(&self.group);
        }
        dispatch(&mut state);
    }
}

/// A held reconcile slot; dropping it gives it back.
pub struct Slot {
    slots: Arc<Slots>,
    group: String,
}

impl Slot {
    /// Give the slot back once the pass has made its last Elasticsearch request: what is left
    /// (the status patch, the Events) talks to the API server only, so it cannot hang on a
    /// namespace's Elasticsearch, and the next pass starts meanwhile. It holds one of as many
    /// report permits as there are slots instead (waited for, holding no slot), so those writes
    /// stay bounded by `--concurrency` as well.
    pub async fn report(self) -> Reporting {
        let reports = self.slots.reports.clone();
        drop(self);
        Reporting {
            _permit: reports.acquire_owned().await.ok(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(&self.group);
    }
}

/// A report permit ([`Slot::report`]); dropping it gives it back.
pub struct Reporting {
    _permit: Option<OwnedSemaphorePermit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grant everything grantable; the groups granted, in order.
    fn drain(p: &mut FairShare<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| p.grant().map(|(g, _)| g)).collect()
    }

    #[test]
    fn a_lone_group_uses_every_slot() {
        let mut p = FairShare::new(4);
        for _ in 0..6 {
            p.enqueue("a");
        }
        assert_eq!(drain(&mut p), ["a"; 4]);
        assert_eq!((p.held(&"a"), p.waiting_total()), (4, 2));
        p.release(&"a");
        assert_eq!(drain(&mut p), ["a"], "a freed slot goes back to it");
    }

    #[test]
    fn a_newcomer_starts_on_a_slot_lent_by_a_group_above_its_share() {
        let mut p = FairShare::new(4);
        for _ in 0..6 {
            p.enqueue("slow");
        }
        assert_eq!(drain(&mut p).len(), 4);
        p.enqueue("calm");
        p.enqueue("calm");
        // share 2: slow holds 4 (2 within its share), so calm may hold 2 on lent slots.
        assert_eq!(drain(&mut p), ["calm", "calm"]);
        assert_eq!(p.held_total(), 6);
        p.enqueue("calm");
        assert_eq!(drain(&mut p), Vec::<&str>::new(), "calm is at its share");
        // A slow reconcile ends: held 5 > total, so nobody starts, slow least of all.
        p.release(&"slow");
        assert_eq!(drain(&mut p), Vec::<&str>::new());
        p.release(&"slow");
        p.release(&"slow");
        // held 3 < 4: the free slot goes to the group holding fewer, slow (1) before calm (2).
        assert_eq!(drain(&mut p), ["slow"]);
    }

    #[test]
    fn a_group_at_its_share_gets_nothing_while_another_waits_below_it() {
        let mut p = FairShare::new(4);
        for _ in 0..4 {
            p.enqueue("a");
        }
        for _ in 0..4 {
            p.enqueue("b");
        }
        // Oldest first on a tie, then the group holding fewer: they alternate.
        assert_eq!(drain(&mut p), ["a", "b", "a", "b"]);
        p.release(&"a");
        assert_eq!(drain(&mut p), ["a"], "a is below its share again");
        p.release(&"b");
        assert_eq!(drain(&mut p), ["b"]);
    }

    #[test]
    fn in_flight_never_passes_twice_the_total() {
        // Groups arriving while one holds everything: each gets at most its share at the time,
        // until the ceiling; the rest wait for the lent slots to come back.
        let total = 8;
        let mut p = FairShare::new(total);
        for _ in 0..total {
            p.enqueue("slow");
        }
        drain(&mut p);
        let mut granted = Vec::new();
        for group in ["b", "c", "d", "e", "f"] {
            for _ in 0..total {
                p.enqueue(group);
            }
            granted.push(drain(&mut p).len());
            assert!(p.held_total() <= 2 * total, "{}", p.held_total());
        }
        // shares 4, 2, 2 (within shares: 4+4, then 2+2+2, then 2+2+2+2 = total), then the ceiling.
        assert_eq!(granted, [4, 2, 2, 0, 0]);
        assert_eq!(p.held_total(), 2 * total);
        for _ in 0..total {
            p.release(&"slow");
        }
        // Back within the total: e and f, holding nothing, are served first.
        assert_eq!(drain(&mut p)[..2], ["e", "f"]);
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_line_and_an_idle_group_its_share() {
        let mut p = FairShare::new(4);
        for _ in 0..4 {
            p.enqueue("a");
        }
        assert_eq!(drain(&mut p).len(), 4);
        let late = p.enqueue("b");
        p.enqueue("c");
        assert_eq!(p.share(), 1, "three active groups");
        // within shares: a 1 + b 1 + c 1 = 3 < 4, so b and c start on slots lent by a.
        assert_eq!(drain(&mut p), ["b", "c"]);
        assert!(!p.cancel(&"b", late), "granted, not waiting");
        let waiting = p.enqueue("c");
        assert_eq!(drain(&mut p), Vec::<&str>::new(), "c is at its share");
        assert!(p.cancel(&"c", waiting));
        assert_eq!(p.waiting_total(), 0);
        p.release(&"b");
        p.release(&"c");
        assert_eq!(p.share(), 4, "b and c are forgotten once idle");
    }

    /// Random arrivals and departures of four groups: after every step, the invariants of the
    /// policy hold (checked against counts kept here, not the policy's own).
    #[test]
    fn random_schedules_keep_the_invariants() {
        const GROUPS: [&str; 4] = ["a", "b", "c", "d"];
        let mut rng = fastrand::Rng::with_seed(15);
        for total in [1, 2, 3, 8, 32] {
            let mut p = FairShare::new(total);
            let mut held = [0usize; 4];
            let mut waiting = [0usize; 4];
            for _ in 0..2000 {
                let g = rng.usize(..4);
                if rng.bool() || held[g] == 0 {
                    p.enqueue(GROUPS[g]);
                    waiting[g] += 1;
                } else {
                    p.release(&GROUPS[g]);
                    held[g] -= 1;
                }
                loop {
                    let active = (0..4).filter(|&i| held[i] + waiting[i] > 0).count();
                    let share = (total / active.max(1)).max(1);
                    let Some((group, _)) = p.grant() else { break };
                    let i = GROUPS.iter().position(|x| *x == group).unwrap();
                    // Nobody waiting below its share is passed over for a group holding more.
                    let passed_over = (0..4).any(|j| waiting[j] > 0 && held[j] < held[i]);
                    assert!(
                        !passed_over,
                        "{group} granted at {held:?} waiting {waiting:?}"
                    );
                    // Beyond the total only on a lent slot, to a group below its share.
                    let in_flight: usize = held.iter().sum();
                    assert!(
                        in_flight < total || held[i] < share,
                        "{held:?} share {share}"
                    );
                    held[i] += 1;
                    waiting[i] -= 1;
                }
                let in_flight: usize = held.iter().sum();
                assert!(in_flight <= 2 * total, "{in_flight} > 2 x {total}");
                // Work-conserving: a free slot and a waiter cannot stay apart.
                let queued: usize = waiting.iter().sum();
                assert!(in_flight >= total || queued == 0, "{held:?} {waiting:?}");
                assert_eq!((p.held_total(), p.waiting_total()), (in_flight, queued));
            }
        }
    }

    #[tokio::test]
    async fn waiters_sleep_until_a_slot_is_theirs_and_dropping_gives_it_back() {
        let slots = Slots::new(1);
        let first = slots.acquire("a").await.unwrap();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("a").await }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            slots.snapshot("a"),
            (1, 1, 1, 1),
            "the waiter holds nothing"
        );
        // Another group: share 1 each, and `a` holds its one slot within its share, so nothing
        // is lent and it waits too.
        let other = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("b").await }
        });
        tokio::task::yield_now().await;
        assert_eq!(slots.snapshot("b"), (0, 1, 2, 1));
        drop(first);
        // Both groups hold nothing: the oldest waiter, a's, is served.
        let second = waiting.await.unwrap().unwrap();
        assert_eq!(slots.snapshot("a").0, 1);
        other.abort();
        let _ = other.await;
        assert_eq!(
            slots.snapshot("b"),
            (0, 1, 0, 1),
            "the aborted waiter left the line"
        );
        drop(second);
        assert_eq!(slots.snapshot("a"), (0, 0, 0, 1));
    }

    #[tokio::test]
    async fn a_reporting_pass_gives_its_slot_back_and_reports_stay_bounded() {
        let slots = Slots::new(1);
        let first = slots.acquire("a").await.unwrap();
        let reporting = first.report().await;
        assert_eq!(slots.snapshot("a"), (0, 0, 0, 1), "the slot is free");
        // The next pass runs its Elasticsearch requests meanwhile; its report waits for the
        // first one's to end (one report permit per slot).
        let second = slots.acquire("a").await.unwrap();
        let waiting = tokio::spawn(second.report());
        tokio::task::yield_now().await;
        assert_eq!(slots.snapshot("a").1, 0, "waiting to report holds no slot");
        assert!(!waiting.is_finished(), "one report at a time");
        drop(reporting);
        let _second = waiting.await.unwrap();
    }

    #[tokio::test]
    async fn closing_sends_the_waiters_away_and_lets_the_holders_finish() {
        let slots = Slots::new(1);
        let held = slots.acquire("a").await.unwrap();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("b").await.is_none() }
        });
        tokio::task::yield_now().await;
        slots.close();
        assert!(waiting.await.unwrap(), "the waiter was sent away");
        assert!(slots.acquire("c").await.is_none());
        assert_eq!(
            slots.snapshot("b"),
            (0, 1, 0, 1),
            "the holder keeps its slot"
        );
        drop(held);
        assert_eq!(slots.snapshot("a"), (0, 0, 0, 1));
    }
}
