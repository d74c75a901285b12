//! Per-tenant limits: flags and environment set the defaults of every tenant; the file's
//! `[limits]` table sets them too (below the flags), and `[limits.tenants.<id>]` overrides
//! any of them for one tenant. An override names only what differs: the rest comes from the
//! defaults.

use std::collections::HashMap;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use strata_ingest::limits::IngestLimits;
use strata_query::QueryLimits;
use strata_storage::{PerTenant, TenantId};

use super::{ConfigError, de_duration, parse_duration};

/// The limit flags of `strata serve` (defaults of every tenant).
#[derive(Debug, Default, Clone, Args)]
pub struct LimitArgs {
    /// Longest a query may plan and run before it is cancelled [default: 2m]
    #[arg(long, env = "STRATA_QUERY_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub query_timeout: Option<Duration>,

    /// Memory one query may use (operators that can spill to disk do; others fail the
    /// query); 0 = unlimited [default: 1073741824 (1 GiB)]
    #[arg(long, env = "STRATA_QUERY_MAX_MEMORY_BYTES", value_name = "BYTES")]
    pub query_max_memory_bytes: Option<usize>,

    /// Bytes one query may read from the object store; 0 = unlimited [default: 0]
    #[arg(long, env = "STRATA_QUERY_MAX_SCAN_BYTES", value_name = "BYTES")]
    pub query_max_scan_bytes: Option<u64>,

    /// Queries of one tenant running at once; more are refused with HTTP 429 [default: 16]
    #[arg(long, env = "STRATA_QUERY_MAX_CONCURRENT", value_name = "N")]
    pub query_max_concurrent: Option<usize>,

    /// Records (spans, log records, metric points) a tenant may ingest per second; 0 =
    /// unlimited [default: 0]
    #[arg(long, env = "STRATA_INGEST_RATE_RECORDS", value_name = "N")]
    pub ingest_rate_records: Option<u64>,

    /// Request bytes (after decompression) a tenant may ingest per second; 0 = unlimited
    /// [default: 0]
    #[arg(long, env = "STRATA_INGEST_RATE_BYTES", value_name = "BYTES")]
    pub ingest_rate_bytes: Option<u64>,

    /// How many seconds of the ingest rates a tenant may send at once (the token buckets'
    /// size) [default: 5s]
    #[arg(long, env = "STRATA_INGEST_BURST", value_name = "DURATION", value_parser = parse_duration)]
    pub ingest_burst: Option<Duration>,

    /// Metric series a tenant may have active (seen within `--active-series-window`); points
    /// of further new series are rejected with a partial success; 0 = unlimited [default: 0]
    #[arg(long, env = "STRATA_MAX_ACTIVE_SERIES", value_name = "N")]
    pub max_active_series: Option<usize>,

    /// Series one metric name may have active (the cardinality of its attributes); 0 =
    /// unlimited [default: 0]
    #[arg(long, env = "STRATA_MAX_SERIES_PER_METRIC", value_name = "N")]
    pub max_series_per_metric: Option<usize>,

    /// A series is active while it received a point within this window [default: 10m]
    #[arg(long, env = "STRATA_ACTIVE_SERIES_WINDOW", value_name = "DURATION", value_parser = parse_duration)]
    pub active_series_window: Option<Duration>,
}

/// One set of limit keys in the file: `[limits]` or `[limits.tenants.<id>]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitValues {
    #[serde(default, deserialize_with = "de_duration")]
    pub query_timeout: Option<Duration>,
    pub query_max_memory_bytes: Option<usize>,
    pub query_max_scan_bytes: Option<u64>,
    pub query_max_concurrent: Option<usize>,
    pub ingest_rate_records: Option<u64>,
    pub ingest_rate_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_duration")]
    pub ingest_burst: Option<Duration>,
    pub max_active_series: Option<usize>,
    pub max_series_per_metric: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    pub active_series_window: Option<Duration>,
}

/// The file's `[limits]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(flatten)]
    pub defaults: LimitValues,
    #[serde(default)]
    pub tenants: HashMap<String, LimitValues>,
}

/// Every tenant's limits, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub query: PerTenant<QueryLimits>,
    pub ingest: PerTenant<IngestLimits>,
}

impl LimitArgs {
    fn values(&self) -> LimitValues {
        LimitValues {
            query_timeout: self.query_timeout,
            query_max_memory_bytes: self.query_max_memory_bytes,
            query_max_scan_bytes: self.query_max_scan_bytes,
            query_max_concurrent: self.query_max_concurrent,
            ingest_rate_records: self.ingest_rate_records,
            ingest_rate_bytes: self.ingest_rate_bytes,
            ingest_burst: self.ingest_burst,
            max_active_series: self.max_active_series,
            max_series_per_metric: self.max_series_per_metric,
            active_series_window: self.active_series_window,
        }
    }

