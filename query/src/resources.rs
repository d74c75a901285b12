//! Reading `resource_attributes` from files that store each resource once, and the file
//! layout adapter.
//!
//! A Parquet file holds a `resource` column (an index) and its resources in its metadata
//! (`strata_storage::resources`). When a scan opens such a file, DataFusion adapts the
//! scan's expressions to the file's schema through [`FileLayoutAdapterFactory`]: every
//! reference to `resource_attributes` — in the projection and in pushed-down filters —
//! becomes [`ResourceAttributes`] over the `resource` column, which takes each row's map
//! from the file's resources, and an expression of that column alone becomes
//! [`PerResource`], answered once per resource; in a logs file that stores lines by field,
//! every reference to `body` becomes [`crate::lines::Lines`]. Files that carry the columns
//! are read as they are. The write buffer's batches hold each request's resources once too:
//! [`ResourceFilters`] answers filters of them per resource before their rows are read.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, MapArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, UInt32Type};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::{ColumnarValue, Expr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, DynamicFilterPhysicalExpr, LikeExpr};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use parking_lot::Mutex;
use strata_storage::resources::{
    RESOURCE_ATTRIBUTES, RESOURCE_COLUMN, RESOURCES_ID_KEY, RESOURCES_KEY, missing_resources,
    parse, take,
};
use strata_storage::schema::attributes_type;

/// The scan schema of a table's files: the table's columns, then `resource` and, for a
/// table with `body`, the line columns (absent from older files, read as null there and
/// never used).
pub fn scan_schema(table: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<FieldRef> = table.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        RESOURCE_COLUMN,
        DataType::UInt32,
        true,
    )));
    if table.index_of(strata_storage::lines::BODY).is_ok() {
        fields.extend(strata_storage::lines::line_fields().iter().cloned());
    }
    Arc::new(Schema::new_with_metadata(fields, table.metadata().clone()))
}

/// Adapts a scan's expressions to each file: DataFusion's default adapter, after
/// `resource_attributes` is rewritten for files in the resource layout and `body` for files
/// that store lines by field.
#[derive(Debug, Default)]
pub struct FileLayoutAdapterFactory;

impl PhysicalExprAdapterFactory for FileLayoutAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let resources = (physical_file_schema.index_of(RESOURCE_COLUMN).is_ok()
            && physical_file_schema.index_of(RESOURCE_ATTRIBUTES).is_err())
        .then(|| Arc::new(FileResources::of(&physical_file_schema)));
        let lines = crate::lines::stores_lines(&physical_file_schema);
        let inner = DefaultPhysicalExprAdapterFactory
            .create(logical_file_schema.clone(), physical_file_schema)?;
        Ok(Arc::new(FileLayoutAdapter {
            inner,
            logical_file_schema,
            resources,
            lines,
        }))
    }
}

#[derive(Debug)]
struct FileLayoutAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    logical_file_schema: SchemaRef,
    /// The file's resources, when it stores them once.
    resources: Option<Arc<FileResources>>,
    /// Whether the file stores lines by field.
    lines: bool,
}

impl PhysicalExprAdapter for FileLayoutAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let expr = if self.resources.is_some() || self.lines {
            // Top down, so that a search of `body` is seen before its column; a rewritten
            // node's children are not visited again.
            let done =
                |e: Arc<dyn PhysicalExpr>| Transformed::new(e, true, TreeNodeRecursion::Jump);
            expr.transform_down(|e| {
                if self.lines
                    && let Some(like) = e.downcast_ref::<LikeExpr>()
                    && let Some(search) =
                        crate::lines::LinesContaining::of(like, &self.logical_file_schema)?
                {
                    return Ok(done(search));
                }
                if let Some(resources) = &self.resources
                    && let Some(per_resource) =
                        PerResource::of(&e, resources, &self.logical_file_schema)?
                {
                    return Ok(done(per_resource));
                }
                let Some(column) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                match (column.name(), &self.resources) {
                    (RESOURCE_ATTRIBUTES, Some(resources)) => {
                        let id =
                            Column::new_with_schema(RESOURCE_COLUMN, &self.logical_file_schema)?;
                        Ok(done(Arc::new(ResourceAttributes {
                            id: Arc::new(id),
                            resources: resources.clone(),
                        })))
                    }
                    (strata_storage::lines::BODY, _) if self.lines => Ok(done(Arc::new(
                        crate::lines::Lines::over(&self.logical_file_schema)?,
                    ))),
                    _ => Ok(Transformed::no(e)),
                }
            })
            .data()?
        } else {
            expr
        };
        self.inner.rewrite(expr)
    }
}

