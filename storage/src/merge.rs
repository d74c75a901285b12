//! Streaming k-way merge of sorted Parquet files, the engine of compaction.
//!
//! Every file of a partition is already sorted by its signal's sort key, so merging them
//! needs only the head of each: each input is read a batch of [`INPUT_BATCH_ROWS`] rows at a
//! time, the smallest head row is taken next, and the merged rows are written out
//! [`OUTPUT_BATCH_ROWS`] at a time into a Parquet writer that uploads its row groups as they
//! complete (a multipart upload once the file outgrows one part). Memory is bounded by the
//! number of inputs, not their size: per input, one fetched row group (compressed) and one
//! decoded batch; for the output, one row group being encoded and one upload part.
//!
//! The merge runs on a blocking thread (decoding, comparing and encoding are CPU work) and
//! drives the object-store I/O from there with `Handle::block_on`. It checks a cancellation
//! flag between batches, so shutdown does not wait for a large merge; a cancelled merge
//! aborts its upload and changes nothing.

use std::cmp::Ordering as CmpOrdering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows, SortField};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, OBJECT_STORE_COALESCE_DEFAULT, ObjectStore, coalesce_ranges};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::runtime::Handle;

use crate::cache::BypassCache;
use crate::catalog::FileMeta;
use crate::parquet_file::{append_resources, with_backed_strings, writer_properties};
use crate::resources::{
    Numbering, RESOURCE_ATTRIBUTES, RESOURCE_COLUMN, Resource, decode, json_of, missing_resources,
};
use crate::schema::{TIME_COLUMN, file_schema_for, sort_columns};
use crate::{Error, Result, Signal};

/// Rows decoded per input at a time.
pub const INPUT_BATCH_ROWS: usize = 2048;
/// Merged rows handed to the Parquet writer at a time.
pub const OUTPUT_BATCH_ROWS: usize = 8192;
/// Size of one upload part of the merged file.
const UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedFile {
    pub rows: i64,
    pub min_time: i64,
    pub max_time: i64,
    pub size_bytes: i64,
}

/// Sets its flag when dropped: the owner of a merge going away (a cancelled compaction
/// pass) tells the blocking thread to stop.
#[derive(Debug, Default)]
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Where and how a merge writes its output.
#[derive(Debug, Clone)]
pub struct MergeOutput {
    pub path: Path,
    pub zstd_level: i32,
    /// Size of one upload part; the file is uploaded in one request when it fits in one.
    pub part_bytes: usize,
}

impl MergeOutput {
    pub fn new(path: Path, zstd_level: i32) -> Self {
        Self {
            path,
            zstd_level,
            part_bytes: UPLOAD_PART_BYTES,
        }
    }
}

