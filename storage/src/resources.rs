//! Resource attributes stored once per file.
//!
//! Every row of a table carries its resource's attributes (`resource_attributes`), and the
//! rows of one resource carry the same map: a TSBS host's ten tags on each of its points, a
//! pod's on each of its spans. Written as a column, the map is gathered and encoded again
//! for every row — a TSBS flush spent more than half of its Parquet encoding on it.
//!
//! A Parquet file therefore holds, in place of that column, a `resource` column (`UInt32`,
//! an index into the file's resources) and the file's distinct resource attribute maps in
//! its key-value metadata under [`RESOURCES_KEY`]: a JSON array with one array of
//! `[key, value]` pairs (`value` may be `null`) per resource, in index order. Readers put
//! the map back ([`materialise`], and the query layer's expression adapter), so the tables
//! look the same. Files written before this layout keep the column and are read as they are.
//!
//! The write buffer holds rows much the same way ([`buffer_schema_of`]): `resource_attributes`
//! is a dictionary, each row's index (`UInt32`) into the distinct maps of its batch, which
//! conversion builds once per resource of a request. A flush numbers those few maps across
//! its batches rather than every row's ([`Numbering::of_buffer`]); a query of the buffer puts
//! the map back on each row it reads ([`to_table`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder,
    UInt32Array,
};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, UInt32Type};

use crate::schema::{MAP_ENTRIES, MAP_KEY, MAP_VALUE};
use crate::{Error, Result};

/// The table column stored once per file.
pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
/// The file column that takes its place: each row's index into the file's resources.
pub const RESOURCE_COLUMN: &str = "resource";
/// Parquet key-value metadata holding a file's resources, as JSON.
pub const RESOURCES_KEY: &str = "strata.resources";
/// Parquet key-value metadata naming a file's resources uniquely (a UUID), so that readers
/// parse them once.
pub const RESOURCES_ID_KEY: &str = "strata.resources.id";

/// A map's entries `from..to` in its keys and values.
#[derive(Clone, Copy)]
struct Entries<'a> {
    keys: &'a StringArray,
    values: &'a StringArray,
    from: usize,
    to: usize,
}

impl<'a> Entries<'a> {
    fn bytes(strings: &'a StringArray, from: usize, to: usize) -> &'a [u8] {
        let offsets = strings.value_offsets();
        &strings.value_data()[offsets[from] as usize..offsets[to] as usize]
    }

    /// Whether both hold the same entries: the same keys and values, in the same order.
    fn same(&self, other: &Entries<'_>) -> bool {
        let n = self.to - self.from;
        n == other.to - other.from
            && same_strings(self.keys, self.from, other.keys, other.from, n)
            && same_strings(self.values, self.from, other.values, other.from, n)
            && match (self.values.nulls(), other.values.nulls()) {
                (None, None) => true,
                _ => (0..n).all(|i| {
                    self.values.is_valid(self.from + i) == other.values.is_valid(other.from + i)
                }),
            }
    }

    /// A hash of the entries' bytes (equal entries hash equally).
    fn hash(&self) -> u64 {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = (self.to - self.from) as u64;
        for bytes in [
            Self::bytes(self.keys, self.from, self.to),
            Self::bytes(self.values, self.from, self.to),
        ] {
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                h = (h.rotate_left(5) ^ word).wrapping_mul(K);
            }
            for &b in chunks.remainder() {
                h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
            }
            h = (h.rotate_left(5) ^ bytes.len() as u64).wrapping_mul(K);
        }
        h
    }

    /// The entries as JSON `[[key, value], ...]` onto `out`.
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for i in self.from..self.to {
            if i > self.from {
                out.push(',');
            }
            out.push('[');
            push_json_string(out, self.keys.value(i));
            out.push(',');
            if self.values.is_valid(i) {
                push_json_string(out, self.values.value(i));
            } else {
                out.push_str("null");
            }
            out.push(']');
        }
        out.push(']');
    }
}

