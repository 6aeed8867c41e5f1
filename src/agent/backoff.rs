//! Restart and image-pull back-off: the first retry at once, then 10 s doubling to 5 min; an
//! entry is forgotten once it has been quiet for twice the maximum (upstream's GC of back-off
//! entries), so a container that ran well for ten minutes restarts at once again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
struct Entry {
    delay: Duration,
    /// When the last attempt was made.
    last: Instant,
}

/// Back-off entries by key (`<container>` for restarts, `<image>` for pulls).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// `None` = try now (and the attempt is recorded); `Some(d)` = still backing off for `d`,
    /// whose full length is the second value.
    pub fn check(&mut self, key: &str, since: Instant, now: Instant) -> Option<(Duration, Duration)> {
        match self.entries.get_mut(key) {
            Some(e) if now.duration_since(e.last) > MAX * 2 => {
                *e = Entry { delay: INITIAL, last: now };
                None
            }
            Some(e) => {
                let until = since.max(e.last) + e.delay;
                if now < until {
                    return Some((until - now, e.delay));
                }
                e.delay = (e.delay * 2).min(MAX);
                e.last = now;
                None
            }
            None => {
                self.entries.insert(key.to_string(), Entry { delay: INITIAL, last: now });
                None
            }
        }
    }

    /// The current delay of a key (what `back-off 20s …` messages show).
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// Upstream's way of printing a back-off (`10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes_then_resets_after_quiet() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.check("c", t0, t0), None, "first restart is immediate");
        let (left, full) = b.check("c", t0, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!((left, full), (Duration::from_secs(7), INITIAL));
        let mut t = t0 + Duration::from_secs(10);
        assert_eq!(b.check("c", t, t), Some((INITIAL, INITIAL)), "exit time counts as the start of the wait");
        t += INITIAL;
        assert_eq!(b.check("c", t - INITIAL, t), None);
        let mut delays = vec![b.delay("c").unwrap().as_secs()];
        for _ in 0..6 {
            // The container exits right after each restart.
            let since = t;
            t += b.delay("c").unwrap();
            assert_eq!(b.check("c", since, t - Duration::from_secs(1)).map(|x| x.0), Some(Duration::from_secs(1)));
            assert_eq!(b.check("c", since, t), None);
            delays.push(b.delay("c").unwrap().as_secs());
        }
        assert_eq!(delays, vec![20, 40, 80, 160, 300, 300, 300]);
        t += MAX * 2 + Duration::from_secs(1);
        assert_eq!(b.check("c", t, t), None);
        assert_eq!(b.delay("c"), Some(INITIAL));
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
    }
}