/// Merges the sorted `inputs` (all of one signal) into one sorted Parquet object. Must be
/// called from a blocking thread of the runtime `handle`. Returns `Ok(None)` when the inputs
/// hold no rows (nothing is written).
pub fn merge_sorted_files(
    handle: &Handle,
    store: &Arc<dyn ObjectStore>,
    signal: Signal,
    inputs: &[FileMeta],
    out: &MergeOutput,
    cancel: &AtomicBool,
) -> Result<Option<MergedFile>> {
    let keys = sort_columns(signal);
    let mut cursors = Vec::with_capacity(inputs.len());
    // Inputs are merged in the file layout, their resources numbered anew.
    let file_schema = file_schema_for(signal);
    let mut resources = MergedResources::default();
    for file in inputs {
        let reader = ObjectFileReader {
            store: store.clone(),
            path: Path::from(file.path.as_str()),
            size: file.size_bytes as u64,
        };
        let (stream, metadata) = handle.block_on(async {
            let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
            let metadata = builder.metadata().clone();
            builder
                .with_batch_size(INPUT_BATCH_ROWS)
                .build()
                .map(|stream| (stream, metadata))
        })?;
        let layout = Layout::of(&stream, &metadata, &mut resources)?;
        if layout.file_schema(&stream, &file_schema).fields() != file_schema.fields() {
            return Err(Error::Schema {
                signal,
                reason: format!("{} does not have the schema of the table", file.path),
            });
        }
        cursors.push(Cursor {
            stream,
            layout,
            file_schema: file_schema.clone(),
            batch: None,
            rows: None,
            pos: 0,
            slot: 0,
        });
    }
    if cursors.is_empty() {
        return Ok(None);
    }
    let schema = file_schema;
    let key_indices: Vec<usize> = keys
        .iter()
        .map(|name| {
            schema.index_of(name).map_err(|_| Error::Schema {
                signal,
                reason: format!("missing column {name}"),
            })
        })
        .collect::<Result<_>>()?;
    let time_index = schema.index_of(TIME_COLUMN).map_err(|_| Error::Schema {
        signal,
        reason: "missing column time".into(),
    })?;
    let converter = RowConverter::new(
        key_indices
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;

    // The batches the pending output rows point into; each cursor's current batch is one.
    let mut slots: Vec<RecordBatch> = Vec::new();
    let mut active: Vec<usize> = Vec::with_capacity(cursors.len());
    for (i, cursor) in cursors.iter_mut().enumerate() {
        if cursor.advance_batch(handle, &converter, &key_indices, &mut slots, &mut resources)? {
            active.push(i);
        }
    }
    // `active` is kept sorted by each cursor's head row, ties by input order (stable).
    active.sort_by(|&a, &b| compare(&cursors, a, b));

    let writer = BufWriter::with_capacity(store.clone(), out.path.clone(), out.part_bytes);
    let mut writer = AsyncArrowWriter::try_new(
        writer,
        schema.clone(),
        Some(writer_properties(signal, out.zstd_level)),
    )?;
    let mut merged = MergedFile {
        rows: 0,
        min_time: i64::MAX,
        max_time: i64::MIN,
        size_bytes: 0,
    };
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(OUTPUT_BATCH_ROWS);
    let result = (|| -> Result<()> {
        loop {
            if let Some(&head) = active.first() {
                let cursor = &mut cursors[head];
                pending.push((cursor.slot, cursor.pos));
                cursor.pos += 1;
                if cursor.pos == cursor.len() {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::ShuttingDown);
                    }
                    if !cursor.advance_batch(
                        handle,
                        &converter,
                        &key_indices,
                        &mut slots,
                        &mut resources,
                    )? {
                        active.remove(0);
                    }
                }
                if active.first() == Some(&head) && active.len() > 1 {
                    // Move the head to its place among the others (they are still sorted).
                    let rest = &active[1..];
                    let at = rest.partition_point(|&other| compare(&cursors, other, head).is_lt());
                    if at > 0 {
                        active.copy_within(1..=at, 0);
                        active[at] = head;
                    }
                }
            }
            // A full output batch, or the last rows once every input is exhausted.
            if pending.len() == OUTPUT_BATCH_ROWS || active.is_empty() {
                emit(
                    handle,
                    &mut writer,
                    &mut slots,
                    &mut pending,
                    &mut cursors,
                    &active,
                    time_index,
                    &mut merged,
                )?;
                if active.is_empty() {
                    return Ok(());
                }
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::ShuttingDown);
                }
            }
        }
    })();
    match result {
        Ok(()) if merged.rows == 0 => {
            abort(handle, writer);
            Ok(None)
        }
        Ok(()) => {
            append_resources(&resources.json()?, |kv| {
                writer.append_key_value_metadata(kv)
            });
            handle.block_on(writer.finish())?;
            merged.size_bytes = writer.bytes_written() as i64;
            Ok(Some(merged))
        }
        Err(e) => {
            abort(handle, writer);
            Err(e)
        }
    }
}

/// A table's resources, each once, numbered in order of first appearance across a merge's
/// inputs.
#[derive(Default)]
struct MergedResources {
    table: Vec<Resource>,
    index: HashMap<Resource, u32>,
}

impl MergedResources {
    fn id_of(&mut self, resource: Resource) -> Result<u32> {
        if let Some(&id) = self.index.get(&resource) {
            return Ok(id);
        }
        let id = u32::try_from(self.table.len())
            .map_err(|_| Error::Io(std::io::Error::other("more than 2^32 resources")))?;
        self.table.push(resource.clone());
        self.index.insert(resource, id);
        Ok(id)
    }

