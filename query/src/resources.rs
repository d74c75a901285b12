//! Reading `resource_attributes` from files that store each resource once, and the file
//! layout adapter.
//!
//! A Parquet file holds a `resource` column (an index) and its resources in its metadata
//! (`strata_storage::resources`). When a scan opens such a file, DataFusion adapts the
//! scan's expressions to the file's schema through [`FileLayoutAdapterFactory`]: every
//! reference to `resource_attributes` — in the projection and in pushed-down filters —
//! becomes [`ResourceAttributes`] over the `resource` column, which takes each row's map
//! from the file's resources; in a logs file that stores lines by field, every reference to
//! `body` becomes [`crate::lines::Lines`]. Files that carry the columns, and the write
//! buffer, are read as they are.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, MapArray, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, LikeExpr};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
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
        let resources = self.resources.get()?;
        let maps =
            take(&resources, ids.as_ref()).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(maps))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.id]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let [id] = <[_; 1]>::try_from(children).map_err(|_| {
            DataFusionError::Internal(format!("{RESOURCE_ATTRIBUTES} has one child"))
        })?;
        Ok(Arc::new(Self {
            id,
            resources: self.resources.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RESOURCE_ATTRIBUTES)
    }
}