fn push_json_string(out: &mut String, s: &str) {
    // Strings serialise infallibly.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Whether `n` strings from `a[i]` and from `b[j]` are equal.
fn same_strings(a: &StringArray, i: usize, b: &StringArray, j: usize, n: usize) -> bool {
    let (oa, ob) = (&a.value_offsets()[i..=i + n], &b.value_offsets()[j..=j + n]);
    let (sa, sb) = (oa[0], ob[0]);
    oa.iter().zip(ob).all(|(x, y)| x - sa == y - sb)
        && a.value_data()[sa as usize..oa[n] as usize]
            == b.value_data()[sb as usize..ob[n] as usize]
}

/// Maps with more candidates under one hash than this get an index of their own (a
/// resource stored twice costs bytes, never correctness).
const CANDIDATES_PER_HASH: usize = 8;

/// The `Map<Utf8, Utf8>` columns of several batches, each row numbered by its content:
/// rows with one number hold equal maps.
pub(crate) struct Numbering<'a> {
    maps: Vec<&'a MapArray>,
    keys: Vec<&'a StringArray>,
    values: Vec<&'a StringArray>,
    /// Per batch, each row's number.
    pub ids: Vec<UInt32Array>,
    /// Per number, the (batch, row) it was first seen at.
    pub first: Vec<(usize, usize)>,
}

impl<'a> Numbering<'a> {
    /// Numbers the maps in one pass in arrival order: a row equal to the row before it takes
    /// its number; the first row of a run is looked up by a hash of its entries.
    pub fn new(columns: &[&'a ArrayRef]) -> Result<Self> {
        let mut maps = Vec::with_capacity(columns.len());
        for column in columns {
            let map = column
                .as_map_opt()
                .filter(|m| {
                    m.keys().data_type() == &DataType::Utf8
                        && m.values().data_type() == &DataType::Utf8
                        && m.nulls().is_none_or(|n| n.null_count() == 0)
                })
                .ok_or_else(|| {
                    Error::Io(std::io::Error::other(format!(
                        "{RESOURCE_ATTRIBUTES} is not a map of strings without nulls"
                    )))
                })?;
            maps.push(map);
        }
        let keys: Vec<&StringArray> = maps.iter().map(|m| m.keys().as_string()).collect();
        let values: Vec<&StringArray> = maps.iter().map(|m| m.values().as_string()).collect();
        let mut numbering = Self {
            maps,
            keys,
            values,
            ids: Vec::with_capacity(columns.len()),
            first: Vec::new(),
        };
        let mut by_hash: HashMap<u64, Vec<u32>> = HashMap::new();
        for a in 0..numbering.maps.len() {
            let rows = numbering.maps[a].len();
            let mut ids = Vec::with_capacity(rows);
            for r in 0..rows {
                let row = numbering.entries(a, r);
                if r > 0 && row.same(&numbering.entries(a, r - 1)) {
                    ids.push(ids[r - 1]);
                    continue;
                }
                let candidates = by_hash.entry(row.hash()).or_default();
                let found = candidates.iter().copied().find(|&id| {
                    let (b, s) = numbering.first[id as usize];
                    numbering.entries(b, s).same(&row)
                });
                let id = match found {
                    Some(id) => id,
                    None => {
                        let id = u32::try_from(numbering.first.len()).map_err(|_| {
                            Error::Io(std::io::Error::other("more than 2^32 resources"))
                        })?;
                        numbering.first.push((a, r));
                        if candidates.len() < CANDIDATES_PER_HASH {
                            candidates.push(id);
                        }
                        id
                    }
                };
                ids.push(id);
            }
            numbering.ids.push(UInt32Array::from(ids));
        }
        Ok(numbering)
    }

    /// Numbers the `resource_attributes` columns of write-buffer batches (dictionaries,
    /// [`buffer_schema_of`]) or of table batches (a map per row), as [`Self::new`] numbers
    /// maps: `ids` holds each row's number. A dictionary's distinct maps are numbered, not
    /// its rows.
    pub fn of_buffer(columns: &[&'a ArrayRef]) -> Result<Self> {
        let mut maps = Vec::with_capacity(columns.len());
        let mut keys = Vec::with_capacity(columns.len());
        for &column in columns {
            match column.as_dictionary_opt::<UInt32Type>() {
                Some(dictionary) => {
                    maps.push(dictionary.values());
                    keys.push(Some(dictionary.keys()));
                }
                None => {
                    maps.push(column);
                    keys.push(None);
                }
            }
        }
        let mut numbering = Self::new(&maps)?;
        for (ids, keys) in numbering.ids.iter_mut().zip(keys) {
            if let Some(keys) = keys {
                if keys.null_count() > 0 {
                    return Err(Error::Io(std::io::Error::other(format!(
                        "{RESOURCE_ATTRIBUTES} has a row without a resource"
                    ))));
                }
                let numbers = ids.values();
                let mut renumbered = Vec::with_capacity(keys.len());
                for &key in keys.values() {
                    let number = numbers.get(key as usize).ok_or_else(|| {
                        Error::Io(std::io::Error::other(format!(
                            "resource {key} of {} in the batch",
                            numbers.len()
                        )))
                    })?;
                    renumbered.push(*number);
                }
                *ids = UInt32Array::from(renumbered);
            }
        }
        Ok(numbering)
    }

    fn entries(&self, a: usize, r: usize) -> Entries<'a> {
        let offsets = self.maps[a].value_offsets();
        Entries {
            keys: self.keys[a],
            values: self.values[a],
            from: offsets[r] as usize,
            to: offsets[r + 1] as usize,
        }
    }

    /// The entries of the maps numbered `number`, owned.
    pub fn resource(&self, number: u32) -> Resource {
        let (a, r) = self.first[number as usize];
        let row = self.entries(a, r);
        (row.from..row.to)
            .map(|i| {
                let value = row
                    .values
                    .is_valid(i)
                    .then(|| row.values.value(i).to_string());
                (row.keys.value(i).to_string(), value)
            })
            .collect()
    }

    /// Renumbers `ids` (numbers of this numbering) densely from 0 in order of first
    /// appearance, and returns the file's resources JSON for them.
    pub fn for_file(&self, ids: &UInt32Array) -> (UInt32Array, String) {
        let mut local = vec![u32::MAX; self.first.len()];
        let mut order: Vec<u32> = Vec::new();
        let renumbered: UInt32Array = ids
            .values()
            .iter()
            .map(|&id| {
                let slot = &mut local[id as usize];
                if *slot == u32::MAX {
                    *slot = order.len() as u32;
                    order.push(id);
                }
                *slot
            })
            .collect();
        let mut json = String::from("[");
        for (i, &id) in order.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            let (a, r) = self.first[id as usize];
            self.entries(a, r).write_json(&mut json);
        }
        json.push(']');
        (renumbered, json)
    }
}

