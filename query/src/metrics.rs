//! Self-metrics of the query engine. Labels carry only validated tenant ids and fixed values.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use strata_storage::TenantId;

use crate::error::QueryError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QueryLabels {
    tenant: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantLabel {
    tenant: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms … ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Query counts by outcome and query durations, per tenant.
#[derive(Debug, Clone)]
pub struct QueryMetrics {
    queries: Family<QueryLabels, Counter>,
    durations: Family<TenantLabel, Histogram>,
}

impl Default for QueryMetrics {
    fn default() -> Self {
        Self {
            queries: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
        }
    }
}

impl QueryMetrics {
    /// Registers `strata_query_queries_total` and `strata_query_duration_seconds`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("strata_query");
        r.register(
            "queries",
            "SQL queries by tenant and outcome (ok, user, resources_exhausted, internal)",
            self.queries.clone(),
        );
        r.register_with_unit(
            "duration",
            "Time to plan and run a SQL query",
            prometheus_client::registry::Unit::Seconds,
            self.durations.clone(),
        );
    }

    pub(crate) fn observe(&self, tenant: &TenantId, elapsed: Duration, error: Option<&QueryError>) {
        let outcome = error.map_or("ok", QueryError::kind);
        self.queries
            .get_or_create(&QueryLabels {
                tenant: tenant.to_string(),
                outcome,
            })
            .inc();
        self.durations
            .get_or_create(&TenantLabel {
                tenant: tenant.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}
