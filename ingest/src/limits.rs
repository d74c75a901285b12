//! Per-tenant ingest limits: a rate (records and bytes per second, token buckets) and the
//! cardinality of metrics (active series per tenant and per metric name).
//!
//! - **Rate.** Each tenant has two token buckets that refill at its rate and hold `burst`
//!   seconds of it. A request is admitted while neither bucket is in debt, and then takes
//!   its records and bytes (so one request larger than the bucket still passes, once, and
//!   the tenant then waits for the debt to refill). A refused request gets HTTP 429 / gRPC
//!   `UNAVAILABLE` with the time until the bucket is out of debt as `Retry-After`. Nothing of
//!   it is stored.
//! - **Cardinality.** A metric series (its `series` id: metric name, resource and point
//!   attributes) is active while it received a point within `active_series_window`. Points
//!   of a series that is not active are accepted only while the tenant has fewer than
//!   `max_active_series` active series and the metric fewer than `max_series_per_metric`;
//!   the others are left out of the batch and reported in `partial_success`, like any item
//!   that cannot be stored. Points of active series always pass, so a tenant at its limit
//!   keeps its existing series.
//!
//! Each tenant has its own state: one tenant at its limits never slows another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use parking_lot::Mutex;
use strata_storage::{PerTenant, TenantId};

use crate::convert::Rejected;

/// One tenant's ingest limits. Zero means unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Records (spans, log records, metric points) per second.
    pub rate_records: u64,
    /// Request bytes (after decompression) per second.
    pub rate_bytes: u64,
    /// Seconds of the rates a tenant may send at once.
    pub burst: Duration,
    /// Active metric series of the tenant.
    pub max_active_series: usize,
    /// Active series of one metric name.
    pub max_series_per_metric: usize,
    /// How long a series stays active after its last point.
    pub active_series_window: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            rate_records: 0,
            rate_bytes: 0,
            burst: Duration::from_secs(5),
            max_active_series: 0,
            max_series_per_metric: 0,
            active_series_window: Duration::from_secs(600),
        }
    }
}

/// A refusal by the rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited {
    pub what: &'static str,
    pub limit: u64,
    pub retry_after: Duration,
}

/// A tenant's current use, for `/api/v1/tenants/{id}/usage` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IngestUsage {
    pub active_series: usize,
    pub records_refused_rate: u64,
    pub requests_refused_rate: u64,
    pub points_refused_cardinality: u64,
}

/// Enforces [`IngestLimits`] for every tenant.
#[derive(Debug)]
pub struct Limiter {
    limits: PerTenant<IngestLimits>,
    tenants: Mutex<HashMap<TenantId, Arc<Mutex<TenantState>>>>,
}

#[derive(Debug, Default)]
struct TenantState {
    records: Option<Bucket>,
    bytes: Option<Bucket>,
    /// Active series: id → (metric name, last point).
    series: HashMap<u64, (Arc<str>, Instant)>,
    per_metric: HashMap<Arc<str>, usize>,
    last_sweep: Option<Instant>,
    usage: IngestUsage,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: u64, burst: Duration, now: Instant) {
        let capacity = rate as f64 * burst.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate as f64).min(capacity);
        self.at = now;
    }
}

impl Limiter {
    pub fn new(limits: PerTenant<IngestLimits>) -> Self {
        Self {
            limits,
            tenants: Mutex::default(),
        }
    }

    /// The limits of `tenant`.
    pub fn limits(&self, tenant: &TenantId) -> &IngestLimits {
        self.limits.get(tenant)
    }