/// A batch of table rows in a file's layout: `resource_attributes` replaced by `resource`
/// (same position, `UInt32`), with the file's resources JSON. A batch without the column
/// passes unchanged, without resources.
pub fn to_file(batch: &RecordBatch) -> Result<(RecordBatch, Option<String>)> {
    let Ok(index) = batch.schema().index_of(RESOURCE_ATTRIBUTES) else {
        return Ok((batch.clone(), None));
    };
    let column = batch.column(index);
    let numbering = Numbering::of_buffer(&[column])?;
    let (ids, json) = numbering.for_file(&numbering.ids[0]);
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(ids);
    Ok((
        RecordBatch::try_new_with_options(
            file_schema_of(&batch.schema()),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?,
        Some(json),
    ))
}

/// The write buffer's type of `resource_attributes`: each row's index into its batch's
/// distinct maps.
pub fn buffer_type() -> DataType {
    DataType::Dictionary(
        Box::new(DataType::UInt32),
        Box::new(crate::schema::attributes_type()),
    )
}

/// `schema` (a table's) with `resource_attributes` as the write buffer holds it
/// ([`buffer_type`]).
pub fn buffer_schema_of(schema: &SchemaRef) -> SchemaRef {
    replace_field(schema, RESOURCE_ATTRIBUTES, || {
        Field::new(RESOURCE_ATTRIBUTES, buffer_type(), false)
    })
}

/// Rows of a table (a map on every row) in the write buffer's layout: each distinct map once,
/// and each row's index into them. Batches already in that layout, or without the column,
/// pass unchanged. (Conversion builds the layout directly; tests build it from tables.)
#[cfg(test)]
pub(crate) fn to_buffer(batch: &RecordBatch) -> Result<RecordBatch> {
    let Ok(index) = batch.schema().index_of(RESOURCE_ATTRIBUTES) else {
        return Ok(batch.clone());
    };
    let column = batch.column(index);
    if matches!(column.data_type(), DataType::Dictionary(..)) {
        return Ok(batch.clone());
    }
    let numbering = Numbering::new(&[column])?;
    let first: UInt32Array = numbering.first.iter().map(|&(_, r)| r as u32).collect();
    let values = arrow::compute::take(column, &first, None)?;
    let dictionary =
        arrow::array::DictionaryArray::<UInt32Type>::try_new(numbering.ids[0].clone(), values)?;
    replace_column(
        batch,
        buffer_schema_of(&batch.schema()),
        index,
        Arc::new(dictionary),
    )
}

/// Rows of the write buffer with `resource_attributes` put back on every row: the table's
/// layout. Batches of other layouts pass unchanged. Takes any projection of a table's columns.
pub fn to_table(batch: &RecordBatch) -> Result<RecordBatch> {
    let Ok(index) = batch.schema().index_of(RESOURCE_ATTRIBUTES) else {
        return Ok(batch.clone());
    };
    let Some(dictionary) = batch.column(index).as_dictionary_opt::<UInt32Type>() else {
        return Ok(batch.clone());
    };
    let resources = dictionary.values().as_map_opt().ok_or_else(|| {
        Error::Io(std::io::Error::other(format!(
            "{RESOURCE_ATTRIBUTES} is not a dictionary of maps"
        )))
    })?;
    let maps = take(resources, dictionary.keys())?;
    let schema = replace_field(&batch.schema(), RESOURCE_ATTRIBUTES, || {
        Field::new(RESOURCE_ATTRIBUTES, crate::schema::attributes_type(), false)
    });
    replace_column(batch, schema, index, maps)
}

fn replace_column(
    batch: &RecordBatch,
    schema: SchemaRef,
    index: usize,
    column: ArrayRef,
) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    columns[index] = column;
    Ok(RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// `schema` with `resource_attributes` (a table's) replaced by `resource` (a file's).
pub fn file_schema_of(schema: &SchemaRef) -> SchemaRef {
    replace_field(schema, RESOURCE_ATTRIBUTES, || {
        Field::new(RESOURCE_COLUMN, DataType::UInt32, false)
    })
}

/// `schema` with `resource` (a file's) replaced by `resource_attributes` (a table's).
pub fn table_schema_of(schema: &SchemaRef) -> SchemaRef {
    replace_field(schema, RESOURCE_COLUMN, || {
        Field::new(RESOURCE_ATTRIBUTES, crate::schema::attributes_type(), false)
    })
}

fn replace_field(schema: &SchemaRef, name: &str, field: impl Fn() -> Field) -> SchemaRef {
    if schema.index_of(name).is_err() {
        return schema.clone();
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == name {
                Arc::new(field())
            } else {
                f.clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The resources JSON in a Parquet file's key-value metadata, if it has any.
pub fn json_of(metadata: &parquet::file::metadata::FileMetaData) -> Option<&str> {
    metadata
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == RESOURCES_KEY)?
        .value
        .as_deref()
}

/// Every row of a Parquet file, in the table layout (resource attributes and lines stored
/// by field put back).
pub fn read_parquet(bytes: bytes::Bytes) -> Result<Vec<RecordBatch>> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let resources = json_of(builder.metadata().file_metadata())
        .map(parse)
        .transpose()?;
    // The table's schema: the file's metadata (resources among it) is not the rows'.
    let table_schema = Arc::new(Schema::new(
        crate::lines::table_schema_of(&table_schema_of(builder.schema()))
            .fields()
            .clone(),
    ));
    builder
        .build()?
        .map(|batch| {
            let batch = crate::lines::materialise(&batch?)?;
            materialise(&table_schema, &batch, resources.as_ref())
        })
        .collect()
}

/// One resource's attributes, in order: what one element of [`RESOURCES_KEY`] holds.
pub type Resource = Vec<(String, Option<String>)>;

/// A file's resources from their JSON, in index order.
pub fn decode(json: &str) -> Result<Vec<Resource>> {
    serde_json::from_str(json)
        .map_err(|e| Error::Io(std::io::Error::other(format!("{RESOURCES_KEY}: {e}"))))
}

/// The error of a file in the resource layout whose metadata lacks its resources.
pub fn missing_resources() -> Error {
    Error::Io(std::io::Error::other(format!(
        "a file with a {RESOURCE_COLUMN} column and no {RESOURCES_KEY}"
    )))
}

/// A file's resources from their JSON, as a map array indexed by resource.
pub fn parse(json: &str) -> Result<MapArray> {
    let resources = decode(json)?;
    let names = arrow::array::MapFieldNames {
        entry: MAP_ENTRIES.into(),
        key: MAP_KEY.into(),
        value: MAP_VALUE.into(),
    };
    let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for resource in &resources {
        for (key, value) in resource {
            builder.keys().append_value(key);
            builder.values().append_option(value.as_deref());
        }
        builder.append(true)?;
    }
    let map = builder.finish();
    // The table's map type: entries and keys not nullable.
    let (_, offsets, entries, _, ordered) = map.into_parts();
    let DataType::Map(field, _) = crate::schema::attributes_type() else {
        unreachable!("attributes are a map")
    };
    let DataType::Struct(fields) = field.data_type().clone() else {
        unreachable!("map entries are a struct")
    };
    let (_, columns, _) = entries.into_parts();
    let entries = arrow::array::StructArray::try_new(fields, columns, None)?;
    Ok(MapArray::try_new(field, offsets, entries, None, ordered)?)
}

/// Each row's resource attributes: the file's `resources` taken by the row's index. Takes
/// anything with one value per resource as well (an expression answered per resource).
pub fn take(resources: &dyn Array, ids: &dyn Array) -> Result<ArrayRef> {
    let ids = ids
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| Error::Io(std::io::Error::other("resource is not UInt32")))?;
    let past = |id: &u32| *id as usize >= resources.len();
    let bad = match ids.null_count() {
        0 => ids.values().iter().copied().find(past),
        _ => ids.iter().flatten().find(past),
    };
    if let Some(bad) = bad {
        return Err(Error::Io(std::io::Error::other(format!(
            "resource {bad} of {} in the file",
            resources.len()
        ))));
    }
    // String maps are copied as two runs of bytes per row (`gather`), where Arrow's `take`
    // of a map extends its keys and values entry by entry (a filter on a resource attribute
    // over 1 M buffered TSBS points: 215 ms with `take`, 123 ms with this, docs/BENCHMARKS.md).
    match crate::gather::string_maps(&[resources]) {
        Some(maps) if ids.null_count() == 0 => {
            let rows: Vec<(usize, usize)> = ids.values().iter().map(|&k| (0, k as usize)).collect();
            Ok(crate::gather::gather_string_maps(&maps, &rows)?)
        }
        _ => Ok(arrow::compute::take(resources, ids, None)?),
    }
}

/// A batch read from a file in the resource layout, with `resource_attributes` put back in
/// place of `resource`, in `table_schema`. Batches of other layouts pass unchanged.
pub fn materialise(
    table_schema: &SchemaRef,
    batch: &RecordBatch,
    resources: Option<&MapArray>,
) -> Result<RecordBatch> {
    let Ok(index) = batch.schema().index_of(RESOURCE_COLUMN) else {
        return Ok(batch.clone());
    };
    let resources = resources.ok_or_else(missing_resources)?;
    let mut columns = batch.columns().to_vec();
    columns[index] = take(resources, batch.column(index))?;
    Ok(RecordBatch::try_new_with_options(
        table_schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

#[cfg(test)]
mod tests;