    fn json(&self) -> Result<String> {
        serde_json::to_string(&self.table).map_err(|e| Error::Io(std::io::Error::other(e)))
    }

    /// The merged id of each row's map.
    fn ids_of_maps(&mut self, maps: &ArrayRef) -> Result<UInt32Array> {
        let numbering = Numbering::new(&[maps])?;
        let merged = (0..numbering.first.len() as u32)
            .map(|number| self.id_of(numbering.resource(number)))
            .collect::<Result<Vec<u32>>>()?;
        Ok(numbering.ids[0]
            .values()
            .iter()
            .map(|&id| merged[id as usize])
            .collect())
    }
}

/// How an input holds its resources.
enum Layout {
    /// A `resource` column: the merged id of each of the file's resources.
    Ids(Vec<u32>),
    /// A `resource_attributes` map on every row (files written before the resource layout).
    Maps,
}

impl Layout {
    fn of(
        stream: &ParquetRecordBatchStream<ObjectFileReader>,
        metadata: &ParquetMetaData,
        resources: &mut MergedResources,
    ) -> Result<Self> {
        if stream.schema().index_of(RESOURCE_COLUMN).is_err() {
            return Ok(Self::Maps);
        }
        let json = json_of(metadata.file_metadata()).ok_or_else(missing_resources)?;
        let table = decode(json)?;
        Ok(Self::Ids(
            table
                .into_iter()
                .map(|r| resources.id_of(r))
                .collect::<Result<_>>()?,
        ))
    }

    /// The schema of the input's batches once converted.
    fn file_schema(
        &self,
        stream: &ParquetRecordBatchStream<ObjectFileReader>,
        file_schema: &SchemaRef,
    ) -> SchemaRef {
        // Files written before lines were stored by field are split as they are read.
        crate::lines::file_schema_of(&match self {
            Self::Ids(_) => stream.schema().clone(),
            // Converted below; the rest of the fields must match.
            Self::Maps => {
                let fields: Vec<_> = stream
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        if f.name() == RESOURCE_ATTRIBUTES {
                            file_schema
                                .field_with_name(RESOURCE_COLUMN)
                                .map(|f| Arc::new(f.clone()))
                                .unwrap_or_else(|_| f.clone())
                        } else {
                            f.clone()
                        }
                    })
                    .collect();
                Arc::new(arrow::datatypes::Schema::new(fields))
            }
        })
    }

    /// An input batch in the file layout, with merged resource ids and its lines split.
    fn convert(
        &self,
        batch: RecordBatch,
        file_schema: &SchemaRef,
        resources: &mut MergedResources,
    ) -> Result<RecordBatch> {
        let (index, ids) = match self {
            Self::Ids(merged) => {
                let index = batch.schema().index_of(RESOURCE_COLUMN)?;
                let local = batch
                    .column(index)
                    .as_primitive_opt::<arrow::datatypes::UInt32Type>()
                    .ok_or_else(|| Error::Io(std::io::Error::other("resource is not UInt32")))?;
                let ids = local
                    .values()
                    .iter()
                    .map(|&id| {
                        merged.get(id as usize).copied().ok_or_else(|| {
                            Error::Io(std::io::Error::other(format!(
                                "resource {id} of {} in the file",
                                merged.len()
                            )))
                        })
                    })
                    .collect::<Result<Vec<u32>>>()?;
                (index, UInt32Array::from(ids))
            }
            Self::Maps => {
                let index = batch.schema().index_of(RESOURCE_ATTRIBUTES)?;
                (index, resources.ids_of_maps(batch.column(index))?)
            }
        };
        let mut columns = batch.columns().to_vec();
        columns[index] = Arc::new(ids);
        let batch = crate::lines::to_file(&RecordBatch::try_new_with_options(
            crate::resources::file_schema_of(&batch.schema()),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)?;
        Ok(RecordBatch::try_new_with_options(
            file_schema.clone(),
            batch.columns().to_vec(),
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }
}

/// One input: its stream and its current batch with the batch's sort keys.
struct Cursor {
    stream: ParquetRecordBatchStream<ObjectFileReader>,
    layout: Layout,
    file_schema: SchemaRef,
    batch: Option<RecordBatch>,
    rows: Option<Rows>,
    pos: usize,
    /// Index of `batch` in the merge's slot list.
    slot: usize,
}

impl Cursor {
    fn len(&self) -> usize {
        self.batch.as_ref().map_or(0, RecordBatch::num_rows)
    }

    fn head(&self) -> arrow::row::Row<'_> {
        self.rows.as_ref().expect("active cursor").row(self.pos)
    }

    /// Loads the next non-empty batch; false when the input is exhausted.
    fn advance_batch(
        &mut self,
        handle: &Handle,
        converter: &RowConverter,
        key_indices: &[usize],
        slots: &mut Vec<RecordBatch>,
        resources: &mut MergedResources,
    ) -> Result<bool> {
        loop {
            match handle.block_on(self.stream.next()) {
                None => {
                    self.batch = None;
                    self.rows = None;
                    return Ok(false);
                }
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    let batch = self.layout.convert(batch, &self.file_schema, resources)?;
                    let columns: Vec<_> = key_indices
                        .iter()
                        .map(|&i| batch.column(i).clone())
                        .collect();
                    self.rows = Some(converter.convert_columns(&columns)?);
                    self.slot = slots.len();
                    slots.push(batch.clone());
                    self.batch = Some(batch);
                    self.pos = 0;
                    return Ok(true);
                }
            }
        }
    }
}

