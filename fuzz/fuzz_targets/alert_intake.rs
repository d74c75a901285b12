//! The Alertmanager-compatible intake (`POST /api/v2/alerts` bodies,
//! `strata_alert::intake::parse_postable_alerts`): JSON from any Prometheus or other sender.
//! An accepted alert has non-empty labels with valid names and non-empty values, at most
//! the limits, an end not before its start, was updated now and came from the API; the
//! whole request is refused when any alert is bad.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_alert::intake::{
    IntakeError, MAX_ALERTS_PER_REQUEST, MAX_LABELS, MAX_VALUE_BYTES, parse_postable_alerts,
};
use strata_alert::model::is_label_name;
use strata_alert::{AlertSource, Status};

/// 2026-11-16T22:13:20Z: runs are reproducible.
const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    match parse_postable_alerts(data, NOW) {
        Ok(alerts) => {
            assert!(alerts.len() <= MAX_ALERTS_PER_REQUEST);
            for a in &alerts {
                assert!(!a.labels.is_empty(), "an alert without labels");
                assert!(a.labels.len() <= MAX_LABELS && a.annotations.len() <= MAX_LABELS);
                for (name, value) in &a.labels {
                    assert!(is_label_name(name), "{name:?}");
                    assert!(!value.is_empty() && value.len() <= MAX_VALUE_BYTES);
                }
                for (name, value) in &a.annotations {
                    assert!(is_label_name(name), "{name:?}");
                    assert!(value.len() <= MAX_VALUE_BYTES);
                }
                if let Some(end) = a.ends_at {
                    assert!(end >= a.starts_at, "ends before it starts");
                }
                assert_eq!(a.updated_at, NOW);
                assert_eq!(a.source, AlertSource::Api);
                assert_eq!(a.fingerprint(), a.fingerprint());
                let _ = a.name();
                let resolved = a.is_resolved(NOW);
                assert_eq!(resolved, a.status(NOW) == Status::Resolved);
                // Without an end it fires until the sender stops re-sending it.
                if a.ends_at.is_none() {
                    assert!(!resolved);
                }
            }
            // The alerter saves its alerts as JSON and loads them on restart.
            let saved = serde_json::to_vec(&alerts).expect("alerts serialize");
            let loaded: Vec<strata_alert::Alert> =
                serde_json::from_slice(&saved).expect("saved alerts load");
            assert_eq!(loaded, alerts);
            // The same body, the same alerts.
            assert_eq!(parse_postable_alerts(data, NOW).as_ref(), Ok(&alerts));
        }
        Err(IntakeError::Alert { index, message }) => {
            assert!(!message.is_empty());
            assert!(index < MAX_ALERTS_PER_REQUEST);
        }
        Err(IntakeError::TooMany(n)) => assert!(n > MAX_ALERTS_PER_REQUEST),
        Err(IntakeError::Json(_)) => {}
    }
});