/// A file's resources, parsed from its metadata on first use.
#[derive(Debug)]
struct FileResources {
    /// The file's resources id (`strata.resources.id`); resources without one are parsed
    /// each time, not kept.
    id: Option<String>,
    /// The file's schema, whose metadata holds its resources.
    schema: SchemaRef,
}

/// Parsed resources of recently read files, by id, up to [`PARSED_BYTES`].
static PARSED: LazyLock<Mutex<Parsed>> = LazyLock::new(Default::default);

/// Bytes held, and each file's resources by id.
#[derive(Default)]
struct Parsed {
    bytes: usize,
    by_id: HashMap<String, Arc<MapArray>>,
}

/// Bound of [`PARSED`], in bytes of map arrays; reaching it starts the cache afresh.
const PARSED_BYTES: usize = 64 * 1024 * 1024;

impl FileResources {
    fn of(physical_file_schema: &SchemaRef) -> Self {
        Self {
            id: physical_file_schema
                .metadata()
                .get(RESOURCES_ID_KEY)
                .cloned(),
            schema: physical_file_schema.clone(),
        }
    }

    /// Each row's map, by its `resource` (`ids`).
    fn take(&self, ids: &ArrayRef) -> Result<ArrayRef> {
        take(self.get()?.as_ref(), ids.as_ref()).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn get(&self) -> Result<Arc<MapArray>> {
        if let Some(id) = &self.id
            && let Some(parsed) = PARSED.lock().by_id.get(id)
        {
            return Ok(parsed.clone());
        }
        let json = self
            .schema
            .metadata()
            .get(RESOURCES_KEY)
            .ok_or_else(|| DataFusionError::External(Box::new(missing_resources())))?;
        let parsed = Arc::new(parse(json).map_err(|e| DataFusionError::External(Box::new(e)))?);
        if let Some(id) = &self.id {
            let size = parsed.get_array_memory_size();
            let mut cache = PARSED.lock();
            if cache.bytes + size > PARSED_BYTES {
                *cache = Parsed::default();
            }
            cache.bytes += size;
            cache.by_id.insert(id.clone(), parsed.clone());
        }
        Ok(parsed)
    }
}

/// The one child of an expression over `resource` (`what` it is, for the error).
fn only_child(children: Vec<Arc<dyn PhysicalExpr>>, what: &str) -> Result<Arc<dyn PhysicalExpr>> {
    let [id] = <[_; 1]>::try_from(children)
        .map_err(|_| DataFusionError::Internal(format!("{what} has one child")))?;
    Ok(id)
}

/// `resource_attributes` of a file in the resource layout: its resources taken by each
/// row's `resource`.
#[derive(Debug)]
pub struct ResourceAttributes {
    id: Arc<dyn PhysicalExpr>,
    resources: Arc<FileResources>,
}

impl PartialEq for ResourceAttributes {
    fn eq(&self, other: &Self) -> bool {
        self.id.eq(&other.id) && Arc::ptr_eq(&self.resources, &other.resources)
    }
}

impl Eq for ResourceAttributes {}

impl Hash for ResourceAttributes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        Arc::as_ptr(&self.resources).hash(state);
    }
}

impl fmt::Display for ResourceAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{RESOURCE_ATTRIBUTES}({})", self.id)
    }
}

impl PhysicalExpr for ResourceAttributes {
    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            RESOURCE_ATTRIBUTES,
            attributes_type(),
            false,
        )))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let ids = self.id.evaluate(batch)?.into_array(batch.num_rows())?;
        Ok(ColumnarValue::Array(self.resources.take(&ids)?))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.id]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Self {
            id: only_child(children, RESOURCE_ATTRIBUTES)?,
            resources: self.resources.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RESOURCE_ATTRIBUTES)
    }
}

