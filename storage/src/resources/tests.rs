use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::DataType;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::*;
use crate::Signal;
use crate::catalog::FileMeta;
use crate::merge::{MergeOutput, merge_sorted_files};
use crate::parquet_file::{COMPACTION_ZSTD_LEVEL, encode, partition_and_sort};
use crate::schema::logs_schema;

/// One resource: its (key, value) entries, in order.
type Res = Vec<(&'static str, Option<&'static str>)>;

fn maps(rows: &[Res]) -> MapArray {
    let names = arrow::array::MapFieldNames {
        entry: MAP_ENTRIES.into(),
        key: MAP_KEY.into(),
        value: MAP_VALUE.into(),
    };
    let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for row in rows {
        for (k, v) in row {
            builder.keys().append_value(k);
            builder.values().append_option(*v);
        }
        builder.append(true).unwrap();
    }
    builder.finish()
}

/// Each row's map as owned entries.
fn entries(map: &MapArray) -> Vec<Vec<(String, Option<String>)>> {
    (0..map.len())
        .map(|r| {
            let row = map.value(r);
            let (keys, values) = (
                row.column(0).as_string::<i32>(),
                row.column(1).as_string::<i32>(),
            );
            (0..row.len())
                .map(|i| {
                    (
                        keys.value(i).to_string(),
                        values.is_valid(i).then(|| values.value(i).to_string()),
                    )
                })
                .collect()
        })
        .collect()
}

