//! The service graph: which service calls which, derived from the spans of a recent window.
//! The alerter correlates alerts on connected services into one incident
//! (docs/ALERTING.md, "Incidents").
//!
//! An edge `caller → callee` is a span whose parent span belongs to another service, both
//! started within the window. The query runs as the tenant, through the same engine and
//! limits as any query.

use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use strata_query::{QueryEngine, QueryError};
use strata_storage::TenantId;

/// The SQL of the service graph over the last `window`.
pub fn service_graph_sql(window: Duration) -> String {
    let secs = window.as_secs().max(1);
    format!(
        "SELECT DISTINCT parent.service_name AS caller, child.service_name AS callee \
         FROM spans AS child JOIN spans AS parent \
           ON child.trace_id = parent.trace_id AND child.parent_span_id = parent.span_id \
         WHERE child.time > now() - INTERVAL '{secs} seconds' \
           AND parent.time > now() - INTERVAL '{secs} seconds' \
           AND child.service_name <> parent.service_name \
         ORDER BY caller, callee"
    )
}

/// `tenant`'s caller → callee edges over the last `window`.
pub async fn service_graph(
    engine: &QueryEngine,
    tenant: &TenantId,
    window: Duration,
) -> Result<Vec<(String, String)>, QueryError> {
    let result = engine.sql(tenant, &service_graph_sql(window)).await?;
    let mut edges = Vec::new();
    for batch in &result.batches {
        let column = |i: usize| {
            cast(batch.column(i), &DataType::Utf8)
                .map_err(|e| QueryError::Internal(format!("service graph: {e}")))
        };
        let (callers, callees) = (column(0)?, column(1)?);
        let (callers, callees) = (callers.as_string::<i32>(), callees.as_string::<i32>());
        for row in 0..batch.num_rows() {
            if callers.is_valid(row) && callees.is_valid(row) {
                edges.push((
                    callers.value(row).to_string(),
                    callees.value(row).to_string(),
                ));
            }
        }
    }
    Ok(edges)
}