/// An expression of `resource_attributes` alone (`resource_attributes['host']`, a filter of
/// it) in a file that stores its resources once: evaluated on the file's resources once, each
/// row then taking its resource's answer, instead of every row's map being built and the
/// expression evaluated on each.
///
/// Only deterministic expressions are answered so (the answer for a map is then the same on
/// every row that carries it), and none that holds a dynamic filter (whose expression changes
/// while the scan runs). Should the expression fail on some resource — which the rows of a
/// batch may not carry, or a filter evaluated before it may have removed — the batch's rows are
/// answered one by one, as they would be without this.
#[derive(Debug)]
pub struct PerResource {
    /// The expression, as the scan has it.
    expr: Arc<dyn PhysicalExpr>,
    /// The expression over a batch of one column: `resource_attributes`.
    over_maps: Arc<dyn PhysicalExpr>,
    field: FieldRef,
    id: Arc<dyn PhysicalExpr>,
    resources: Arc<FileResources>,
    /// The expression's answer for each of the file's resources, once evaluated (`None`:
    /// it failed on some resource, and rows are answered one by one).
    answers: std::sync::OnceLock<Option<ArrayRef>>,
}

/// The schema expressions of resource attribute maps alone are evaluated over
/// ([`PerResource`], [`ResourceFilters`]): `resource_attributes`, nullable, for maps that
/// hold a null.
static MAPS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![Field::new(
        RESOURCE_ATTRIBUTES,
        attributes_type(),
        true,
    )]))
});

/// `expr` (over [`MAPS_SCHEMA`]) evaluated on `maps`, one answer per map.
fn evaluate_over_maps(expr: &Arc<dyn PhysicalExpr>, maps: ArrayRef) -> Result<ArrayRef> {
    let rows = maps.len();
    let batch = RecordBatch::try_new(MAPS_SCHEMA.clone(), vec![maps])?;
    expr.evaluate(&batch)?.into_array(rows)
}

impl PerResource {
    /// `expr` answered per resource, when it reads `resource_attributes` and nothing else,
    /// is more than the column itself, and may be; `None` otherwise.
    fn of(
        expr: &Arc<dyn PhysicalExpr>,
        resources: &Arc<FileResources>,
        logical_file_schema: &SchemaRef,
    ) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        if expr.downcast_ref::<Column>().is_some() || is_volatile(expr) {
            return Ok(None);
        }
        let columns = collect_columns(expr);
        if columns.is_empty() || columns.iter().any(|c| c.name() != RESOURCE_ATTRIBUTES) {
            return Ok(None);
        }
        let mut dynamic = false;
        expr.apply(|e| {
            dynamic |= e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some();
            Ok(if dynamic {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        if dynamic {
            return Ok(None);
        }
        let over_maps = expr
            .clone()
            .transform(|e| match e.downcast_ref::<Column>() {
                Some(_) => Ok(Transformed::yes(
                    Arc::new(Column::new(RESOURCE_ATTRIBUTES, 0)) as Arc<dyn PhysicalExpr>,
                )),
                None => Ok(Transformed::no(e)),
            })
            .data()?;
        let id = Column::new_with_schema(RESOURCE_COLUMN, logical_file_schema)?;
        Ok(Some(Arc::new(Self {
            field: expr.return_field(logical_file_schema)?,
            expr: expr.clone(),
            over_maps,
            id: Arc::new(id),
            resources: resources.clone(),
            answers: Default::default(),
        })))
    }

    /// The answer for each of the file's resources; `None` when the expression fails on
    /// some resource.
    fn answers(&self) -> Option<ArrayRef> {
        self.answers
            .get_or_init(|| {
                let resources: ArrayRef = self.resources.get().ok()?;
                evaluate_over_maps(&self.over_maps, resources).ok()
            })
            .clone()
    }
}

impl PartialEq for PerResource {
    fn eq(&self, other: &Self) -> bool {
        self.expr.eq(&other.expr)
            && self.id.eq(&other.id)
            && Arc::ptr_eq(&self.resources, &other.resources)
    }
}

impl Eq for PerResource {}

impl Hash for PerResource {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.expr.hash(state);
        self.id.hash(state);
        Arc::as_ptr(&self.resources).hash(state);
    }
}

impl fmt::Display for PerResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "per_resource({}, {})", self.expr, self.id)
    }
}

impl PhysicalExpr for PerResource {
    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(self.field.clone())
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let ids = self.id.evaluate(batch)?.into_array(batch.num_rows())?;
        let answers = match self.answers() {
            Some(answers) => take(answers.as_ref(), ids.as_ref())
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            None => evaluate_over_maps(&self.over_maps, self.resources.take(&ids)?)?,
        };
        Ok(ColumnarValue::Array(answers))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.id]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Self {
            expr: self.expr.clone(),
            over_maps: self.over_maps.clone(),
            field: self.field.clone(),
            id: only_child(children, "an expression answered per resource")?,
            resources: self.resources.clone(),
            answers: Default::default(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt_sql(f)
    }
}