fn compare(cursors: &[Cursor], a: usize, b: usize) -> CmpOrdering {
    cursors[a]
        .head()
        .cmp(&cursors[b].head())
        .then_with(|| a.cmp(&b))
}

/// Writes the pending rows and re-bases the slot list on the cursors' current batches, so
/// batches no pending row points into are released.
#[allow(clippy::too_many_arguments)]
fn emit(
    handle: &Handle,
    writer: &mut AsyncArrowWriter<BufWriter>,
    slots: &mut Vec<RecordBatch>,
    pending: &mut Vec<(usize, usize)>,
    cursors: &mut [Cursor],
    active: &[usize],
    time_index: usize,
    merged: &mut MergedFile,
) -> Result<()> {
    if !pending.is_empty() {
        let refs: Vec<&RecordBatch> = slots.iter().collect();
        let batch = crate::gather::gather(&refs, pending)?;
        let times = batch
            .column(time_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| {
                Error::Io(std::io::Error::other("time is not a nanosecond timestamp"))
            })?;
        if let (Some(lo), Some(hi)) = (arrow::compute::min(times), arrow::compute::max(times)) {
            merged.min_time = merged.min_time.min(lo);
            merged.max_time = merged.max_time.max(hi);
        }
        merged.rows += times.len() as i64;
        handle.block_on(writer.write(&with_backed_strings(&batch)?))?;
        pending.clear();
    }
    slots.clear();
    for &i in active {
        let cursor = &mut cursors[i];
        cursor.slot = slots.len();
        slots.push(cursor.batch.clone().expect("active cursor has a batch"));
    }
    Ok(())
}

/// Drops a merge's output: an upload in progress is aborted, nothing becomes visible.
fn abort(handle: &Handle, writer: AsyncArrowWriter<BufWriter>) {
    let mut upload = writer.into_inner();
    if let Err(e) = handle.block_on(upload.abort()) {
        tracing::debug!(error = %e, "aborting a merge's upload failed");
    }
}

/// Reads a Parquet object of known size: the footer in one request, then the ranges the
/// reader asks for (column chunks of one row group at a time).
struct ObjectFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

impl ObjectFileReader {
    /// Reads `range` past the read cache: the merge's inputs are read once and then deleted.
    async fn read(&self, range: std::ops::Range<u64>) -> object_store::Result<Bytes> {
        let mut options = GetOptions::new().with_range(Some(range));
        options.extensions.insert(BypassCache);
        self.store
            .get_opts(&self.path, options)
            .await?
            .bytes()
            .await
    }
}

impl AsyncFileReader for ObjectFileReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.read(range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let this = &*self;
        async move {
            coalesce_ranges(
                &ranges,
                |range| this.read(range),
                OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            // Compaction reads every page; it needs no page index.
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(64 * 1024));
            let size = self.size;
            let metadata = reader.load_and_finish(&mut *self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
