//! Time in the alerting crate: instants are `i64` nanoseconds since the Unix epoch (as
//! everywhere in Strata), read from a [`Clock`] so that every timer can be tested with a
//! [`ManualClock`]; durations are `std::time::Duration`, written the Prometheus way
//! (`30s`, `5m`, `1h30m`, `7d`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// ns since the Unix epoch.
pub type Nanos = i64;

/// Where the alerting code reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> Nanos;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told: tests of timers (`for`, `group_wait`, escalation
/// steps…) set and advance it and observe exactly what happens at each instant.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Nanos) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    pub fn set(&self, now: Nanos) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(nanos(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.0.load(Ordering::SeqCst)
    }
}

/// `d` in ns, saturating.
pub fn nanos(d: Duration) -> Nanos {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 with millisecond precision, as Alertmanager writes times (`2026-11-27T18:00:00.000Z`).
pub fn rfc3339(ns: Nanos) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Result<Nanos, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("invalid time {s:?} (want RFC 3339): {e}"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| format!("time {s:?} is out of range"))
}

/// Parses a Prometheus duration: one or more `<integer><unit>` with units `y w d h m s ms`,
/// largest first (`1h30m`, `90s`, `0s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("ms", 1),
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    let bad = || format!("invalid duration {s:?} (want e.g. 30s, 5m, 1h30m)");
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 18 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (rank, unit, ms) = (UNITS.iter().enumerate())
            .find(|(_, (u, _))| rest.starts_with(u))
            .map(|(i, (u, ms))| (rank_of(i), *u, *ms))
            .ok_or_else(bad)?;
        // Units must go from largest to smallest, each at most once.
        if rank >= last_rank {
            return Err(bad());
        }
        last_rank = rank;
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total))
}

/// The rank of `UNITS[i]` from smallest (ms = 0) to largest.
fn rank_of(i: usize) -> usize {
    if i == 0 { 0 } else { 7 - i }
}

/// Writes a duration the way [`parse_duration`] reads it (`1h30m`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// `#[serde(with = "strata_alert::time::duration")]` for `Duration` fields.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "strata_alert::time::option_duration", default)]` for `Option<Duration>`.
pub mod option_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        let ok = [
            ("0s", 0),
            ("0", 0),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("2w", 14 * 86_400_000),
            ("1m500ms", 60_500),
            ("1y", 365 * 86_400_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1m1h",
            "1s1s",
            "-5m",
            "1.5h",
            " 5m",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_round_trip() {
        for text in ["0s", "30s", "5m", "1h30m", "1d", "1d2h3m4s", "1m500ms"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(Duration::from_micros(2));
        assert_eq!(clock.now(), 3_000);
        clock.set(7);
        assert_eq!(clock.now(), 7);
    }

    #[test]
    fn rfc3339_round_trips_at_millisecond_precision() {
        let t = 1_795_000_000_123_000_000;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Ok(t));
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
