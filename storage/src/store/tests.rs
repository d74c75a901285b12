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
        self.open_with(|_| {}).await
    }

    async fn open_with(&self, configure: impl FnOnce(&mut StorageConfig)) -> Arc<Storage> {
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
        let mut config = StorageConfig {
            wal: Some(WalConfig::new(self.dir.path().join("wal"))),
            node_id: "node-a".into(),
            ..StorageConfig::default()
        };
        configure(&mut config);
        Storage::open(store, catalog, config).await.unwrap()
    }

    fn objects_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("objects")
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
        batches.extend(crate::resources::read_parquet(bytes).unwrap());
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

/// Replays request records with a decoder that reads the request as one log body and
/// refuses the body "refuse".
fn body_decoder() -> crate::wal::RequestDecoder {
    crate::wal::RequestDecoder::new(|_, request, received_ns| {
        match std::str::from_utf8(request).unwrap() {
            "refuse" => Err("refused".into()),
            body => Ok(Some(logs(&[(received_ns, body)]))),
        }
    })
}

#[tokio::test]
async fn request_records_the_decoder_refuses_at_start_are_counted() {
    let node = Node::new();
    let with_decoder = |config: &mut StorageConfig| {
        config.wal.as_mut().unwrap().decoder = Some(body_decoder());
    };
    let storage = node.open_with(with_decoder).await;
    let t = tenant("a");
    for (time, body) in [(1, "kept"), (2, "refuse")] {
        let source = crate::wal::SourceRequest {
            received_ns: time,
            protobuf: bytes::Bytes::from_static(body.as_bytes()),
        };
        storage
            .write_converted(&t, Signal::Logs, logs(&[(time, body)]), Some(source))
            .await
            .unwrap();
    }
    drop(storage);
    let storage = node.open_with(with_decoder).await;
    assert_eq!(bodies(&storage, "a").await, ["kept"]);
    let stats = storage.wal_stats().unwrap();
    assert_eq!(
        (
            stats.replayed_records.load(Ordering::Relaxed),
            stats.refused_records.load(Ordering::Relaxed),
        ),
        (1, 1)
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

/// `n` log rows at `time`, all the same size.
fn log_rows(n: usize, time: i64) -> RecordBatch {
    let rows: Vec<(i64, &str)> = (0..n).map(|_| (time, "row")).collect();
    logs(&rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_cannot_overshoot_the_buffer_limit() {
    let node = Node::new();
    let batch = log_rows(20, 1);
    let b = batch.get_array_memory_size();
    let limit = 4 * b;
    let storage = node.open_with(|c| c.max_total_buffer_bytes = limit).await;
    let writes: Vec<_> = (0..64)
        .map(|_| {
            let storage = storage.clone();
            let batch = batch.clone();
            tokio::spawn(async move { storage.write(&tenant("a"), Signal::Logs, batch).await })
        })
        .collect();
    let mut accepted = 0;
    for write in writes {
        match write.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(Error::BufferFull) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(accepted >= 1);
    // Every write passed admission at once; only those that fit were let in.
    assert!(
        storage.buffered_bytes() <= limit + b,
        "buffered {} for a limit of {limit} and batches of {b}",
        storage.buffered_bytes()
    );
    assert_eq!(
        storage.buffered_bytes(),
        accepted * b,
        "nothing refused is stored"
    );
    assert_eq!(
        storage.tables.admitted.load(Ordering::Acquire),
        storage.buffered_bytes(),
        "every reservation became buffered bytes"
    );
    assert_eq!(
        storage
            .stats()
            .writes_refused_memory
            .load(Ordering::Relaxed),
        64 - accepted as u64
    );
    assert!(storage.over_memory_limit() || accepted * b < limit);
}

#[tokio::test]
async fn a_failed_write_releases_its_reservation() {
    let node = Node::new();
    let storage = node
        .open_with(|c| {
            let wal = c.wal.as_mut().unwrap();
            wal.max_bytes = 1;
        })
        .await;
    let t = tenant("a");
    storage
        .write(&t, Signal::Logs, log_rows(5, 1))
        .await
        .unwrap();
    assert!(matches!(
        storage.write(&t, Signal::Logs, log_rows(5, 2)).await,
        Err(Error::WalFull)
    ));
    assert_eq!(
        storage.tables.admitted.load(Ordering::Acquire),
        storage.buffered_bytes()
    );
    assert_eq!(
        storage.buffered_bytes(),
        log_rows(5, 1).get_array_memory_size()
    );
}

#[tokio::test]
async fn the_memory_check_refuses_like_a_write() {
    let node = Node::new();
    let batch = log_rows(5, 1);
    let b = batch.get_array_memory_size();
    let storage = node.open_with(|c| c.max_total_buffer_bytes = b).await;
    assert!(!storage.over_memory_limit());
    storage.check_memory_limit().unwrap();
    storage
        .write(&tenant("a"), Signal::Logs, batch)
        .await
        .unwrap();
    assert!(storage.over_memory_limit());
    assert!(matches!(
        storage.check_memory_limit(),
        Err(Error::BufferFull)
    ));
    assert_eq!(
        storage
            .stats()
            .writes_refused_memory
            .load(Ordering::Relaxed),
        1
    );
    storage.flush_all().await.unwrap();
    assert!(!storage.over_memory_limit());
    storage.check_memory_limit().unwrap();
}

#[tokio::test]
async fn over_the_process_memory_limit_writes_are_refused_and_the_buffer_flushed() {
    let node = Node::new();
    let t = tenant("a");
    let b = log_rows(5, 1).get_array_memory_size();
    // A buffer of one batch is large enough to be sealed under memory pressure, too small to
    // be sealed for its size.
    let storage = node
        .open_with(|c| {
            c.memory_limit = 1000;
            c.max_buffer_bytes = PRESSURE_SEAL_DIVISOR * b;
        })
        .await;
    storage
        .write(&t, Signal::Logs, log_rows(5, 1))
        .await
        .unwrap();
    assert!(!storage.over_memory_limit());

    // The soft limit is 80 % of the limit.
    assert!(!storage.memory().observe(799));
    storage.check_memory_limit().unwrap();
    assert!(storage.memory().observe(800));
    assert!(storage.over_memory_limit());
    let refused = storage.check_memory_limit().unwrap_err();
    assert!(matches!(refused, Error::MemoryLimit { .. }), "{refused}");
    assert!(refused.to_string().contains("memory limit"), "{refused}");
    match storage.write(&t, Signal::Logs, log_rows(5, 2)).await {
        Err(Error::MemoryLimit { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        storage
            .stats()
            .writes_refused_memory
            .load(Ordering::Relaxed),
        2
    );
    // The refusal asked for the largest buffer to be flushed, due or not.
    assert!(storage.tables.pressure.load(Ordering::Acquire));
    assert_eq!(storage.flush(false).await, 0);
    let snapshot = storage.snapshot(&t, Signal::Logs, TimeRange::ALL);
    assert_eq!((snapshot.files.len(), snapshot.batches.len()), (1, 0));

    // Under the soft limit again, writes are taken.
    assert!(!storage.memory().observe(100));
    storage
        .write(&t, Signal::Logs, log_rows(5, 3))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_memory_sampler_compares_the_resident_set_with_the_limit() {
    let node = Node::new();
    // This process is resident for more than 80 % of a kibibyte.
    let small = node.open_with(|c| c.memory_limit = 1024).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(small.clone().run_memory_sampler(
        Duration::from_millis(5),
        async move {
            let _ = stopped.await;
        },
    ));
    while !small.over_memory_limit() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(small.memory().resident() > 1024);
    assert!(small.tables.pressure.load(Ordering::Acquire));
    assert!(matches!(
        small.check_memory_limit(),
        Err(Error::MemoryLimit { .. })
    ));
    stop.send(()).unwrap();
    sampler.await.unwrap();

    // Without a limit the sampler returns at once and nothing is refused.
    let other = Node::new();
    let unlimited = other.open_with(|_| {}).await;
    unlimited
        .clone()
        .run_memory_sampler(Duration::from_millis(5), std::future::pending())
        .await;
    assert_eq!(unlimited.memory().resident(), 0);
    unlimited.check_memory_limit().unwrap();
}

#[tokio::test]
async fn a_buffer_is_sealed_on_insert_at_flush_max_bytes() {
    let node = Node::new();
    let b = log_rows(10, 1).get_array_memory_size();
    // Each batch fills a buffer on its own: each becomes its own flush, whatever the flusher
    // is doing meanwhile.
    let storage = node.open_with(|c| c.max_buffer_bytes = b).await;
    let t = tenant("a");
    for i in 0..3 {
        storage
            .write(&t, Signal::Logs, log_rows(10, 1 + i))
            .await
            .unwrap();
    }
    storage.flush_all().await.unwrap();
    let snapshot = storage.snapshot(&t, Signal::Logs, TimeRange::ALL);
    assert_eq!(snapshot.files.len(), 3);
    assert!(snapshot.files.iter().all(|f| f.rows == 10));
    assert!(snapshot.batches.is_empty());
}

#[tokio::test]
async fn a_failed_flush_keeps_its_encoded_files_for_the_retry() {
    let node = Node::new();
    let storage = node.open().await;
    let t = tenant("a");
    storage
        .write(&t, Signal::Logs, logs(&[(1, "one"), (HOUR_NS + 1, "two")]))
        .await
        .unwrap();
    // The object store fails: its directory is now a file.
    let objects = node.objects_dir();
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::write(&objects, b"not a directory").unwrap();
    assert_eq!(storage.flush(true).await, 1);
    assert_eq!(storage.flush(true).await, 1);
    let stats = storage.stats();
    assert_eq!(stats.flush_errors.load(Ordering::Relaxed), 2);
    assert_eq!(stats.flushes_encoded.load(Ordering::Relaxed), 1);
    // Still queryable from the buffer.
    assert_eq!(bodies(&storage, "a").await, ["one", "two"]);
    // The store is back: the files encoded the first time are written.
    std::fs::remove_file(&objects).unwrap();
    std::fs::create_dir(&objects).unwrap();
    assert_eq!(storage.flush(true).await, 0);
    assert_eq!(stats.flushes_encoded.load(Ordering::Relaxed), 1);
    assert_eq!(stats.files_written.load(Ordering::Relaxed), 2);
    assert_eq!(storage.buffered_bytes(), 0);
    assert_eq!(storage.tables.admitted.load(Ordering::Acquire), 0);
    assert_eq!(bodies(&storage, "a").await, ["one", "two"]);
    drop(storage);
    let storage = node.open().await;
    assert_eq!(bodies(&storage, "a").await, ["one", "two"]);
}

#[tokio::test]
async fn a_refusal_for_memory_seals_the_largest_buffer() {
    let node = Node::new();
    let b = log_rows(10, 1).get_array_memory_size();
    // Two tables cannot both reach --flush-max-bytes under this limit, and none is old enough
    // to be due: without sealing under pressure, ingest would stall for an hour.
    let storage = node
        .open_with(|c| {
            c.max_buffer_bytes = 32 * b;
            c.max_total_buffer_bytes = 6 * b;
            c.max_buffer_age = Duration::from_secs(3600);
        })
        .await;
    for i in 0..4 {
        storage
            .write(&tenant("big"), Signal::Logs, log_rows(10, 1 + i))
            .await
            .unwrap();
    }
    for i in 0..2 {
        storage
            .write(&tenant("small"), Signal::Logs, log_rows(10, 1 + i))
            .await
            .unwrap();
    }
    // Nothing is due, so a pass writes nothing.
    assert_eq!(storage.flush(false).await, 0);
    assert_eq!(storage.stats().files_written.load(Ordering::Relaxed), 0);
    assert!(matches!(
        storage
            .write(&tenant("small"), Signal::Logs, log_rows(10, 9))
            .await,
        Err(Error::BufferFull)
    ));
    // The refusal makes the next pass seal the largest buffer.
    assert_eq!(storage.flush(false).await, 0);
    let big = storage.snapshot(&tenant("big"), Signal::Logs, TimeRange::ALL);
    assert_eq!((big.files.len(), big.batches.len()), (1, 0));
    let small = storage.snapshot(&tenant("small"), Signal::Logs, TimeRange::ALL);
    assert_eq!((small.files.len(), small.batches.len()), (0, 2));
    assert_eq!(storage.buffered_bytes(), 2 * b);
    storage
        .write(&tenant("small"), Signal::Logs, log_rows(10, 9))
        .await
        .unwrap();
    // One seal per refusal: the next pass is back to normal.
    assert_eq!(storage.flush(false).await, 0);
    assert_eq!(storage.stats().files_written.load(Ordering::Relaxed), 1);
}
