//! Gathering rows from several batches into one, in a given order: the copy behind every
//! sorted flush and every compaction.
//!
//! Arrow's `interleave` copies a `Map` column one entry at a time (each key and each value
//! looked up and copied on its own). The attribute maps are most of the bytes of a row and
//! a row's entries are contiguous in its batch, so [`gather`] copies each row's keys and
//! values as two runs of bytes instead. Every other column goes through `interleave`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBufferBuilder, MapArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

/// The rows `indices` (batch, row) of `batches`, in that order, as one batch. The batches
/// share one schema.
pub fn gather(
    batches: &[&RecordBatch],
    indices: &[(usize, usize)],
) -> Result<RecordBatch, ArrowError> {
    let Some(first) = batches.first() else {
        return Err(ArrowError::InvalidArgumentError(
            "gather needs at least one batch".into(),
        ));
    };
    let schema = first.schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            if arrays.iter().all(|a| a.logical_null_count() == a.len()) {
                // A column no row has a value in (a gauge's histogram columns): nothing to
                // copy.
                return Ok(arrow::array::new_null_array(
                    schema.field(c).data_type(),
                    indices.len(),
                ));
            }
            match string_maps(&arrays) {
                Some(maps) => gather_string_maps(&maps, indices),
                None => arrow::compute::interleave(&arrays, indices),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )
}

/// The arrays as `Map<Utf8, Utf8>` without map-level nulls, which [`gather_string_maps`]
/// copies; `None` for anything else.
pub(crate) fn string_maps<'a>(arrays: &[&'a dyn Array]) -> Option<Vec<&'a MapArray>> {
    arrays
        .iter()
        .map(|a| {
            let map = a.as_map_opt()?;
            let strings = map.keys().data_type() == &DataType::Utf8
                && map.values().data_type() == &DataType::Utf8;
            (strings && map.nulls().is_none() && map.keys().null_count() == 0).then_some(map)
        })
        .collect()
}

/// Copies a string column's values `from..to` (by entry) onto `bytes` and `offsets`.
fn copy_run(
    strings: &StringArray,
    from: usize,
    to: usize,
    bytes: &mut Vec<u8>,
    offsets: &mut Vec<i32>,
) {
    let source = strings.value_offsets();
    let (start, end) = (source[from] as usize, source[to] as usize);
    let shift = bytes.len() as i64 - start as i64;
    bytes.extend_from_slice(&strings.value_data()[start..end]);
    offsets.extend(
        source[from + 1..=to]
            .iter()
            .map(|&o| (o as i64 + shift) as i32),
    );
}

