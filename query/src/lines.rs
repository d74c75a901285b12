//! Reading `body` from files that store log lines by field.
//!
//! A logs file may store a line as its template and fields (`strata_storage::lines`), with
//! `body` null for it. When a scan opens such a file, the file layout adapter
//! ([`crate::resources::FileLayoutAdapterFactory`]) turns every reference to `body` — in the
//! projection and in pushed-down filters — into [`Lines`], which rebuilds each row's line
//! from `body` and the line columns, read as hidden columns after the table's.
//!
//! A search of `body` for a term (`body LIKE '%term%'`, the log explorer's and the
//! dashboards' filter) whose term no number field renders becomes [`LinesContaining`],
//! which answers from the template and text fields without rebuilding a line or reading the
//! number columns.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, LikeExpr, Literal, NotExpr};
use strata_storage::lines::{
    BODY, FIELDS, TEMPLATE_COLUMN, contains, line_fields, rebuild, searchable_without_numbers,
    text_column,
};

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
        let names = line_fields().iter().map(|f| f.name().as_str());
        Ok(Self {
            children: columns(std::iter::once(BODY).chain(names), schema)?,
        })
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
        let arrays = evaluate_all(&self.children, batch)?;
        let columns: Vec<&dyn Array> = arrays[1..].iter().map(|a| a.as_ref()).collect();
        let lines = rebuild(arrays[0].as_ref(), &columns).map_err(external)?;
        Ok(ColumnarValue::Array(Arc::new(lines)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.children.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        expect_children(&children, 1 + line_fields().len())?;
        Ok(Arc::new(Self { children }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BODY)
    }
}

/// Whether `body` of a file that stores lines by field contains a term: `body`, the template
/// and the text columns as its children.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LinesContaining {
    term: String,
    children: Vec<Arc<dyn PhysicalExpr>>,
}

impl LinesContaining {
    /// `like` over the columns of `schema` as a search for a term, if it is one that
    /// [`contains`] answers: `body LIKE '%term%'` or `NOT LIKE`, case-sensitive, with no
    /// wildcard or escape inside and no byte a number field renders.
    pub fn of(like: &LikeExpr, schema: &Schema) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        let is_body = like
            .expr()
            .downcast_ref::<Column>()
            .is_some_and(|c| c.name() == BODY);
        let pattern = like
            .pattern()
            .downcast_ref::<Literal>()
            .and_then(|l| match l.value() {
                ScalarValue::Utf8(Some(p))
                | ScalarValue::LargeUtf8(Some(p))
                | ScalarValue::Utf8View(Some(p)) => Some(p.as_str()),
                _ => None,
            });
        let Some(term) = pattern
            .filter(|_| is_body && !like.case_insensitive())
            .and_then(|p| p.strip_prefix('%'))
            .and_then(|p| p.strip_suffix('%'))
            .filter(|t| !t.contains(['%', '_', '\\']) && searchable_without_numbers(t))
        else {
            return Ok(None);
        };
        let names = [BODY, TEMPLATE_COLUMN]
            .into_iter()
            .chain((0..FIELDS).map(text_column));
        let search: Arc<dyn PhysicalExpr> = Arc::new(Self {
            term: term.to_string(),
            children: columns(names, schema)?,
        });
        Ok(Some(if like.negated() {
            Arc::new(NotExpr::new(search))
        } else {
            search
        }))
    }
}

impl fmt::Display for LinesContaining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BODY}(lines) LIKE %{}%", self.term)
    }
}

impl PhysicalExpr for LinesContaining {
    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            format!("{BODY} LIKE %{}%", self.term),
            DataType::Boolean,
            true,
        )))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let arrays = evaluate_all(&self.children, batch)?;
        let texts: Vec<&dyn Array> = arrays[2..].iter().map(|a| a.as_ref()).collect();
        let found = contains(&self.term, arrays[0].as_ref(), arrays[1].as_ref(), &texts)
            .map_err(external)?;
        Ok(ColumnarValue::Array(Arc::new(found)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.children.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        expect_children(&children, 2 + FIELDS)?;
        Ok(Arc::new(Self {
            term: self.term.clone(),
            children,
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BODY} LIKE '%{}%'", self.term.replace('\'', "''"))
    }
}

/// The columns `names` of `schema`, as expressions.
fn columns<'a>(
    names: impl Iterator<Item = &'a str>,
    schema: &Schema,
) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    names
        .map(|name| Ok(Arc::new(Column::new_with_schema(name, schema)?) as Arc<dyn PhysicalExpr>))
        .collect()
}

/// Each of `children` evaluated over `batch`, as an array.
fn evaluate_all(children: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    children
        .iter()
        .map(|c| c.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

fn expect_children(children: &[Arc<dyn PhysicalExpr>], expected: usize) -> Result<()> {
    if children.len() != expected {
        return Err(DataFusionError::Internal(format!(
            "an expression of {BODY}'s lines has {} children, not {expected}",
            children.len()
        )));
    }
    Ok(())
}

fn external(e: strata_storage::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use datafusion::physical_expr::expressions::lit;

    use super::*;

    fn search(pattern: &str, negated: bool, case_insensitive: bool) -> Option<String> {
        let schema = crate::resources::scan_schema(&strata_storage::schema::logs_schema());
        let body = Arc::new(Column::new_with_schema(BODY, &schema).unwrap());
        let like = LikeExpr::new(negated, case_insensitive, body, lit(pattern));
        LinesContaining::of(&like, &schema)
            .unwrap()
            .map(|e| e.to_string())
    }

    #[test]
    fn a_search_for_a_term_without_numbers_is_answered_from_the_fields() {
        assert_eq!(
            search("%timed out%", false, false).as_deref(),
            Some("body(lines) LIKE %timed out%")
        );
        assert_eq!(
            search("%GET /api/%", true, false).as_deref(),
            Some("NOT body(lines) LIKE %GET /api/%")
        );
        // Numbers, wildcards and escapes inside, anchored patterns and ILIKE are left to the
        // rebuilt line.
        for pattern in [
            "%200%", "%a.b%", "%a-b%", "%a_b%", "%a%b%", "%a\\%b%", "timed%", "%timed", "%",
        ] {
            assert_eq!(search(pattern, false, false), None, "{pattern}");
        }
        assert_eq!(search("%timed out%", false, true), None);
    }

    #[test]
    fn a_file_that_stores_lines_searches_them_and_rebuilds_the_rest() {
        use datafusion::physical_expr_adapter::PhysicalExprAdapterFactory;

        let table = strata_storage::schema::logs_schema();
        let scan = crate::resources::scan_schema(&table);
        let body = || Arc::new(Column::new_with_schema(BODY, &scan).unwrap());
        let rewrite = |physical: &SchemaRef, pattern: &str| {
            let adapter = crate::resources::FileLayoutAdapterFactory
                .create(scan.clone(), physical.clone())
                .unwrap();
            let like = Arc::new(LikeExpr::new(false, false, body(), lit(pattern)));
            adapter.rewrite(like).unwrap().to_string()
        };
        let split = strata_storage::lines::file_schema_of(&table);
        assert_eq!(
            rewrite(&split, "%timed out%"),
            "body(lines) LIKE %timed out%"
        );
        assert_eq!(rewrite(&split, "%500%"), "body(lines) LIKE %500%");
        // A file of the earlier layout has no line columns: `body` is read as it is.
        assert_eq!(rewrite(&table, "%timed out%"), "body@4 LIKE %timed out%");
    }
}