/// Rows of the `logs` table: (service, time, body, resource), everything else empty.
fn logs(rows: &[(&str, i64, &str, Res)]) -> RecordBatch {
    let schema = logs_schema();
    let n = rows.len();
    let resources = maps(&rows.iter().map(|r| r.3.clone()).collect::<Vec<_>>());
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "time" | "observed_time" => Arc::new(
                    TimestampNanosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                "service_name" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                "body" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                RESOURCE_ATTRIBUTES => Arc::new(resources.clone()),
                _ => match f.data_type() {
                    DataType::Map(..) => Arc::new(maps(&vec![vec![]; n])),
                    data_type => arrow::array::new_null_array(data_type, n),
                },
            }
        })
        .map(|a| {
            // Non-nullable scalars: zeroes and empty strings in place of nulls.
            if a.null_count() == 0 {
                return a;
            }
            match a.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from(vec![""; n])) as ArrayRef,
                DataType::Int32 => Arc::new(arrow::array::Int32Array::from(vec![0; n])),
                DataType::UInt32 => Arc::new(UInt32Array::from(vec![0; n])),
                _ => a,
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

/// `back` holds the rows of `batch`, its resource maps valid Arrow data.
fn assert_rows_back(back: &RecordBatch, batch: &RecordBatch) {
    assert_eq!(back, batch);
    back.column_by_name(RESOURCE_ATTRIBUTES)
        .unwrap()
        .to_data()
        .validate_full()
        .unwrap();
}

fn host(name: &'static str) -> Res {
    vec![("service.name", Some("api")), ("host.name", Some(name))]
}

#[test]
fn equal_maps_share_a_number_and_unequal_ones_do_not() {
    let a = maps(&[
        host("a"),
        host("a"),
        host("b"),
        // The same bytes split at another entry boundary.
        vec![("ab", Some("c"))],
        vec![("a", Some("bc"))],
        // An empty value is not a null one.
        vec![("k", Some(""))],
        vec![("k", None)],
        vec![],
        host("a"),
    ]);
    let b = maps(&[vec![], host("b"), vec![("k", None)], host("a")]);
    let (a, b): (ArrayRef, ArrayRef) = (Arc::new(a), Arc::new(b));
    let numbering = Numbering::new(&[&a, &b]).unwrap();
    let ids: Vec<Vec<u32>> = numbering.ids.iter().map(|i| i.values().to_vec()).collect();
    assert_eq!(ids[0], vec![0, 0, 1, 2, 3, 4, 5, 6, 0]);
    assert_eq!(ids[1], vec![6, 1, 5, 0]);
    assert_eq!(numbering.first.len(), 7);

    // A file's numbers count from 0 in order of appearance; its JSON holds each map once.
    let (local, json) = numbering.for_file(&UInt32Array::from(vec![5, 1, 5, 0]));
    assert_eq!(local.values().to_vec(), vec![0, 1, 0, 2]);
    let parsed = parse(&json).unwrap();
    assert_eq!(
        entries(&parsed),
        vec![
            vec![("k".to_string(), None)],
            vec![
                ("service.name".to_string(), Some("api".to_string())),
                ("host.name".to_string(), Some("b".to_string()))
            ],
            vec![
                ("service.name".to_string(), Some("api".to_string())),
                ("host.name".to_string(), Some("a".to_string()))
            ],
        ]
    );
}

#[test]
fn rows_round_trip_through_the_file_layout() {
    let batch = logs(&[
        ("api", 3, "x", host("a")),
        (
            "api",
            1,
            "y",
            vec![("quote\"d", Some("line\nbreak \u{1F600} \\ \u{0}"))],
        ),
        ("api", 2, "z", host("a")),
        ("api", 4, "w", vec![]),
        ("api", 5, "v", vec![("k", None), ("k", Some(""))]),
    ]);
    let (file, json) = to_file(&batch).unwrap();
    assert_eq!(file.schema(), file_schema_of(&logs_schema()));
    let ids = file
        .column_by_name(RESOURCE_COLUMN)
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt32Type>();
    assert_eq!(ids.values().to_vec(), vec![0, 1, 0, 2, 3]);
    let json = json.unwrap();
    let resources = parse(&json).unwrap();
    let back = materialise(&logs_schema(), &file, Some(&resources)).unwrap();
    assert_rows_back(&back, &batch);

    // Through Parquet: the metadata carries the resources and an id for them.
    let bytes = encode(Signal::Logs, &batch).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap();
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap();
    assert!(
        kv.iter().any(
            |kv| kv.key == RESOURCES_ID_KEY && kv.value.as_ref().is_some_and(|v| v.len() == 32)
        )
    );
    assert_eq!(
        json_of(reader.metadata().file_metadata()),
        Some(json.as_str())
    );
    assert_eq!(read_parquet(bytes).unwrap(), vec![batch]);
}

#[test]
fn rows_round_trip_through_the_buffer_layout() {
    let batch = logs(&[
        ("api", 3, "x", host("a")),
        ("api", 1, "y", host("a")),
        ("api", 2, "z", vec![("k", None), ("k", Some(""))]),
        ("api", 4, "w", vec![]),
        ("api", 5, "v", host("a")),
    ]);
    let buffer = to_buffer(&batch).unwrap();
    assert_eq!(buffer.schema(), buffer_schema_of(&logs_schema()));
    let dictionary = buffer
        .column_by_name(RESOURCE_ATTRIBUTES)
        .unwrap()
        .as_dictionary::<arrow::datatypes::UInt32Type>();
    // Each distinct map once, in order of first appearance.
    assert_eq!(dictionary.keys().values().to_vec(), vec![0, 0, 1, 2, 0]);
    assert_eq!(
        entries(dictionary.values().as_map()),
        vec![
            vec![
                ("service.name".to_string(), Some("api".to_string())),
                ("host.name".to_string(), Some("a".to_string()))
            ],
            vec![
                ("k".to_string(), None),
                ("k".to_string(), Some(String::new()))
            ],
            vec![],
        ]
    );
    // Already in the layout: unchanged.
    assert_eq!(to_buffer(&buffer).unwrap(), buffer);
    let back = to_table(&buffer).unwrap();
    assert_rows_back(&back, &batch);
    assert_eq!(to_table(&batch).unwrap(), batch);
    // A projection with the column, and one without it.
    let r = logs_schema().index_of(RESOURCE_ATTRIBUTES).unwrap();
    assert_eq!(
        to_table(&buffer.project(&[r, 0]).unwrap()).unwrap(),
        batch.project(&[r, 0]).unwrap()
    );
    assert_eq!(
        to_table(&buffer.project(&[0]).unwrap()).unwrap(),
        batch.project(&[0]).unwrap()
    );

    // Through Parquet, as a flush writes it.
    let bytes = encode(Signal::Logs, &buffer).unwrap();
    assert_eq!(read_parquet(bytes).unwrap(), vec![batch]);
}

#[test]
fn a_flush_keeps_each_hours_resources_once() {
    const HOUR: i64 = crate::parquet_file::HOUR_NS;
    let first = logs(&[
        ("b", HOUR + 2, "1", host("h1")),
        ("a", 5, "2", host("h2")),
        ("a", HOUR + 1, "3", host("h2")),
    ]);
    let second = logs(&[("a", 4, "4", host("h3")), ("b", HOUR + 3, "5", host("h1"))]);
    // Batches in the table's layout, in the write buffer's, and one of each.
    let buffer = |b: &RecordBatch| to_buffer(b).unwrap();
    for batches in [
        vec![first.clone(), second.clone()],
        vec![buffer(&first), buffer(&second)],
        vec![first.clone(), buffer(&second)],
        vec![buffer(&first), second.clone()],
    ] {
        let parts = partition_and_sort(Signal::Logs, &batches).unwrap();
        let got: Vec<Vec<(String, String)>> = parts
            .iter()
            .map(|part| {
                let resources = parse(part.resources.as_deref().unwrap()).unwrap();
                let batch = crate::lines::materialise(&part.batch).unwrap();
                let table = materialise(&logs_schema(), &batch, Some(&resources)).unwrap();
                let hosts = entries(table.column_by_name(RESOURCE_ATTRIBUTES).unwrap().as_map());
                let bodies = table.column_by_name("body").unwrap().as_string::<i32>();
                (0..table.num_rows())
                    .map(|r| (bodies.value(r).to_string(), hosts[r][1].1.clone().unwrap()))
                    .collect()
            })
            .collect();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            got,
            vec![
                pairs(&[("4", "h3"), ("2", "h2")]),
                pairs(&[("3", "h2"), ("1", "h1"), ("5", "h1")]),
            ]
        );
        // Each part's resources are its own, each once, across the batches.
        assert_eq!(
            parse(parts[1].resources.as_deref().unwrap()).unwrap().len(),
            2
        );
    }
}