pub(crate) fn gather_string_maps(
    maps: &[&MapArray],
    indices: &[(usize, usize)],
) -> Result<ArrayRef, ArrowError> {
    let keys: Vec<&StringArray> = maps.iter().map(|m| m.keys().as_string()).collect();
    let values: Vec<&StringArray> = maps.iter().map(|m| m.values().as_string()).collect();
    let entry_range = |(a, r): (usize, usize)| {
        let offsets = maps[a].value_offsets();
        (offsets[r] as usize, offsets[r + 1] as usize)
    };

    // Sizes first, so that every buffer is allocated once.
    let (mut entries, mut key_bytes, mut value_bytes) = (0usize, 0usize, 0usize);
    for &(a, r) in indices {
        let (from, to) = entry_range((a, r));
        entries += to - from;
        let (k, v) = (keys[a].value_offsets(), values[a].value_offsets());
        key_bytes += (k[to] - k[from]) as usize;
        value_bytes += (v[to] - v[from]) as usize;
    }
    if key_bytes > i32::MAX as usize
        || value_bytes > i32::MAX as usize
        || entries > i32::MAX as usize
    {
        return Err(ArrowError::OffsetOverflowError(key_bytes.max(value_bytes)));
    }

    let mut map_offsets = Vec::with_capacity(indices.len() + 1);
    map_offsets.push(0i32);
    let mut key_offsets = Vec::with_capacity(entries + 1);
    key_offsets.push(0i32);
    let mut value_offsets = Vec::with_capacity(entries + 1);
    value_offsets.push(0i32);
    let mut key_data = Vec::with_capacity(key_bytes);
    let mut value_data = Vec::with_capacity(value_bytes);
    let any_null_values = values.iter().any(|v| v.null_count() > 0);
    let mut validity = BooleanBufferBuilder::new(if any_null_values { entries } else { 0 });
    for &(a, r) in indices {
        let (from, to) = entry_range((a, r));
        copy_run(keys[a], from, to, &mut key_data, &mut key_offsets);
        copy_run(values[a], from, to, &mut value_data, &mut value_offsets);
        if any_null_values {
            match values[a].nulls() {
                Some(nulls) => validity.append_buffer(&nulls.inner().slice(from, to - from)),
                None => validity.append_n(to - from, true),
            }
        }
        map_offsets.push(key_offsets.len() as i32 - 1);
    }

    let string_array = |offsets: Vec<i32>, data: Vec<u8>, nulls: Option<NullBuffer>| {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        // SAFETY: the bytes are runs of whole strings copied from string arrays, and every
        // offset is the end of one of them: each value is valid UTF-8. Offsets start at 0
        // and ascend within `data`.
        let strings = unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(data), nulls) };
        Arc::new(strings) as ArrayRef
    };
    let value_nulls = any_null_values
        .then(|| NullBuffer::new(validity.finish()))
        .filter(|n| n.null_count() > 0);
    let first = maps[0];
    let entries = StructArray::try_new(
        first.entries().fields().clone(),
        vec![
            string_array(key_offsets, key_data, None),
            string_array(value_offsets, value_data, value_nulls),
        ],
        None,
    )?;
    let field = match first.data_type() {
        DataType::Map(field, _) => field.clone(),
        _ => unreachable!("a map array has a map type"),
    };
    let ordered = matches!(first.data_type(), DataType::Map(_, true));
    Ok(Arc::new(MapArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(map_offsets)),
        entries,
        None,
        ordered,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{MapBuilder, StringBuilder};
    use arrow::datatypes::{Field, Schema};

    /// A batch of one map column and one string column, from rows of (key, value) pairs.
    fn batch(rows: &[&[(&str, Option<&str>)]]) -> RecordBatch {
        let mut maps = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut names = StringBuilder::new();
        for (i, row) in rows.iter().enumerate() {
            for (k, v) in *row {
                maps.keys().append_value(k);
                maps.values().append_option(*v);
            }
            maps.append(true).unwrap();
            names.append_value(format!("row{i}"));
        }
        let maps = maps.finish();
        let schema = Schema::new(vec![
            Field::new("attributes", maps.data_type().clone(), false),
            Field::new("name", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(maps), Arc::new(names.finish())],
        )
        .unwrap()
    }

    #[test]
    fn maps_are_gathered_as_interleave_gathers_them() {
        let a = batch(&[
            &[("service", Some("a")), ("empty", None)],
            &[],
            &[("k", Some("héllo")), ("k2", Some(""))],
        ]);
        let b = batch(&[&[("x", Some("1"))], &[("y", None), ("z", Some("zz"))]]);
        // A slice: offsets that do not start at zero.
        let c = batch(&[
            &[("skipped", Some("s"))],
            &[("kept", Some("v")), ("n", None)],
        ])
        .slice(1, 1);
        let no_nulls = batch(&[&[("only", Some("valid"))]]);
        for batches in [vec![&a, &b, &c], vec![&b, &no_nulls], vec![&no_nulls]] {
            let mut indices = Vec::new();
            for (i, batch) in batches.iter().enumerate().rev() {
                indices.extend((0..batch.num_rows()).rev().map(|r| (i, r)));
            }
            indices.push(indices[0]);
            let gathered = gather(&batches, &indices).unwrap();
            let expected = arrow::compute::interleave_record_batch(&batches, &indices).unwrap();
            assert_eq!(gathered, expected);
            gathered.column(0).to_data().validate_full().unwrap();
        }
    }

    #[test]
    fn rows_far_apart_are_gathered_as_interleave_gathers_them() {
        let rows = |seed: usize, n: usize| -> Vec<Vec<(String, Option<String>)>> {
            (0..n)
                .map(|r| {
                    (0..(r * 7 + seed) % 5)
                        .map(|e| {
                            let value = ((r + e) % 4 != 0).then(|| "v".repeat((r * 13 + e) % 90));
                            (format!("k{}", (r + e + seed) % 11), value)
                        })
                        .collect()
                })
                .collect()
        };
        let batch_of = |rows: &[Vec<(String, Option<String>)>]| {
            let rows: Vec<Vec<(&str, Option<&str>)>> = rows
                .iter()
                .map(|r| r.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect())
                .collect();
            let rows: Vec<&[(&str, Option<&str>)]> = rows.iter().map(|r| r.as_slice()).collect();
            batch(&rows)
        };
        let (a, b, c) = (
            batch_of(&rows(1, 300)),
            batch_of(&rows(2, 40)),
            batch_of(&rows(3, 1)),
        );
        let batches = [&a, &b, &c];
        // A sorted flush's order: strided through every batch, some rows twice.
        let mut indices = Vec::new();
        for start in 0..9 {
            indices.extend((start..300).step_by(9).map(|r| (0, r)));
            indices.extend((start..40).step_by(9).map(|r| (1, r)));
        }
        indices.extend([(2, 0), (0, 299), (0, 0), (1, 39)]);
        let gathered = gather(&batches, &indices).unwrap();
        let expected = arrow::compute::interleave_record_batch(&batches, &indices).unwrap();
        assert_eq!(gathered, expected);
        gathered.column(0).to_data().validate_full().unwrap();
    }

    #[test]
    fn columns_without_values_are_gathered_as_interleave_gathers_them() {
        use arrow::array::{Int64Array, ListArray, new_null_array};
        use arrow::datatypes::Int64Type;
        let list_type = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let schema = Arc::new(Schema::new(vec![
            Field::new("none", DataType::Int64, true),
            Field::new("no_lists", list_type.clone(), true),
            Field::new("some", DataType::Int64, true),
            Field::new("lists", list_type.clone(), true),
        ]));
        let batch = |rows: usize, some: Vec<Option<i64>>, lists: Vec<Option<Vec<Option<i64>>>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    new_null_array(&DataType::Int64, rows),
                    new_null_array(&list_type, rows),
                    Arc::new(Int64Array::from(some)),
                    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(lists)),
                ],
            )
            .unwrap()
        };
        let a = batch(2, vec![None, Some(1)], vec![None, Some(vec![Some(1)])]);
        // Every column null in every row, and a batch with none.
        let b = batch(3, vec![None; 3], vec![None; 3]);
        let empty = batch(0, vec![], vec![]);
        let indices = [(1, 2), (0, 1), (1, 0), (0, 0), (1, 1), (0, 1)];
        for batches in [vec![&a, &b, &empty], vec![&b, &b, &empty]] {
            let gathered = gather(&batches, &indices).unwrap();
            let expected = arrow::compute::interleave_record_batch(&batches, &indices).unwrap();
            assert_eq!(gathered, expected);
            for column in gathered.columns() {
                column.to_data().validate_full().unwrap();
            }
        }
        assert_eq!(
            gather(&[&b], &indices[..1]).unwrap().column(1).null_count(),
            1
        );
    }

    #[test]
    fn no_rows_and_no_batches() {
        let a = batch(&[&[("k", Some("v"))]]);
        let gathered = gather(&[&a], &[]).unwrap();
        assert_eq!(gathered.num_rows(), 0);
        assert_eq!(gathered.schema(), a.schema());
        assert!(gather(&[], &[]).is_err());
    }
}
