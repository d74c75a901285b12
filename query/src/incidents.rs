//! The `incidents` table: one tenant's incidents (the alerter's `incident` documents in the
//! catalog, `strata_alert::incident::Incident`) as SQL, in every session of the tenant.
//!
//! Each scan reads the tenant's incident documents and serves them from memory: the alerter
//! keeps open incidents and those resolved in the last 7 days, a handful per day. The table is
//! read-only like `alerts`. Columns are listed in docs/SCHEMA.md; the documents' fields they
//! come from are named below.

use std::fmt;
use std::sync::Arc;

use crate::catalog_table::CatalogRows;
use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use serde_json::Value;
use strata_storage::docs::{Doc, DocStore};
use strata_storage::schema::UTC;
use strata_storage::{TenantId, TimeRange};

/// The table's name in a tenant's session.
pub const INCIDENTS_TABLE: &str = "incidents";
/// The kind of the alerter's incident documents.
pub const INCIDENT_DOC_KIND: &str = "incident";

/// The columns of `incidents` (docs/SCHEMA.md).
pub fn incidents_schema() -> SchemaRef {
    let time = |name: &str, nullable: bool| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
            nullable,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        time("opened_at", false),
        time("acknowledged_at", true),
        Field::new("acknowledged_by", DataType::Utf8, true),
        time("resolved_at", true),
        Field::new("resolved_by", DataType::Utf8, true),
        Field::new("root_cause", DataType::Utf8, true),
        Field::new(
            "services",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("alert_count", DataType::Int64, false),
        Field::new("group_key", DataType::Utf8, false),
    ]))
}

/// One tenant's incidents.
pub struct IncidentsTable {
    store: Arc<dyn DocStore>,
    tenant: TenantId,
    schema: SchemaRef,
}

impl fmt::Debug for IncidentsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncidentsTable")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl IncidentsTable {
    /// `tenant`'s incidents of `store`, and only those.
    pub fn new(store: Arc<dyn DocStore>, tenant: TenantId) -> Self {
        Self {
            store,
            tenant,
            schema: incidents_schema(),
        }
    }
}

/// The documents as a batch of [`incidents_schema`]; a document that does not parse is an
/// error naming it (never a silently missing row).
pub fn incidents_batch(docs: &[Doc]) -> Result<RecordBatch> {
    let parsed: Vec<Value> = (docs.iter())
        .map(|d| {
            serde_json::from_str(&d.body).map_err(|e| {
                DataFusionError::Execution(format!("incident document {:?}: {e}", d.id))
            })
        })
        .collect::<Result<_>>()?;
    let text = |key: &str| -> ArrayRef {
        Arc::new(
            (parsed.iter())
                .map(|v| v.get(key).and_then(Value::as_str).map(str::to_string))
                .collect::<StringArray>(),
        )
    };
    let required_text = |key: &str| -> ArrayRef {
        Arc::new(
            (parsed.iter())
                .map(|v| Some(v.get(key).and_then(Value::as_str).unwrap_or_default()))
                .collect::<StringArray>(),
        )
    };
    let time = |key: &str| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from(
                (parsed.iter())
                    .map(|v| v.get(key).and_then(Value::as_i64))
                    .collect::<Vec<_>>(),
            )
            .with_timezone(UTC),
        )
    };
    let mut services = ListBuilder::new(StringBuilder::new());
    for v in &parsed {
        for s in (v.get("services").and_then(Value::as_array))
            .into_iter()
            .flatten()
        {
            services.values().append_option(s.as_str());
        }
        services.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        required_text("id"),
        required_text("title"),
        required_text("status"),
        Arc::new(
            TimestampNanosecondArray::from(
                (parsed.iter())
                    .map(|v| v.get("opened_at").and_then(Value::as_i64).unwrap_or(0))
                    .collect::<Vec<_>>(),
            )
            .with_timezone(UTC),
        ),
        time("acknowledged_at"),
        text("acknowledged_by"),
        time("resolved_at"),
        text("resolved_by"),
        text("root_cause"),
        Arc::new(services.finish()),
        Arc::new(
            (parsed.iter())
                .map(|v| {
                    v.get("alerts")
                        .and_then(Value::as_object)
                        .map_or(0, |a| a.len() as i64)
                })
                .collect::<Int64Array>(),
        ),
        required_text("group_key"),
    ];
    Ok(RecordBatch::try_new(incidents_schema(), columns)?)
}

#[async_trait]
impl CatalogRows for IncidentsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn has_time(&self) -> bool {
        false
    }

    async fn rows(&self, _range: TimeRange, limit: Option<usize>) -> Result<RecordBatch> {
        let mut docs = (self
            .store
            .list_docs(Some(&self.tenant), INCIDENT_DOC_KIND)
            .await)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        debug_assert!(docs.iter().all(|d| d.tenant == self.tenant));
        docs.truncate(limit.unwrap_or(usize::MAX));
        incidents_batch(&docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, body: &str) -> Doc {
        Doc {
            tenant: TenantId::new("t").unwrap(),
            kind: INCIDENT_DOC_KIND.into(),
            id: id.into(),
            body: body.into(),
            updated_at: 0,
        }
    }

    #[test]
    fn documents_become_rows() {
        let body = r#"{"id":"i1","title":"HighErrorRate on payments","status":"acknowledged",
            "services":["checkout","payments"],"alerts":{"00000000000000aa":{},"00000000000000bb":{}},
            "root_cause":"payments","group_key":"{}:{alertname=\"X\"}","opened_at":10,
            "last_join_at":10,"acknowledged_at":20,"acknowledged_by":"k1","resolved_at":null,
            "resolved_by":null,"escalation":null,"timeline":[]}"#;
        let batch = incidents_batch(&[doc("i1", body)]).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(
            text.contains("| i1 | HighErrorRate on payments | acknowledged |"),
            "{text}"
        );
        assert!(text.contains("[checkout, payments]"), "{text}");
        assert!(text.contains("| 2           |"), "{text}");
        let e = incidents_batch(&[doc("bad", "{")]).unwrap_err();
        assert!(e.to_string().contains("\"bad\""), "{e}");
    }
}