#[test]
fn rows_take_their_resources_or_any_value_per_resource() {
    let resources = parse(r#"[[["k","a"]],[["k","b"],["l","c"]]]"#).unwrap();
    let maps = take(&resources, &UInt32Array::from(vec![1, 0, 1])).unwrap();
    let maps = maps.as_map();
    assert_eq!(maps.value_offsets(), [0, 2, 3, 5]);
    let values: Vec<_> = maps.values().as_string::<i32>().iter().flatten().collect();
    assert_eq!(values, ["b", "c", "a", "b", "c"]);
    // A row without a resource is null, whatever its slot holds.
    let ids = UInt32Array::new(
        vec![0, 99].into(),
        Some(arrow::buffer::NullBuffer::from(vec![true, false])),
    );
    let maps = take(&resources, &ids).unwrap();
    assert_eq!((maps.len(), maps.null_count()), (2, 1));
    // Anything with one value per resource.
    let answers = arrow::array::StringArray::from(vec!["x", "y"]);
    let taken = take(&answers, &UInt32Array::from(vec![1, 1, 0])).unwrap();
    let taken: Vec<_> = taken.as_string::<i32>().iter().flatten().collect();
    assert_eq!(taken, ["y", "y", "x"]);
}

#[test]
fn hostile_files_are_errors() {
    let resources = parse(r#"[[["k","v"]]]"#).unwrap();
    assert!(take(&resources, &UInt32Array::from(vec![0, 1])).is_err());
    assert!(take(&resources, &arrow::array::Int64Array::from(vec![0])).is_err());
    for bad in [
        "",
        "{}",
        "[[1]]",
        r#"[[["k"]]]"#,
        r#"[[["k","v","w"]]]"#,
        "[[[null,\"v\"]]]",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    // A file with the column and no resources.
    let (file, _) = to_file(&logs(&[("a", 1, "x", host("h"))])).unwrap();
    assert!(materialise(&logs_schema(), &file, None).is_err());
}

/// Writes `batch` (table rows, sorted) to `path` in the resource layout or, with `maps`, in
/// the layout of files written before it (the map on every row).
async fn put(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    batch: &RecordBatch,
    maps: bool,
) -> FileMeta {
    let bytes = if maps {
        let mut out = Vec::new();
        let props = crate::parquet_file::writer_properties(Signal::Logs, 1);
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        bytes::Bytes::from(out)
    } else {
        encode(Signal::Logs, batch).unwrap()
    };
    store
        .put(&Path::from(path), bytes.clone().into())
        .await
        .unwrap();
    let times = batch
        .column(0)
        .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
    FileMeta {
        id: path.into(),
        tenant: crate::TenantId::new("a").unwrap(),
        signal: Signal::Logs,
        path: path.into(),
        min_time: arrow::compute::min(times).unwrap(),
        max_time: arrow::compute::max(times).unwrap(),
        rows: batch.num_rows() as i64,
        size_bytes: bytes.len() as i64,
        level: 0,
        created_at: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_both_layouts_into_one_set_of_resources() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let inputs = vec![
        put(
            &store,
            "in/0.parquet",
            &logs(&[("a", 1, "1", host("h1")), ("a", 4, "4", host("h2"))]),
            false,
        )
        .await,
        put(
            &store,
            "in/1.parquet",
            &logs(&[("a", 2, "2", host("h2")), ("b", 1, "5", host("h3"))]),
            true,
        )
        .await,
        put(
            &store,
            "in/2.parquet",
            &logs(&[("a", 3, "3", host("h1")), ("b", 2, "6", vec![])]),
            false,
        )
        .await,
    ];
    let out = MergeOutput::new(Path::from("out.parquet"), COMPACTION_ZSTD_LEVEL);
    let handle = tokio::runtime::Handle::current();
    let (s, o) = (store.clone(), out.clone());
    let merged = tokio::task::spawn_blocking(move || {
        merge_sorted_files(&handle, &s, Signal::Logs, &inputs, &o, &Default::default())
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(merged.rows, 6);
    let bytes = store.get(&out.path).await.unwrap().bytes().await.unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap();
    assert!(reader.schema().index_of(RESOURCE_COLUMN).is_ok());
    // The lines of every input are split, those of the input of the earlier layout too.
    assert_eq!(
        reader.schema().fields(),
        crate::schema::file_schema_for(Signal::Logs).fields()
    );
    // h1, h2, h3 and the empty map, each once.
    let resources = parse(json_of(reader.metadata().file_metadata()).unwrap()).unwrap();
    assert_eq!(resources.len(), 4);
    let whole: usize = reader
        .build()
        .unwrap()
        .map(|b| {
            let b = b.unwrap();
            let body = b.column_by_name("body").unwrap();
            body.len() - body.null_count()
        })
        .sum();
    assert_eq!(whole, 0, "every line (a number) is stored by field");
    let table =
        arrow::compute::concat_batches(&logs_schema(), &read_parquet(bytes).unwrap()).unwrap();
    let bodies = table.column_by_name("body").unwrap().as_string::<i32>();
    let hosts = entries(table.column_by_name(RESOURCE_ATTRIBUTES).unwrap().as_map());
    let got: Vec<(String, Option<String>)> = (0..table.num_rows())
        .map(|r| {
            (
                bodies.value(r).to_string(),
                hosts[r].get(1).and_then(|e| e.1.clone()),
            )
        })
        .collect();
    let h = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        vec![
            ("1".into(), h("h1")),
            ("2".into(), h("h2")),
            ("3".into(), h("h1")),
            ("4".into(), h("h2")),
            ("5".into(), h("h3")),
            ("6".into(), None),
        ]
    );
}