/// The filters of a scan that read nothing but `resource_attributes`, applied to the write
/// buffer's batches before their maps are put back on every row.
///
/// A buffered batch holds `resource_attributes` as a dictionary: its request's distinct maps
/// and each row's key (`strata_storage::resources::to_table`). A deterministic filter of
/// that column alone gives every row of one map the same answer, so it is evaluated once
/// per map and rows are kept by their key; only the kept rows' maps are then copied. The
/// filters stay in the plan (pushed down as inexact), so DataFusion still applies them to
/// the rows this keeps.
#[derive(Debug, Default)]
pub struct ResourceFilters {
    /// Each over [`MAPS_SCHEMA`].
    filters: Vec<Arc<dyn PhysicalExpr>>,
}

impl ResourceFilters {
    /// The filters among `filters` (a scan's, over `table`) that read only
    /// `resource_attributes` and can be evaluated on their own; none when `table` has no
    /// such column.
    pub fn new(state: &dyn Session, table: &SchemaRef, filters: &[Expr]) -> Self {
        if table.index_of(RESOURCE_ATTRIBUTES).is_err() {
            return Self::default();
        }
        let Ok(df_schema) = DFSchema::try_from(MAPS_SCHEMA.as_ref().clone()) else {
            return Self::default();
        };
        let filters = filters
            .iter()
            .filter(|filter| {
                let columns = filter.column_refs();
                !filter.is_volatile()
                    && !columns.is_empty()
                    && columns.iter().all(|c| c.name == RESOURCE_ATTRIBUTES)
            })
            // Filters that do not plan on their own (placeholders, subqueries) are left to
            // DataFusion.
            .filter_map(|filter| {
                state
                    .create_physical_expr(unnormalize_col(filter.clone()), &df_schema)
                    .ok()
            })
            .collect();
        Self { filters }
    }

    /// Whether there is any filter to apply.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The rows of `batch` (buffered rows, any projection) whose resource every filter
    /// accepts; `None` when no row is left. Batches without the dictionary column, and any
    /// filter that fails on the maps, keep their rows: DataFusion applies the filters (and
    /// reports their errors) on the rows themselves.
    pub fn select(&self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let dictionary = match batch.column_by_name(RESOURCE_ATTRIBUTES) {
            Some(column) if !self.filters.is_empty() => {
                match column.as_dictionary_opt::<UInt32Type>() {
                    Some(dictionary) => dictionary.clone(),
                    None => return Ok(Some(batch)),
                }
            }
            _ => return Ok(Some(batch)),
        };
        let maps = dictionary.values();
        let mut accepted = vec![true; maps.len()];
        for filter in &self.filters {
            let Ok(answer) = evaluate_over_maps(filter, maps.clone()) else {
                return Ok(Some(batch));
            };
            let Some(answer) = answer.as_boolean_opt() else {
                return Ok(Some(batch));
            };
            // A null answer rejects the row, as it does in a WHERE clause.
            for (accepted, i) in accepted.iter_mut().zip(0..) {
                *accepted &= answer.is_valid(i) && answer.value(i);
            }
        }
        if accepted.iter().all(|&a| a) {
            return Ok(Some(batch));
        }
        if !accepted.iter().any(|&a| a) && dictionary.keys().null_count() == 0 {
            return Ok(None);
        }
        // A row without a key (never written by conversion) is kept for DataFusion to judge.
        let keep: BooleanArray = dictionary
            .keys()
            .iter()
            .map(|key| Some(key.is_none_or(|k| accepted.get(k as usize).copied().unwrap_or(true))))
            .collect();
        let selected = filter_record_batch(&batch, &keep)?;
        Ok((selected.num_rows() > 0).then_some(selected))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, UInt32Array};
    use datafusion::prelude::SessionContext;
    use strata_storage::Signal;
    use strata_storage::schema::schema_for;

    use super::*;

