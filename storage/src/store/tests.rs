//! The engine end to end over a real SQLite catalog, a local object store and the WAL.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::compute::concat_batches;

use super::*;
use crate::SqlCatalog;
use crate::objects::object_store_from_url;
use crate::parquet_file::HOUR_NS;
use crate::schema::logs_schema;

/// `logs` rows with the given times and bodies (other columns empty).
fn logs(rows: &[(i64, &str)]) -> RecordBatch {
    let schema = logs_schema();
    let n = rows.len();
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> arrow::array::ArrayRef {
            match f.name().as_str() {
                "time" | "observed_time" => Arc::new(
                    TimestampNanosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                "body" => Arc::new(StringArray::from(
                    rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>(),
                )),
                _ => match f.data_type() {
                    arrow::datatypes::DataType::Utf8 if !f.is_nullable() => {
                        Arc::new(StringArray::from(vec![""; n]))
                    }
                    arrow::datatypes::DataType::Int32 => {
                        Arc::new(arrow::array::Int32Array::from(vec![0; n]))
                    }
                    arrow::datatypes::DataType::UInt32 => {
                        Arc::new(arrow::array::UInt32Array::from(vec![0; n]))
                    }
                    arrow::datatypes::DataType::Map(..) => {
                        let mut b = arrow::array::MapBuilder::new(
                            None,
                            arrow::array::StringBuilder::new(),
                            arrow::array::StringBuilder::new(),
                        )
                        .with_values_field(Arc::new(
                            arrow::datatypes::Field::new(
                                "values",
                                arrow::datatypes::DataType::Utf8,
                                true,
                            ),
                        ));
                        for _ in 0..n {
                            b.append(true).unwrap();
                        }
                        Arc::new(b.finish())
                    }
                    other => arrow::array::new_null_array(other, n),
                },
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn open(&self) -> Arc<Storage> {
        let store = object_store_from_url(&format!("file://{}/objects", self.dir.path().display()))
            .unwrap();
        let catalog = Arc::new(
            SqlCatalog::connect(&format!(
                "sqlite://{}/catalog.db",
                self.dir.path().display()
            ))
            .await
            .unwrap(),
        );
        Storage::open(
            store,
            catalog,
            StorageConfig {
                wal: Some(WalConfig::new(self.dir.path().join("wal"))),
                node_id: "node-a".into(),
                ..StorageConfig::default()
            },
        )
        .await
        .unwrap()
    }
}

fn tenant(t: &str) -> TenantId {
    TenantId::new(t).unwrap()
}

/// Every body of a tenant's logs (files and buffer), sorted.
async fn bodies(storage: &Storage, t: &str) -> Vec<String> {
    let snapshot = storage.snapshot(&tenant(t), Signal::Logs, TimeRange::ALL);
    let mut batches = snapshot.batches.clone();
    for file in &snapshot.files {
        let bytes = storage
            .object_store()
            .get(&Path::from(file.path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    let all = concat_batches(&logs_schema(), &batches).unwrap();
    let body = all.column_by_name("body").unwrap().as_string::<i32>();
    let mut out: Vec<String> = (0..body.len()).map(|i| body.value(i).to_string()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash_without_flush() {
    let node = Node::new();
    let storage = node.open().await;
    storage
        .write(&tenant("a"), Signal::Logs, logs(&[(1, "one"), (2, "two")]))
        .await
        .unwrap();
    storage
        .write(&tenant("b"), Signal::Logs, logs(&[(3, "three")]))
        .await
        .unwrap();
    assert_eq!(bodies(&storage, "a").await, ["one", "two"]);
    // A crash: no flush, no close.
    drop(storage);
    let storage = node.open().await;
    assert_eq!(bodies(&storage, "a").await, ["one", "two"]);
    assert_eq!(bodies(&storage, "b").await, ["three"]);
    assert_eq!(
        storage
            .wal_stats()
            .unwrap()
            .replayed_records
            .load(Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn flushed_rows_are_not_replayed_twice() {
    let node = Node::new();
    let storage = node.open().await;
    let t = tenant("a");
    storage
        .write(&t, Signal::Logs, logs(&[(1, "flushed")]))
        .await
        .unwrap();
    storage.flush_all().await.unwrap();
    storage
        .write(&t, Signal::Logs, logs(&[(2, "buffered")]))
        .await
        .unwrap();
    let snapshot = storage.snapshot(&t, Signal::Logs, TimeRange::ALL);
    assert_eq!((snapshot.files.len(), snapshot.batches.len()), (1, 1));
    drop(storage);
    // The WAL still holds both records (the segment was not sealed); the watermark says the
    // first is in Parquet.
    let storage = node.open().await;
    assert_eq!(bodies(&storage, "a").await, ["buffered", "flushed"]);
    assert_eq!(
        storage
            .wal_stats()
            .unwrap()
            .replayed_records
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn close_flushes_everything_and_releases_the_wal() {
    let node = Node::new();
    let storage = node.open().await;
    let t = tenant("a");
    // Two hours: two files.
    storage
        .write(
            &t,
            Signal::Logs,
            logs(&[(HOUR_NS + 5, "h1"), (2 * HOUR_NS + 5, "h2")]),
        )
        .await
        .unwrap();
    storage.close().await;
    assert_eq!(storage.buffered_bytes(), 0);
    let snapshot = storage.snapshot(&t, Signal::Logs, TimeRange::ALL);
    assert_eq!(snapshot.files.len(), 2);
    assert!(snapshot.batches.is_empty());
    // Pruning by time picks the second hour only.
    let later = storage.snapshot(
        &t,
        Signal::Logs,
        TimeRange {
            start: Some(2 * HOUR_NS),
            end: None,
        },
    );
    assert_eq!((later.files.len(), later.files_pruned), (1, 1));
    assert!(later.files[0].path.contains("/date=1970-01-01/hour=02/"));
    drop(storage);
    let storage = node.open().await;
    assert_eq!(bodies(&storage, "a").await, ["h1", "h2"]);
    assert_eq!(
        storage
            .wal_stats()
            .unwrap()
            .replayed_records
            .load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_full_buffer_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(
        Arc::new(object_store::memory::InMemory::new()),
        Arc::new(
            SqlCatalog::connect(&format!("sqlite://{}/c.db", dir.path().display()))
                .await
                .unwrap(),
        ),
        StorageConfig {
            max_total_buffer_bytes: 1,
            ..StorageConfig::default()
        },
    )
    .await
    .unwrap();
    let t = tenant("a");
    storage
        .write(&t, Signal::Logs, logs(&[(1, "x")]))
        .await
        .unwrap();
    assert!(matches!(
        storage.write(&t, Signal::Logs, logs(&[(2, "y")])).await,
        Err(Error::BufferFull)
    ));
    storage.flush_all().await.unwrap();
    storage
        .write(&t, Signal::Logs, logs(&[(3, "z")]))
        .await
        .unwrap();
    assert_eq!(bodies(&storage, "a").await, ["x", "z"]);
}

#[tokio::test]
async fn writes_of_the_wrong_schema_are_refused() {
    let node = Node::new();
    let storage = node.open().await;
    let wrong = RecordBatch::new_empty(crate::schema::spans_schema());
    // Empty batches are a no-op whatever their schema.
    storage
        .write(&tenant("a"), Signal::Logs, wrong)
        .await
        .unwrap();
    let spans = logs(&[(1, "x")]);
    assert!(matches!(
        storage.write(&tenant("a"), Signal::Spans, spans).await,
        Err(Error::Schema { .. })
    ));
}