    /// Flags (and environment) > the file's `[limits]` > defaults; then each tenant's table
    /// over that.
    pub fn resolve(&self, file: Option<LimitsFile>) -> Result<Limits, ConfigError> {
        let file = file.unwrap_or_default();
        let defaults = self.values().or(&file.defaults);
        let (query, ingest) = defaults.build((QueryLimits::default(), IngestLimits::default()))?;
        let mut limits = Limits {
            query: PerTenant::uniform(query.clone()),
            ingest: PerTenant::uniform(ingest.clone()),
        };
        for (id, values) in file.tenants {
            TenantId::new(&id).map_err(|e| {
                ConfigError::Invalid(format!("limits.tenants.{id}: invalid tenant id: {e}"))
            })?;
            let (q, i) = values
                .build((query.clone(), ingest.clone()))
                .map_err(|e| ConfigError::Invalid(format!("limits.tenants.{id}: {e}")))?;
            limits.query.tenants.insert(id.clone(), q);
            limits.ingest.tenants.insert(id, i);
        }
        Ok(limits)
    }
}

impl LimitValues {
    /// Each key of `self` that is set, else that of `other`.
    fn or(self, other: &LimitValues) -> LimitValues {
        LimitValues {
            query_timeout: self.query_timeout.or(other.query_timeout),
            query_max_memory_bytes: self.query_max_memory_bytes.or(other.query_max_memory_bytes),
            query_max_scan_bytes: self.query_max_scan_bytes.or(other.query_max_scan_bytes),
            query_max_concurrent: self.query_max_concurrent.or(other.query_max_concurrent),
            ingest_rate_records: self.ingest_rate_records.or(other.ingest_rate_records),
            ingest_rate_bytes: self.ingest_rate_bytes.or(other.ingest_rate_bytes),
            ingest_burst: self.ingest_burst.or(other.ingest_burst),
            max_active_series: self.max_active_series.or(other.max_active_series),
            max_series_per_metric: self.max_series_per_metric.or(other.max_series_per_metric),
            active_series_window: self.active_series_window.or(other.active_series_window),
        }
    }

    /// The limits with the keys of `self` applied over `base`.
    fn build(
        self,
        base: (QueryLimits, IngestLimits),
    ) -> Result<(QueryLimits, IngestLimits), ConfigError> {
        let (q, i) = base;
        let query = QueryLimits {
            timeout: self.query_timeout.unwrap_or(q.timeout),
            max_memory_bytes: self.query_max_memory_bytes.unwrap_or(q.max_memory_bytes),
            max_scan_bytes: self.query_max_scan_bytes.unwrap_or(q.max_scan_bytes),
            max_concurrent: self.query_max_concurrent.unwrap_or(q.max_concurrent),
        };
        let ingest = IngestLimits {
            rate_records: self.ingest_rate_records.unwrap_or(i.rate_records),
            rate_bytes: self.ingest_rate_bytes.unwrap_or(i.rate_bytes),
            burst: self.ingest_burst.unwrap_or(i.burst),
            max_active_series: self.max_active_series.unwrap_or(i.max_active_series),
            max_series_per_metric: self
                .max_series_per_metric
                .unwrap_or(i.max_series_per_metric),
            active_series_window: self.active_series_window.unwrap_or(i.active_series_window),
        };
        if query.timeout.is_zero() {
            return Err(ConfigError::Invalid("query_timeout must be above 0".into()));
        }
        if query.max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "query_max_concurrent must be above 0".into(),
            ));
        }
        if ingest.burst.is_zero() {
            return Err(ConfigError::Invalid("ingest_burst must be above 0".into()));
        }
        if ingest.active_series_window.is_zero() {
            return Err(ConfigError::Invalid(
                "active_series_window must be above 0".into(),
            ));
        }
        Ok((query, ingest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[test]
    fn flags_beat_the_file_and_tenants_override_single_keys() {
        let file: LimitsFile = toml::from_str(
            r#"
                query_timeout = "30s"
                query_max_concurrent = 4
                ingest_rate_records = 1000
                [tenants.acme]
                query_timeout = "5s"
                max_active_series = 10
            "#,
        )
        .unwrap();
        let args = LimitArgs {
            query_max_concurrent: Some(8),
            ..LimitArgs::default()
        };
        let limits = args.resolve(Some(file)).unwrap();
        let other = limits.query.get(&tenant("globex"));
        assert_eq!(other.timeout, Duration::from_secs(30), "from the file");
        assert_eq!(other.max_concurrent, 8, "the flag beats the file");
        assert_eq!(
            other.max_memory_bytes,
            QueryLimits::default().max_memory_bytes
        );
        let acme = limits.query.get(&tenant("acme"));
        assert_eq!(acme.timeout, Duration::from_secs(5), "the tenant's own");
        assert_eq!(acme.max_concurrent, 8, "inherited from the defaults");
        let acme = limits.ingest.get(&tenant("acme"));
        assert_eq!(
            (acme.rate_records, acme.max_active_series),
            (1000, 10),
            "inherited rate, own series limit"
        );
        assert_eq!(limits.ingest.get(&tenant("globex")).max_active_series, 0);
    }

    #[test]
    fn bad_limits_are_refused_with_the_key() {
        let file: LimitsFile = toml::from_str("[tenants.\"a/b\"]\nquery_timeout = \"1s\"").unwrap();
        let err = LimitArgs::default().resolve(Some(file)).unwrap_err();
        assert!(err.to_string().contains("limits.tenants.a/b"), "{err}");
        let file: LimitsFile = toml::from_str("[tenants.acme]\nquery_max_concurrent = 0").unwrap();
        let err = LimitArgs::default().resolve(Some(file)).unwrap_err();
        assert!(err.to_string().contains("query_max_concurrent"), "{err}");
        assert!(toml::from_str::<LimitsFile>("query_timout = \"1s\"").is_err());
    }
}
