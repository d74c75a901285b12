//! Compaction, retention and garbage collection over a real SQLite catalog and a local
//! object store.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::compute::concat_batches;
use object_store::{ObjectStore, PutPayload};

use super::*;
use crate::objects::object_store_from_url;
use crate::schema::logs_schema;
use crate::{SqlCatalog, StorageConfig, TimeRange};

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
                        Arc::new(StringArray::from(vec!["svc"; n]))
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

/// Reads a whole Parquet object.
async fn read_file(store: &Arc<dyn ObjectStore>, file: &FileMeta) -> Result<Vec<RecordBatch>> {
    let bytes = store
        .get(&Path::from(file.path.as_str()))
        .await?
        .bytes()
        .await?;
    crate::resources::read_parquet(bytes)
}

struct Fixture {
    dir: tempfile::TempDir,
    storage: Arc<Storage>,
}

async fn fixture(maintenance: MaintenanceConfig) -> Fixture {
    fixture_with(StorageConfig {
        maintenance,
        ..StorageConfig::default()
    })
    .await
}

async fn fixture_with(config: StorageConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store_from_url(&format!("file://{}/objects", dir.path().display())).unwrap();
    let catalog = Arc::new(
        SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let storage = Storage::open(store, catalog, config).await.unwrap();
    Fixture { dir, storage }
}

fn t(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// Every body of a tenant's logs as a query would see them: files ∪ buffer.
async fn bodies(storage: &Storage, tenant: &str) -> Vec<String> {
    let snapshot = storage.snapshot(&t(tenant), Signal::Logs, TimeRange::ALL);
    let mut batches = snapshot.batches.clone();
    for file in &snapshot.files {
        batches.extend(read_file(&storage.object_store(), file).await.unwrap());
    }
    let all = concat_batches(&logs_schema(), &batches).unwrap();
    let body = all.column_by_name("body").unwrap().as_string::<i32>();
    let mut out: Vec<String> = (0..body.len()).map(|i| body.value(i).to_string()).collect();
    out.sort();
    out
}

/// Writes and flushes one file per row.
async fn files_of(storage: &Storage, tenant: &str, rows: &[(i64, &str)]) {
    for row in rows {
        storage
            .write(&t(tenant), Signal::Logs, logs(&[*row]))
            .await
            .unwrap();
        storage.flush_all().await.unwrap();
    }
}

fn objects(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn compaction_merges_small_files_of_a_partition_into_one_sorted_file() {
    let f = fixture(MaintenanceConfig {
        compaction_min_files: 3,
        delete_grace: Duration::ZERO,
        ..MaintenanceConfig::default()
    })
    .await;
    let h = HOUR_NS;
    // Three files in hour 1, one in hour 2 (left alone: nothing to merge it with).
    files_of(
        &f.storage,
        "a",
        &[(h + 30, "c"), (h + 10, "a"), (h + 20, "b"), (2 * h, "d")],
    )
    .await;
    assert_eq!(
        f.storage
            .snapshot(&t("a"), Signal::Logs, TimeRange::ALL)
            .files
            .len(),
        4
    );

    // Before the hour has settled only a partition with enough files is merged.
    let report = f.storage.compact(h + 40).await.unwrap();
    assert_eq!(
        report,
        CompactionReport {
            partitions: 1,
            files_in: 3,
            files_out: 1,
            held_back_for_memory: false,
        }
    );
    // The pass is over: the gauge of running passes is back at zero.
    let stats = f.storage.maintenance_stats();
    assert_eq!(stats.compactions_running.load(Ordering::Relaxed), 0);
    assert_eq!(stats.compactions.load(Ordering::Relaxed), 1);
    let files = f
        .storage
        .snapshot(&t("a"), Signal::Logs, TimeRange::ALL)
        .files;
    assert_eq!(files.len(), 2);
    let merged = files.iter().find(|f| f.level == 1).unwrap();
    assert_eq!(
        (merged.rows, merged.min_time, merged.max_time),
        (3, h + 10, h + 30)
    );
    assert!(merged.path.contains("/date=1970-01-01/hour=01/"));
    // Rows are sorted by (service_name, time) inside the merged file.
    let batches = read_file(&f.storage.object_store(), merged).await.unwrap();
    let times: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("time")
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(times, vec![h + 10, h + 20, h + 30]);
    // Every row exactly once, before and after the old objects are deleted.
    assert_eq!(bodies(&f.storage, "a").await, ["a", "b", "c", "d"]);
    assert_eq!(f.storage.collect_garbage(h + 41).await.unwrap(), 3);
    assert_eq!(objects(f.dir.path()).len(), 2);
    assert_eq!(bodies(&f.storage, "a").await, ["a", "b", "c", "d"]);

    // The catalog agrees: a restart sees the same two files.
    let catalog_files = f.storage.catalog().list_files().await.unwrap();
    assert_eq!(catalog_files.len(), 2);
    assert_eq!(
        f.storage
            .maintenance_stats()
            .compactions
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn settled_partitions_are_merged_even_with_few_files() {
    let f = fixture(MaintenanceConfig {
        compaction_min_files: 10,
        compaction_settle: Duration::from_secs(60),
        ..MaintenanceConfig::default()
    })
    .await;
    let h = HOUR_NS;
    files_of(&f.storage, "a", &[(h, "x"), (h + 1, "y")]).await;
    // The hour is not over yet: nothing to do.
    assert_eq!(f.storage.compact(h + 5).await.unwrap().partitions, 0);
    // An hour and a minute later it is settled.
    assert_eq!(
        f.storage
            .compact(2 * h + 61_000_000_000)
            .await
            .unwrap()
            .files_in,
        2
    );
    assert_eq!(bodies(&f.storage, "a").await, ["x", "y"]);
}

#[tokio::test]
async fn compaction_waits_while_the_node_is_over_its_memory_limit() {
    let f = fixture_with(StorageConfig {
        maintenance: MaintenanceConfig {
            compaction_min_files: 2,
            delete_grace: Duration::ZERO,
            ..MaintenanceConfig::default()
        },
        memory_limit: 1000,
        ..StorageConfig::default()
    })
    .await;
    let h = HOUR_NS;
    files_of(&f.storage, "a", &[(h + 10, "a"), (h + 20, "b")]).await;
    let files = || {
        f.storage
            .snapshot(&t("a"), Signal::Logs, TimeRange::ALL)
            .files
            .len()
    };

    // Over half the limit: the due merge is not started, the files stay as they are (while
    // exports, under 80 %, are still taken).
    f.storage.memory().observe(600);
    assert!(!f.storage.over_memory_limit());
    let report = f.storage.compact(h + 40).await.unwrap();
    assert_eq!(
        report,
        CompactionReport {
            held_back_for_memory: true,
            ..CompactionReport::default()
        }
    );
    assert_eq!(files(), 2);

    // Under it again: the next pass merges them.
    f.storage.memory().observe(100);
    let report = f.storage.compact(h + 40).await.unwrap();
    assert_eq!((report.partitions, report.held_back_for_memory), (1, false));
    assert_eq!(files(), 1);
    assert_eq!(bodies(&f.storage, "a").await, vec!["a", "b"]);
}

#[tokio::test]
async fn compaction_reads_its_inputs_past_the_read_cache() {
    let dir = tempfile::tempdir().unwrap();
    let local = object_store_from_url(&format!("file://{}/objects", dir.path().display())).unwrap();
    let cached = crate::cache::CachedStore::new(local, 64 << 20);
    let stats = cached.stats();
    let catalog = Arc::new(
        SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let config = StorageConfig {
        maintenance: MaintenanceConfig {
            compaction_min_files: 2,
            ..MaintenanceConfig::default()
        },
        ..StorageConfig::default()
    };
    let storage = Storage::open(Arc::new(cached), catalog, config)
        .await
        .unwrap();
    let h = HOUR_NS;
    files_of(&storage, "a", &[(h + 10, "a"), (h + 20, "b")]).await;
    let report = storage.compact(h + 40).await.unwrap();
    assert_eq!(report.files_in, 2);
    assert_eq!(stats.bytes.load(Ordering::Relaxed), 0);
    assert_eq!(stats.misses.load(Ordering::Relaxed), 0);
    assert_eq!(bodies(&storage, "a").await, vec!["a", "b"]);
    // A ranged read of the merged file, as a query makes, does go through the cache.
    let merged = storage
        .snapshot(&t("a"), Signal::Logs, TimeRange::ALL)
        .files;
    let path = Path::from(merged[0].path.as_str());
    storage.object_store().get_range(&path, 0..4).await.unwrap();
    assert!(stats.bytes.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn a_settled_hours_lone_flush_file_is_rewritten_once() {
    let f = fixture(MaintenanceConfig {
        compaction_min_files: 4,
        compaction_settle: Duration::from_secs(600),
        delete_grace: Duration::ZERO,
        ..MaintenanceConfig::default()
    })
    .await;
    let h = HOUR_NS;
    files_of(&f.storage, "a", &[(h + 10, "a")]).await;
    let level = || {
        let files = f
            .storage
            .snapshot(&t("a"), Signal::Logs, TimeRange::ALL)
            .files;
        assert_eq!(files.len(), 1);
        files[0].level
    };
    assert_eq!(level(), 0);
    // The hour is not settled yet: more files may come, it is left alone.
    let report = f.storage.compact(2 * h).await.unwrap();
    assert_eq!(report.partitions, 0);
    assert_eq!(level(), 0);
    // Ten minutes after the hour: rewritten at the compaction level, rows unchanged.
    let settled = 2 * h + 600 * 1_000_000_000;
    let report = f.storage.compact(settled).await.unwrap();
    assert_eq!(
        (report.partitions, report.files_in, report.files_out),
        (1, 1, 1)
    );
    assert_eq!(level(), 1);
    assert_eq!(bodies(&f.storage, "a").await, vec!["a"]);
    // Once only.
    let report = f.storage.compact(settled + h).await.unwrap();
    assert_eq!(report.partitions, 0);
}

#[tokio::test]
async fn a_query_snapshot_taken_before_compaction_still_reads_every_row_once() {
    let f = fixture(MaintenanceConfig {
        compaction_min_files: 2,
        ..MaintenanceConfig::default()
    })
    .await;
    files_of(&f.storage, "a", &[(10, "p"), (20, "q")]).await;
    let before = f.storage.snapshot(&t("a"), Signal::Logs, TimeRange::ALL);
    f.storage.compact(30).await.unwrap();
    // The old files are still there (grace period), so the old snapshot reads them.
    let mut rows = 0;
    for file in &before.files {
        rows += read_file(&f.storage.object_store(), file)
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>();
    }
    assert_eq!(rows, 2);
    // Garbage collection keeps them until the grace has passed.
    assert_eq!(f.storage.collect_garbage(31).await.unwrap(), 0);
    assert_eq!(objects(f.dir.path()).len(), 3);
}

#[tokio::test]
async fn retention_drops_expired_partitions_per_tenant_and_signal() {
    let day = 24 * HOUR_NS;
    let mut policy = RetentionPolicy {
        default: Some(Duration::from_secs(7 * 86_400)),
        ..RetentionPolicy::default()
    };
    policy.tenants.insert(
        "short".into(),
        TenantRetention {
            default: None,
            signals: [(Signal::Logs, Duration::from_secs(86_400))].into(),
        },
    );
    let f = fixture(MaintenanceConfig {
        retention: policy,
        delete_grace: Duration::ZERO,
        ..MaintenanceConfig::default()
    })
    .await;
    let now = 30 * day;
    files_of(
        &f.storage,
        "long",
        &[(now - 10 * day, "old"), (now - 2 * day, "recent")],
    )
    .await;
    files_of(
        &f.storage,
        "short",
        &[(now - 2 * day, "old"), (now - HOUR_NS, "recent")],
    )
    .await;
    assert_eq!(f.storage.apply_retention(now).await.unwrap(), 2);
    assert_eq!(bodies(&f.storage, "long").await, ["recent"]);
    assert_eq!(bodies(&f.storage, "short").await, ["recent"]);
    let stats = f.storage.maintenance_stats();
    assert_eq!(stats.retention_files_deleted.load(Ordering::Relaxed), 2);
    assert_eq!(stats.retention_rows_deleted.load(Ordering::Relaxed), 2);
    assert_eq!(f.storage.collect_garbage(now).await.unwrap(), 2);
    assert_eq!(objects(f.dir.path()).len(), 2);
    // Nothing more to drop.
    assert_eq!(f.storage.apply_retention(now).await.unwrap(), 0);
}

#[test]
fn the_most_specific_retention_applies() {
    let mut policy = RetentionPolicy {
        default: Some(Duration::from_secs(30)),
        signals: [(Signal::Spans, Duration::from_secs(7))].into(),
        tenants: HashMap::new(),
    };
    policy.tenants.insert(
        "a".into(),
        TenantRetention {
            default: Some(Duration::from_secs(90)),
            signals: [(Signal::Logs, Duration::from_secs(3))].into(),
        },
    );
    let secs = |tenant: &str, s| policy.for_table(&t(tenant), s).map(|d| d.as_secs());
    assert_eq!(secs("a", Signal::Logs), Some(3));
    assert_eq!(secs("a", Signal::Spans), Some(90));
    assert_eq!(secs("b", Signal::Spans), Some(7));
    assert_eq!(secs("b", Signal::Metrics), Some(30));
    assert_eq!(
        RetentionPolicy::default().for_table(&t("b"), Signal::Logs),
        None
    );
}

#[tokio::test]
async fn orphaned_objects_are_deleted_once_old_enough() {
    let f = fixture(MaintenanceConfig {
        orphan_age: Duration::from_secs(3600),
        ..MaintenanceConfig::default()
    })
    .await;
    files_of(&f.storage, "a", &[(1, "kept")]).await;
    // A flush that wrote its file and died before the catalog row.
    let orphan = Path::from("tenant=a/signal=logs/date=1970-01-01/hour=00/orphan.parquet");
    f.storage
        .object_store()
        .put(&orphan, PutPayload::from_static(b"PAR1"))
        .await
        .unwrap();
    let now = now_ns();
    // Too young: kept (it could be a flush in progress).
    assert_eq!(f.storage.collect_garbage(now).await.unwrap(), 0);
    assert_eq!(objects(f.dir.path()).len(), 2);
    // Old enough: deleted; the catalogued file stays.
    let later = now + 2 * 3600 * 1_000_000_000;
    assert_eq!(f.storage.collect_garbage(later).await.unwrap(), 1);
    assert_eq!(objects(f.dir.path()).len(), 1);
    assert_eq!(bodies(&f.storage, "a").await, ["kept"]);
    assert_eq!(
        f.storage
            .maintenance_stats()
            .orphans_deleted
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_swap_of_files_someone_else_removed_changes_nothing() {
    let f = fixture(MaintenanceConfig::default()).await;
    files_of(&f.storage, "a", &[(1, "x"), (2, "y")]).await;
    let files: Vec<FileMeta> = f.storage.catalog().list_files().await.unwrap();
    f.storage
        .catalog()
        .replace_files(&files[..1], &[], 0)
        .await
        .unwrap();
    // The first file is gone: a swap that removes both must fail and leave the second.
    let err = f.storage.catalog().replace_files(&files, &[], 0).await;
    assert!(matches!(err, Err(Error::Conflict(_))));
    assert_eq!(
        f.storage.catalog().list_files().await.unwrap(),
        files[1..].to_vec()
    );
}

/// A logs batch with the given (service, time, body) rows.
fn service_logs(rows: &[(String, i64, String)]) -> RecordBatch {
    let base = logs(
        &rows
            .iter()
            .map(|(_, time, body)| (*time, body.as_str()))
            .collect::<Vec<_>>(),
    );
    let schema = base.schema();
    let at = schema.index_of("service_name").unwrap();
    let mut columns = base.columns().to_vec();
    columns[at] = Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.0.as_str()),
    ));
    RecordBatch::try_new(schema, columns).unwrap()
}

fn rows_of(batches: &[RecordBatch]) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for b in batches {
        let service = b.column_by_name("service_name").unwrap().as_string::<i32>();
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        let body = b.column_by_name("body").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                service.value(i).to_string(),
                time.value(i),
                body.value(i).to_string(),
            ));
        }
    }
    out
}

/// Puts sorted files of `rows_each` rows into an in-memory store; returns them and every row.
async fn sorted_inputs(
    store: &Arc<dyn ObjectStore>,
    files: usize,
    rows_each: usize,
) -> (Vec<FileMeta>, Vec<(String, i64, String)>) {
    let mut metas = Vec::new();
    let mut all = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for f in 0..files {
        let mut rows: Vec<(String, i64, String)> = (0..rows_each)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (
                    format!("svc-{}", x % 7),
                    HOUR_NS + (x % 1_000_000) as i64,
                    format!("file {f} row {i}"),
                )
            })
            .collect();
        rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all.extend(rows.iter().cloned());
        let bytes = crate::parquet_file::encode(Signal::Logs, &service_logs(&rows)).unwrap();
        let path = format!("in/{f}.parquet");
        store
            .put(&Path::from(path.as_str()), bytes.clone().into())
            .await
            .unwrap();
        metas.push(FileMeta {
            id: f.to_string(),
            tenant: t("a"),
            signal: Signal::Logs,
            path,
            min_time: rows.iter().map(|r| r.1).min().unwrap_or(HOUR_NS),
            max_time: rows.iter().map(|r| r.1).max().unwrap_or(HOUR_NS),
            rows: rows.len() as i64,
            size_bytes: bytes.len() as i64,
            level: 0,
            created_at: 0,
        });
    }
    (metas, all)
}

/// Runs a merge on a blocking thread, as compaction does.
async fn run_merge(
    store: &Arc<dyn ObjectStore>,
    inputs: Vec<FileMeta>,
    out: &MergeOutput,
    cancelled: bool,
) -> Result<Option<crate::merge::MergedFile>> {
    let handle = tokio::runtime::Handle::current();
    let (store, out) = (store.clone(), out.clone());
    tokio::task::spawn_blocking(move || {
        let cancel = std::sync::atomic::AtomicBool::new(cancelled);
        merge_sorted_files(&handle, &store, Signal::Logs, &inputs, &out, &cancel)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_merge_equals_a_full_sort_across_batch_and_part_boundaries() {
    use crate::merge::{INPUT_BATCH_ROWS, OUTPUT_BATCH_ROWS};
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    // Several input batches per file and several output batches, with a part size small
    // enough that the output is a multipart upload.
    let rows_each = 2 * INPUT_BATCH_ROWS + 123;
    let (inputs, mut all) = sorted_inputs(&store, 6, rows_each).await;
    assert!(all.len() > 2 * OUTPUT_BATCH_ROWS);
    let out = MergeOutput {
        part_bytes: 64 * 1024,
        ..MergeOutput::new(Path::from("out/merged.parquet"), COMPACTION_ZSTD_LEVEL)
    };
    let merged = run_merge(&store, inputs, &out, false)
        .await
        .unwrap()
        .unwrap();
    let object = store.head(&out.path).await.unwrap();
    assert_eq!(merged.size_bytes as u64, object.size);
    assert!(
        object.size > out.part_bytes as u64,
        "the test must cross a part boundary"
    );
    let meta = FileMeta {
        id: "out".into(),
        tenant: t("a"),
        signal: Signal::Logs,
        path: out.path.to_string(),
        min_time: merged.min_time,
        max_time: merged.max_time,
        rows: merged.rows,
        size_bytes: merged.size_bytes,
        level: 1,
        created_at: 0,
    };
    let got = rows_of(&read_file(&store, &meta).await.unwrap());
    assert_eq!(merged.rows as usize, all.len());
    assert_eq!(merged.min_time, all.iter().map(|r| r.1).min().unwrap());
    assert_eq!(merged.max_time, all.iter().map(|r| r.1).max().unwrap());
    // Sorted by (service, time); the same multiset of rows as the inputs.
    assert!(
        got.windows(2)
            .all(|w| (&w[0].0, w[0].1) <= (&w[1].0, w[1].1))
    );
    let mut got_sorted = got.clone();
    got_sorted.sort();
    all.sort();
    assert_eq!(got_sorted, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_merge_writes_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let (inputs, _) = sorted_inputs(&store, 3, 5000).await;
    let out = MergeOutput {
        part_bytes: 16 * 1024,
        ..MergeOutput::new(Path::from("out/cancelled.parquet"), COMPACTION_ZSTD_LEVEL)
    };
    let result = run_merge(&store, inputs, &out, true).await;
    assert!(matches!(result, Err(Error::ShuttingDown)), "{result:?}");
    assert!(matches!(
        store.head(&out.path).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_only_empty_files_writes_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let (inputs, _) = sorted_inputs(&store, 2, 0).await;
    let out = MergeOutput::new(Path::from("out/empty.parquet"), COMPACTION_ZSTD_LEVEL);
    let merged = run_merge(&store, inputs, &out, false).await.unwrap();
    assert_eq!(merged, None);
    assert!(store.head(&out.path).await.is_err());
}