    /// One request's points as the write buffer holds them: three resources (hosts `a` and
    /// `b`, and one without a host), two points each, values 0–5 in resource order.
    fn buffered() -> RecordBatch {
        let resource = |attributes: &str, first: usize| {
            let points: Vec<String> = (first..first + 2)
                .map(|v| format!(r#"{{"timeUnixNano":"{}","asDouble":{v}}}"#, 1_000 + v))
                .collect();
            format!(
                r#"{{"resource":{{"attributes":[{attributes}]}},"scopeMetrics":[{{"metrics":[{{"name":"m","gauge":{{"dataPoints":[{}]}}}}]}}]}}"#,
                points.join(",")
            )
        };
        let host = |h: &str| format!(r#"{{"key":"host","value":{{"stringValue":"{h}"}}}}"#);
        let json = format!(
            r#"{{"resourceMetrics":[{},{},{}]}}"#,
            resource(&host("a"), 0),
            resource(&host("b"), 2),
            resource("", 4)
        );
        let request = strata_proto::json::decode_metrics(json.as_bytes()).unwrap();
        let batch = strata_ingest::convert::metrics_to_batch(&request)
            .batch
            .unwrap();
        let column = batch.column_by_name(RESOURCE_ATTRIBUTES).unwrap();
        assert_eq!(column.as_dictionary::<UInt32Type>().values().len(), 3);
        batch
    }

    /// The filters of `sql` (a WHERE clause over `metrics`, split at its ANDs) that
    /// [`ResourceFilters`] takes.
    fn filters(sql: &str) -> ResourceFilters {
        let ctx = SessionContext::new();
        let table = schema_for(Signal::Metrics);
        let schema = DFSchema::try_from_qualified_schema("metrics", &table).unwrap();
        let filter = ctx.parse_sql_expr(sql, &schema).unwrap();
        let filters = datafusion::logical_expr::utils::split_conjunction_owned(filter);
        ResourceFilters::new(&ctx.state(), &table, &filters)
    }

    /// The values of the rows `sql` keeps, or `None` when it keeps no batch.
    fn kept(sql: &str) -> Option<Vec<f64>> {
        let batch = filters(sql).select(buffered()).unwrap()?;
        let values = batch.column_by_name("value").unwrap();
        let values: &Float64Array = values.as_primitive();
        Some(values.values().to_vec())
    }

    /// A file's resources: host `1`, then host `x`.
    fn file_resources() -> Arc<FileResources> {
        let metadata = HashMap::from([(
            RESOURCES_KEY.to_string(),
            r#"[[["host","1"]],[["host","x"]]]"#.to_string(),
        )]);
        let schema = Schema::new_with_metadata(
            vec![Field::new(RESOURCE_COLUMN, DataType::UInt32, false)],
            metadata,
        );
        Arc::new(FileResources::of(&Arc::new(schema)))
    }

    /// `sql` (over a metrics file) answered per resource, reading a batch of one column, the
    /// rows' `resource`; `None` when it is not answered so.
    fn per_resource(sql: &str) -> Option<Arc<dyn PhysicalExpr>> {
        let ctx = SessionContext::new();
        let logical = scan_schema(&schema_for(Signal::Metrics));
        let df_schema = DFSchema::try_from(logical.as_ref().clone()).unwrap();
        let expr = ctx.parse_sql_expr(sql, &df_schema).unwrap();
        let expr = ctx.create_physical_expr(expr, &df_schema).unwrap();
        let expr = PerResource::of(&expr, &file_resources(), &logical).unwrap()?;
        Some(
            expr.with_new_children(vec![Arc::new(Column::new(RESOURCE_COLUMN, 0))])
                .unwrap(),
        )
    }

    fn evaluate(expr: &Arc<dyn PhysicalExpr>, ids: Vec<u32>) -> Result<ArrayRef> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            RESOURCE_COLUMN,
            DataType::UInt32,
            false,
        )]));
        let rows = ids.len();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(UInt32Array::from(ids))]).unwrap();
        expr.evaluate(&batch)?.into_array(rows)
    }

    #[test]
    fn expressions_of_resources_alone_are_answered_per_resource() {
        let upper = per_resource("upper(resource_attributes['host'])").unwrap();
        let answers = evaluate(&upper, vec![1, 0, 1]).unwrap();
        let answers: Vec<_> = answers.as_string::<i32>().iter().flatten().collect();
        assert_eq!(answers, ["X", "1", "X"]);
        let filter = per_resource("resource_attributes['host'] = 'x'").unwrap();
        let answers = evaluate(&filter, vec![0, 1, 1]).unwrap();
        let answers: Vec<_> = answers.as_boolean().iter().flatten().collect();
        assert_eq!(answers, [false, true, true]);
        // An index past the file's resources is an error, not a panic.
        assert!(evaluate(&upper, vec![0, 2]).is_err());
    }

    #[test]
    fn an_expression_that_fails_on_a_resource_fails_only_on_its_rows() {
        // Host `x` is no number: rows of host `1` alone are answered row by row.
        let cast = per_resource("CAST(resource_attributes['host'] AS BIGINT) + 1").unwrap();
        let answers = evaluate(&cast, vec![0, 0]).unwrap();
        let answers: &arrow::array::Int64Array = answers.as_primitive();
        assert_eq!(answers.values().as_ref(), [2, 2]);
        assert!(evaluate(&cast, vec![0, 1]).is_err());
    }

    #[test]
    fn other_expressions_are_left_to_the_rows() {
        for sql in [
            "resource_attributes",
            "resource_attributes['host'] = metric_name",
            "random() < 0.5 OR resource_attributes['host'] = 'x'",
            "metric_name = 'm'",
        ] {
            assert!(per_resource(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn rows_are_kept_by_their_resources_answer() {
        assert_eq!(
            kept("resource_attributes['host'] = 'a'"),
            Some(vec![0.0, 1.0])
        );
        assert_eq!(
            kept("metrics.resource_attributes['host'] IN ('b', 'c')"),
            Some(vec![2.0, 3.0])
        );
        assert_eq!(
            kept("resource_attributes['host'] IS NULL"),
            Some(vec![4.0, 5.0])
        );
        // A null answer (no host) rejects the row, as WHERE does.
        assert_eq!(
            kept("resource_attributes['host'] <> 'a'"),
            Some(vec![2.0, 3.0])
        );
        assert_eq!(
            kept(
                "NOT (resource_attributes['host'] = 'b') AND resource_attributes['host'] LIKE '%'"
            ),
            Some(vec![0.0, 1.0])
        );
        // Two filters, each answered per resource.
        assert_eq!(
            kept("resource_attributes['host'] = 'a' AND resource_attributes['host'] = 'b'"),
            None
        );
        assert_eq!(kept("resource_attributes['host'] = 'nowhere'"), None);
    }

    #[test]
    fn batches_every_resource_passes_are_kept_whole() {
        let all = filters("cardinality(resource_attributes) < 5");
        assert!(!all.is_empty());
        let batch = buffered();
        let kept = all.select(batch.clone()).unwrap().unwrap();
        assert_eq!(kept.num_rows(), 6);
        assert_eq!(kept, batch);
    }

    #[test]
    fn only_deterministic_filters_of_resources_alone_are_taken() {
        for sql in [
            "metric_name = 'm'",
            "resource_attributes['host'] = 'a' OR value > 4",
            "resource_attributes['host'] = 'a' AND random() < 2",
            "resource_attributes['host'] = 'a' OR random() < 2",
            "attributes['host'] = 'a'",
        ] {
            let filters = filters(sql);
            let taken = filters.filters.len();
            let expected = usize::from(sql.contains(" AND "));
            assert_eq!(taken, expected, "{sql}");
        }
        // What is not taken keeps every row for DataFusion to judge.
        assert_eq!(kept("metric_name = 'nothing'").map(|v| v.len()), Some(6));
    }

    #[test]
    fn rows_in_the_table_layout_and_projections_without_the_column_pass() {
        let filters = filters("resource_attributes['host'] = 'a'");
        let batch = buffered();
        let value = batch.schema().index_of("value").unwrap();
        let projected = batch.project(&[value]).unwrap();
        assert_eq!(
            filters.select(projected.clone()).unwrap().unwrap(),
            projected
        );
        let table = strata_storage::resources::to_table(&batch).unwrap();
        assert_eq!(filters.select(table.clone()).unwrap().unwrap(), table);
    }

    #[test]
    fn a_filter_that_fails_on_the_maps_keeps_the_rows() {
        // Casting a host to a number fails; DataFusion reports it on the rows themselves.
        let filters = filters("CAST(resource_attributes['host'] AS INT) = 1");
        assert!(!filters.is_empty());
        let kept = filters.select(buffered()).unwrap().unwrap();
        assert_eq!(kept.num_rows(), 6);
    }
}
