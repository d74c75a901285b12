//! A log line that is written at most once per interval, counting what it did not write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one event through per interval and counts the others, so that a flood of refusals
/// costs one log line a second instead of one per request.
#[derive(Debug)]
pub struct RateLimitedLog {
    start: Instant,
    interval_ms: u64,
    /// Milliseconds after `start` from which the next line may be written.
    next_ms: AtomicU64,
    /// Events not logged since the last line.
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    pub fn new(interval: Duration) -> Self {
        Self {
            start: Instant::now(),
            interval_ms: interval.as_millis().max(1) as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// For an event at `now`: `Some(events suppressed since the last line)` when a line may be
    /// written, `None` (and the event counted) when the last line is less than an interval old.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let at = now.saturating_duration_since(self.start).as_millis() as u64;
        let next = self.next_ms.load(Ordering::Acquire);
        if at >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    at + self.interval_ms,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_others() {
        // The clock is the test's: every instant is given, nothing waits or reads the time.
        let log = RateLimitedLog::new(Duration::from_secs(1));
        let t0 = log.start;
        assert_eq!(log.allow_at(t0), Some(0));
        for _ in 0..99 {
            assert_eq!(log.allow_at(t0 + Duration::from_millis(500)), None);
        }
        assert_eq!(log.allow_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(log.allow_at(t0 + Duration::from_secs(1)), Some(100));
        assert_eq!(log.allow_at(t0 + Duration::from_millis(1500)), None);
        // After a quiet spell the next event is logged at once.
        assert_eq!(log.allow_at(t0 + Duration::from_secs(60)), Some(1));
        assert_eq!(log.allow_at(t0 + Duration::from_secs(61)), Some(0));
    }
}
