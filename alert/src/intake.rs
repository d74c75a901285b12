//! The Alertmanager-compatible intake: `POST /api/v2/alerts` bodies (a JSON array of
//! "postable alerts") turned into [`Alert`]s, so Prometheus and other rulers can use Strata's
//! alerter as their Alertmanager.
//!
//! As Alertmanager does: `labels` must be a non-empty map of valid label names to non-empty
//! values; `startsAt` defaults to the time of receipt; an alert without `endsAt` fires until
//! the sender stops re-sending it, then resolves after the alerter's resolve timeout
//! (`crate::alerter`); an alert with `endsAt` and no `startsAt` starts at its end; an
//! `endsAt` before `startsAt` is an error. The whole request is refused
//! if any alert is invalid, with the index of the first bad alert.

use serde::Deserialize;

use crate::model::{Alert, AlertSource, Labels, is_label_name};
use crate::time::{Nanos, parse_rfc3339};

/// Most alerts in one request.
pub const MAX_ALERTS_PER_REQUEST: usize = 10_000;
/// Longest label or annotation value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most labels on one alert.
pub const MAX_LABELS: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// Why an intake request was refused (HTTP 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("alerts[{index}]: {message}")]
    Alert { index: usize, message: String },
    #[error("too many alerts in one request ({0}; at most {MAX_ALERTS_PER_REQUEST})")]
    TooMany(usize),
}

/// Parses a `POST /api/v2/alerts` body received at `now`.
pub fn parse_postable_alerts(body: &[u8], now: Nanos) -> Result<Vec<Alert>, IntakeError> {
    let posted: Vec<PostableAlert> =
        serde_json::from_slice(body).map_err(|e| IntakeError::Json(e.to_string()))?;
    if posted.len() > MAX_ALERTS_PER_REQUEST {
        return Err(IntakeError::TooMany(posted.len()));
    }
    (posted.into_iter().enumerate())
        .map(|(index, p)| alert_of(p, now).map_err(|message| IntakeError::Alert { index, message }))
        .collect()
}

fn alert_of(p: PostableAlert, now: Nanos) -> Result<Alert, String> {
    if p.labels.is_empty() {
        return Err("labels must not be empty".into());
    }
    if p.labels.len() > MAX_LABELS || p.annotations.len() > MAX_LABELS {
        return Err(format!("more than {MAX_LABELS} labels or annotations"));
    }
    for (name, value) in &p.labels {
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if value.is_empty() {
            return Err(format!("label {name:?} has an empty value"));
        }
    }
    for name in p.annotations.keys() {
        if !is_label_name(name) {
            return Err(format!("invalid annotation name {name:?}"));
        }
    }
    if (p.labels.values().chain(p.annotations.values())).any(|v| v.len() > MAX_VALUE_BYTES) {
        return Err(format!(
            "a label or annotation value is over {MAX_VALUE_BYTES} bytes"
        ));
    }
    let time = |field: &str, value: Option<String>| -> Result<Option<Nanos>, String> {
        match value.as_deref() {
            None | Some("") | Some("0001-01-01T00:00:00Z") => Ok(None),
            Some(text) => parse_rfc3339(text)
                .map(Some)
                .map_err(|e| format!("{field}: {e}")),
        }
    };
    let ends_at = time("endsAt", p.ends_at)?;
    // As Alertmanager: without a start, an alert starts at its end (a resolved alert sent
    // once), else now.
    let starts_at = time("startsAt", p.starts_at)?.unwrap_or(ends_at.unwrap_or(now));
    if let Some(end) = ends_at
        && end < starts_at
    {
        return Err("endsAt is before startsAt".into());
    }
    Ok(Alert {
        labels: p.labels,
        annotations: p.annotations,
        starts_at,
        ends_at,
        updated_at: now,
        generator_url: p.generator_url.unwrap_or_default(),
        source: AlertSource::Api,
        value: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::rfc3339;

    const NOW: Nanos = 1_795_000_000_000_000_000;

    #[test]
    fn parses_what_prometheus_sends() {
        let body = format!(
            r#"[{{"labels":{{"alertname":"InstanceDown","instance":"a:9100"}},
                 "annotations":{{"summary":"down"}},
                 "startsAt":"{}","endsAt":"{}",
                 "generatorURL":"http://prom:9090/graph?g0.expr=up"}}]"#,
            rfc3339(NOW - 60_000_000_000),
            rfc3339(NOW + 240_000_000_000)
        );
        let alerts = parse_postable_alerts(body.as_bytes(), NOW).unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.name(), "InstanceDown");
        assert_eq!(a.labels["instance"], "a:9100");
        assert_eq!(a.annotations["summary"], "down");
        assert_eq!(a.starts_at, NOW - 60_000_000_000);
        assert_eq!(a.ends_at, Some(NOW + 240_000_000_000));
        assert_eq!(a.updated_at, NOW);
        assert_eq!(a.source, AlertSource::Api);
        assert_eq!(a.generator_url, "http://prom:9090/graph?g0.expr=up");
    }

    #[test]
    fn defaults_start_to_now_or_to_the_end() {
        let alerts = parse_postable_alerts(br#"[{"labels":{"alertname":"X"}}]"#, NOW).unwrap();
        assert_eq!((alerts[0].starts_at, alerts[0].ends_at), (NOW, None));
        let zero = br#"[{"labels":{"alertname":"X"},"endsAt":"0001-01-01T00:00:00Z"}]"#;
        assert_eq!(parse_postable_alerts(zero, NOW).unwrap()[0].ends_at, None);
        assert_eq!(parse_postable_alerts(b"[]", NOW).unwrap(), vec![]);
        let resolved = format!(
            r#"[{{"labels":{{"alertname":"X"}},"endsAt":"{}"}}]"#,
            rfc3339(NOW - 1_000_000_000)
        );
        let alert = &parse_postable_alerts(resolved.as_bytes(), NOW).unwrap()[0];
        assert_eq!(alert.starts_at, NOW - 1_000_000_000);
        assert!(alert.is_resolved(NOW));
    }

    #[test]
    fn refuses_invalid_alerts_with_their_index() {
        let cases: [(&[u8], &str); 9] = [
            (b"{", "invalid JSON"),
            (br#"{"labels":{}}"#, "invalid JSON"),
            (br#"[{"labels":{}}]"#, "alerts[0]: labels must not be empty"),
            (br#"[{"annotations":{}}]"#, "invalid JSON"),
            (
                br#"[{"labels":{"a":"b"}},{"labels":{"1x":"b"}}]"#,
                "alerts[1]: invalid label name",
            ),
            (br#"[{"labels":{"a":""}}]"#, "empty value"),
            (br#"[{"labels":{"a":"b"},"startsAt":"soon"}]"#, "startsAt"),
            (
                br#"[{"labels":{"a":"b"},"startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-01T00:00:00Z"}]"#,
                "endsAt is before startsAt",
            ),
            (br#"[{"labels":{"a":1}}]"#, "invalid JSON"),
        ];
        for (body, want) in cases {
            let e = parse_postable_alerts(body, NOW).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        let many = format!(
            "[{}]",
            vec![r#"{"labels":{"a":"b"}}"#; MAX_ALERTS_PER_REQUEST + 1].join(",")
        );
        assert_eq!(
            parse_postable_alerts(many.as_bytes(), NOW),
            Err(IntakeError::TooMany(MAX_ALERTS_PER_REQUEST + 1))
        );
    }

    #[test]
    fn label_names_follow_prometheus() {
        for ok in ["a", "_", "alertname", "A_1"] {
            assert!(is_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }
}