    fn state(&self, tenant: &TenantId) -> Arc<Mutex<TenantState>> {
        self.tenants
            .lock()
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    /// Admits a request of `records` records and `bytes` bytes at `now`, or says how long
    /// to wait.
    pub fn admit(
        &self,
        tenant: &TenantId,
        records: u64,
        bytes: u64,
        now: Instant,
    ) -> Result<(), RateLimited> {
        let limits = self.limits(tenant);
        if limits.rate_records == 0 && limits.rate_bytes == 0 {
            return Ok(());
        }
        let state = self.state(tenant);
        let mut state = state.lock();
        let full = |rate: u64| Bucket {
            tokens: rate as f64 * limits.burst.as_secs_f64(),
            at: now,
        };
        let checks = [
            ("records", limits.rate_records, records),
            ("bytes", limits.rate_bytes, bytes),
        ];
        // Check both before taking from either.
        for (what, rate, _) in checks {
            if rate == 0 {
                continue;
            }
            let bucket = match what {
                "records" => state.records.get_or_insert_with(|| full(rate)),
                _ => state.bytes.get_or_insert_with(|| full(rate)),
            };
            bucket.refill(rate, limits.burst, now);
            if bucket.tokens < 0.0 {
                let retry_after = Duration::from_secs_f64(-bucket.tokens / rate as f64);
                state.usage.requests_refused_rate += 1;
                state.usage.records_refused_rate += records;
                return Err(RateLimited {
                    what,
                    limit: rate,
                    retry_after,
                });
            }
        }
        for (what, rate, amount) in checks {
            if rate == 0 {
                continue;
            }
            let bucket = match what {
                "records" => state.records.as_mut(),
                _ => state.bytes.as_mut(),
            };
            if let Some(bucket) = bucket {
                bucket.tokens -= amount as f64;
            }
        }
        Ok(())
    }

    /// Leaves out of a metrics `batch` the points of new series over the tenant's
    /// cardinality limits, counting them in `rejected`. Returns the batch to store.
    pub fn filter_series(
        &self,
        tenant: &TenantId,
        batch: RecordBatch,
        rejected: &mut Rejected,
        now: Instant,
    ) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let limits = self.limits(tenant).clone();
        let (Some(series), Some(names)) = (
            batch.column_by_name("series"),
            batch.column_by_name("metric_name"),
        ) else {
            return Ok(Some(batch));
        };
        let series = series.as_primitive::<UInt64Type>();
        let names = names.as_string::<i32>();
        let state = self.state(tenant);
        let mut state = state.lock();
        state.sweep(limits.active_series_window, now);
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut refused = 0u64;
        for row in 0..batch.num_rows() {
            let id = series.value(row);
            if let Some(entry) = state.series.get_mut(&id) {
                entry.1 = now;
                keep.push(true);
                continue;
            }
            let name = names.value(row);
            let metric_count = state.per_metric.get(name).copied().unwrap_or(0);
            let over_tenant =
                limits.max_active_series > 0 && state.series.len() >= limits.max_active_series;
            let over_metric =
                limits.max_series_per_metric > 0 && metric_count >= limits.max_series_per_metric;
            if over_tenant || over_metric {
                keep.push(false);
                refused += 1;
                rejected.add(|| {
                    if over_tenant {
                        format!(
                            "tenant {tenant} has reached its limit of {} active metric series \
                             (max_active_series); points of new series are dropped",
                            limits.max_active_series
                        )
                    } else {
                        format!(
                            "metric {name:?} has reached its limit of {} active series \
                             (max_series_per_metric); points of new series are dropped",
                            limits.max_series_per_metric
                        )
                    }
                });
                continue;
            }
            let name: Arc<str> = Arc::from(name);
            *state.per_metric.entry(name.clone()).or_default() += 1;
            state.series.insert(id, (name, now));
            keep.push(true);
        }
        state.usage.points_refused_cardinality += refused;
        state.usage.active_series = state.series.len();
        drop(state);
        if refused == 0 {
            return Ok(Some(batch));
        }
        if refused as usize == batch.num_rows() {
            return Ok(None);
        }
        let mask = BooleanArray::from(keep);
        arrow::compute::filter_record_batch(&batch, &mask).map(Some)
    }

    /// `tenant`'s current use.
    pub fn usage(&self, tenant: &TenantId) -> IngestUsage {
        self.tenants
            .lock()
            .get(tenant)
            .map(|s| s.lock().usage.clone())
            .unwrap_or_default()
    }

    /// Every tenant with state, and its use (for `/metrics`).
    pub fn all_usage(&self) -> Vec<(TenantId, IngestUsage)> {
        let tenants: Vec<_> = self
            .tenants
            .lock()
            .iter()
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        tenants
            .into_iter()
            .map(|(t, s)| (t, s.lock().usage.clone()))
            .collect()
    }
}

