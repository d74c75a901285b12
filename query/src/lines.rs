//! Reading `body` from files that store log lines by field.
//!
//! A logs file may store a line as its template and fields (`strata_storage::lines`), with
//! `body` null for it. When a scan opens such a file, the file layout adapter
//! ([`crate::resources::FileLayoutAdapterFactory`]) turns every reference to `body` — in the
//! projection and in pushed-down filters — into [`Lines`], which rebuilds each row's line
//! from `body` and the line columns, read as hidden columns after the table's.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use strata_storage::lines::{BODY, line_fields, rebuild};

/// Whether a file of `schema` stores lines by field.
pub fn stores_lines(schema: &SchemaRef) -> bool {
    schema
        .index_of(strata_storage::lines::TEMPLATE_COLUMN)
        .is_ok()
}

/// `body` of a file that stores lines by field: `body` and the line columns, in
/// [`line_fields`] order, as its children.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Lines {
    children: Vec<Arc<dyn PhysicalExpr>>,
}

impl Lines {
    /// `body` over the columns of `schema` (the scan's, where the line columns are hidden).
    pub fn over(schema: &Schema) -> Result<Self> {
        let mut children: Vec<Arc<dyn PhysicalExpr>> =
            vec![Arc::new(Column::new_with_schema(BODY, schema)?)];
        for field in line_fields() {
            children.push(Arc::new(Column::new_with_schema(field.name(), schema)?));
        }
        Ok(Self { children })
    }
}

impl fmt::Display for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BODY}(lines)")
    }
}

impl PhysicalExpr for Lines {
    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(BODY, DataType::Utf8, true)))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let arrays: Vec<ArrayRef> = self
            .children
            .iter()
            .map(|c| c.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<_>>()?;
        let columns: Vec<&dyn Array> = arrays[1..].iter().map(|a| a.as_ref()).collect();
        let lines = rebuild(arrays[0].as_ref(), &columns)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(lines)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.children.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        if children.len() != 1 + line_fields().len() {
            return Err(DataFusionError::Internal(format!(
                "{BODY} of lines has {} children",
                1 + line_fields().len()
            )));
        }
        Ok(Arc::new(Self { children }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BODY)
    }
}
