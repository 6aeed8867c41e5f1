//! The scheduling queue: active pods by priority then arrival, pods backing off after a failed
//! attempt, and unschedulable pods waiting for a cluster change (or a minute).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Initial back-off after a failed attempt; doubles per attempt.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often.
const UNSCHEDULABLE_MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Where {
    Active,
    InFlight { moved: bool },
    Backoff(Instant),
    Unschedulable(Instant),
}

#[derive(Debug)]
struct Entry {
    order: (Reverse<i32>, u64),
    signature: u64,
    attempts: u32,
    affinity_related: bool,
    at: Where,
}

/// The queue of pods to schedule, keyed by `namespace/name`.
#[derive(Default)]
pub struct Queue {
    seq: u64,
    active: BTreeSet<((Reverse<i32>, u64), String)>,
    entries: HashMap<String, Entry>,
}

fn backoff(attempts: u32) -> Duration {
    let d = BACKOFF_INITIAL.saturating_mul(1 << attempts.saturating_sub(1).min(10));
    d.min(BACKOFF_MAX)
}

impl Queue {
    /// A pending pod was added or changed.
    pub fn add_or_update(&mut self, key: &str, priority: i32, signature: u64, affinity_related: bool) {
        match self.entries.get_mut(key) {
            None => {
                self.seq += 1;
                let order = (Reverse(priority), self.seq);
                self.active.insert((order, key.to_string()));
                self.entries.insert(
                    key.to_string(),
                    Entry { order, signature, attempts: 0, affinity_related, at: Where::Active },
                );
            }
            Some(e) => {
                let changed = e.signature != signature;
                e.signature = signature;
                e.affinity_related = affinity_related;
                if changed && matches!(e.at, Where::Unschedulable(_) | Where::Backoff(_)) {
                    e.at = Where::Active;
                    self.active.insert((e.order, key.to_string()));
                } else if changed {
                    if let Where::InFlight { .. } = e.at {
                        e.at = Where::InFlight { moved: true };
                    }
                }
            }
        }
    }

    /// Forgets a pod.
    pub fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.active.remove(&(e.order, key.to_string()));
        }
    }

    /// The next pod to try, or how long until one is due (`None`: nothing waits on time).
    pub fn pop(&mut self) -> Result<String, Option<Duration>> {
        if let Some((_, key)) = self.active.pop_first() {
            if let Some(e) = self.entries.get_mut(&key) {
                e.at = Where::InFlight { moved: false };
            }
            return Ok(key);
        }
        let now = Instant::now();
        let next = self
            .entries
            .values()
            .filter_map(|e| match e.at {
                Where::Backoff(t) => Some(t),
                Where::Unschedulable(t) => Some(t + UNSCHEDULABLE_MAX_WAIT),
                _ => None,
            })
            .min();
        Err(next.map(|t| t.saturating_duration_since(now)))
    }

    /// Moves due back-offs and long-waiting unschedulable pods to active.
    pub fn flush(&mut self, now: Instant) {
        for (key, e) in self.entries.iter_mut() {
            let due = match e.at {
                Where::Backoff(t) => t <= now,
                Where::Unschedulable(t) => t + UNSCHEDULABLE_MAX_WAIT <= now,
                _ => false,
            };
            if due {
                e.at = Where::Active;
                self.active.insert((e.order, key.clone()));
            }
        }
    }

    /// The attempt found no node. The pod waits for a cluster change, unless one happened while
    /// it was being tried.
    pub fn unschedulable(&mut self, key: &str) {
        let Some(e) = self.entries.get_mut(key) else { return };
        e.attempts += 1;
        let now = Instant::now();
        e.at = match e.at {
            Where::InFlight { moved: true } => Where::Backoff(now + backoff(e.attempts)),
            _ => Where::Unschedulable(now),
        };
    }

    /// The binding failed: retry after a back-off.
    pub fn backoff(&mut self, key: &str) {
        let Some(e) = self.entries.get_mut(key) else { return };
        e.attempts += 1;
        e.at = Where::Backoff(Instant::now() + backoff(e.attempts));
    }

    /// Nodes or pods changed: unschedulable pods go back (after their back-off). With
    /// `affinity_only`, only pods whose placement depends on other pods' placement move.
    pub fn cluster_changed(&mut self, affinity_only: bool) {
        for e in self.entries.values_mut() {
            if affinity_only && !e.affinity_related {
                continue;
            }
            match e.at {
                Where::Unschedulable(since) => e.at = Where::Backoff(since + backoff(e.attempts)),
                Where::InFlight { .. } => e.at = Where::InFlight { moved: true },
                _ => {}
            }
        }
    }

    /// Pods known to the queue.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_arrival_and_retry_on_change() {
        let mut q = Queue::default();
        q.add_or_update("a", 0, 1, false);
        q.add_or_update("b", 10, 1, false);
        q.add_or_update("c", 0, 1, false);
        assert_eq!(q.pop().unwrap(), "b");
        assert_eq!(q.pop().unwrap(), "a");
        q.unschedulable("a");
        assert_eq!(q.pop().unwrap(), "c");
        assert!(q.pop().is_err());
        // A spec change brings it back at once.
        q.add_or_update("a", 0, 2, false);
        assert_eq!(q.pop().unwrap(), "a");
        q.unschedulable("a");
        // A cluster change: back after the back-off.
        q.cluster_changed(false);
        q.flush(Instant::now() + Duration::from_secs(3));
        assert_eq!(q.pop().unwrap(), "a");
        q.remove("a");
        assert!(q.pop().is_err());
        assert_eq!(q.len(), 2);
    }
}