impl TenantState {
    /// Forgets series without a point within `window`; at most every tenth of the window.
    fn sweep(&mut self, window: Duration, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < window / 10)
        {
            return;
        }
        self.last_sweep = Some(now);
        let per_metric = &mut self.per_metric;
        self.series.retain(|_, (name, seen)| {
            let active = now.saturating_duration_since(*seen) < window;
            if !active && let Some(count) = per_metric.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    per_metric.remove(name);
                }
            }
            active
        });
        self.usage.active_series = self.series.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    fn tenant(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    fn limiter(limits: IngestLimits) -> Limiter {
        Limiter::new(PerTenant::uniform(limits))
    }

    fn points(rows: &[(&str, u64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("metric_name", DataType::Utf8, false),
            Field::new("series", DataType::UInt64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    fn series_of(batch: &RecordBatch) -> Vec<u64> {
        batch
            .column_by_name("series")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn the_record_rate_admits_a_burst_then_refuses_until_refilled() {
        let l = limiter(IngestLimits {
            rate_records: 100,
            burst: Duration::from_secs(2),
            ..IngestLimits::default()
        });
        let a = tenant("a");
        let t0 = Instant::now();
        // The bucket starts full: 200 records.
        l.admit(&a, 150, 0, t0).unwrap();
        l.admit(&a, 150, 0, t0).unwrap(); // 50 left, so admitted; now 100 in debt
        let refused = l.admit(&a, 1, 0, t0).unwrap_err();
        assert_eq!(refused.what, "records");
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // After one second the debt is paid.
        l.admit(&a, 10, 0, t0 + Duration::from_secs(1)).unwrap();
        // Another tenant has its own bucket.
        l.admit(&tenant("b"), 200, 0, t0).unwrap();
        assert_eq!(l.usage(&a).requests_refused_rate, 1);
    }

    #[test]
    fn the_byte_rate_refuses_without_taking_records() {
        let l = limiter(IngestLimits {
            rate_records: 1000,
            rate_bytes: 1000,
            burst: Duration::from_secs(1),
            ..IngestLimits::default()
        });
        let a = tenant("a");
        let t0 = Instant::now();
        l.admit(&a, 1, 5000, t0).unwrap();
        assert_eq!(l.admit(&a, 1, 1, t0).unwrap_err().what, "bytes");
        // The refused request took no records: 999 are left after 4 s of byte refill.
        let later = t0 + Duration::from_secs(4);
        l.admit(&a, 999, 1, later).unwrap();
    }

    #[test]
    fn unlimited_tenants_are_never_refused() {
        let l = limiter(IngestLimits::default());
        let t0 = Instant::now();
        for _ in 0..1000 {
            l.admit(&tenant("a"), u64::MAX / 2000, u64::MAX / 2000, t0)
                .unwrap();
        }
    }

    #[test]
    fn new_series_over_the_tenant_limit_are_dropped_and_old_ones_kept() {
        let l = limiter(IngestLimits {
            max_active_series: 2,
            active_series_window: Duration::from_secs(60),
            ..IngestLimits::default()
        });
        let a = tenant("a");
        let t0 = Instant::now();
        let mut rejected = Rejected::default();
        let kept = l
            .filter_series(
                &a,
                points(&[("m", 1), ("m", 2), ("m", 3), ("m", 1)]),
                &mut rejected,
                t0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(series_of(&kept), vec![1, 2, 1]);
        assert_eq!(rejected.count, 1);
        assert!(
            rejected
                .first_reason
                .as_deref()
                .unwrap()
                .contains("limit of 2 active metric series")
        );
        // Another tenant is unaffected.
        let mut other = Rejected::default();
        let kept = l
            .filter_series(&tenant("b"), points(&[("m", 3)]), &mut other, t0)
            .unwrap()
            .unwrap();
        assert_eq!((series_of(&kept), other.count), (vec![3], 0));
        // Once series 2 has been idle for the window, a new series takes its place.
        let later = t0 + Duration::from_secs(61);
        let mut rejected = Rejected::default();
        let kept = l
            .filter_series(&a, points(&[("m", 3)]), &mut rejected, later)
            .unwrap()
            .unwrap();
        assert_eq!((series_of(&kept), rejected.count), (vec![3], 0));
        assert_eq!(l.usage(&a).active_series, 1);
    }

    #[test]
    fn the_per_metric_limit_bounds_one_metrics_cardinality() {
        let l = limiter(IngestLimits {
            max_series_per_metric: 1,
            ..IngestLimits::default()
        });
        let a = tenant("a");
        let mut rejected = Rejected::default();
        let kept = l
            .filter_series(
                &a,
                points(&[("m", 1), ("m", 2), ("n", 3)]),
                &mut rejected,
                Instant::now(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(series_of(&kept), vec![1, 3]);
        assert!(rejected.first_reason.unwrap().contains("metric \"m\""));
        // Every point refused: nothing to store.
        let mut rejected = Rejected::default();
        assert!(
            l.filter_series(&a, points(&[("m", 9)]), &mut rejected, Instant::now())
                .unwrap()
                .is_none()
        );
    }
}
