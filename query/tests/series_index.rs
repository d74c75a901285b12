//! Label filters on `metrics` read only the matching series of each Parquet file (the series
//! index) and answer exactly what a scan of every row answers: the same points written to a
//! tenant whose data stays in the write buffer (never indexed) are the reference.

mod common;

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::util::pretty::pretty_format_batches;
use datafusion::common::DFSchema;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::DefaultParquetFileReaderFactory;
use datafusion::prelude::SessionContext;
use strata_query::series_index::{Selected, SeriesIndex};
use strata_query::{QueryConfig, QueryEngine, QueryResult};
use strata_storage::catalog::FileMeta;
use strata_storage::schema::schema_for;
use strata_storage::{Signal, Storage, TenantId, TimeRange};

const T0: i64 = 1_767_571_200_000_000_000; // 2026-01-05T00:00:00Z

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn string_attr(key: &str, value: &str) -> String {
    format!(r#"{{"key":"{key}","value":{{"stringValue":"{value}"}}}}"#)
}

/// Gauges `m0`..`m2` of `hosts`, two `cpu` attribute values each, 40 points 10 s apart.
fn request(hosts: std::ops::Range<usize>) -> String {
    let mut resources = Vec::new();
    for h in hosts {
        let mut metrics = Vec::new();
        for m in 0..3 {
            let mut points = Vec::new();
            for cpu in 0..2 {
                for p in 0..40i64 {
                    let time = T0 + p * 10_000_000_000;
                    let value = (h * 100 + m * 10 + cpu) as f64 + p as f64 / 8.0;
                    points.push(format!(
                        r#"{{"timeUnixNano":"{time}","asDouble":{value},"attributes":[{}]}}"#,
                        string_attr("cpu", &format!("cpu{cpu}"))
                    ));
                }
            }
            metrics.push(format!(
                r#"{{"name":"m{m}","gauge":{{"dataPoints":[{}]}}}}"#,
                points.join(",")
            ));
        }
        let attributes = [
            string_attr("host", &format!("h{h:02}")),
            string_attr("region", if h % 2 == 0 { "east" } else { "west" }),
            string_attr("service.name", &format!("svc-{}", h % 4)),
        ];
        resources.push(format!(
            r#"{{"resource":{{"attributes":[{}]}},"scopeMetrics":[{{"metrics":[{}]}}]}}"#,
            attributes.join(","),
            metrics.join(",")
        ));
    }
    format!(r#"{{"resourceMetrics":[{}]}}"#, resources.join(","))
}

async fn write(storage: &Storage, id: &str, hosts: std::ops::Range<usize>) {
    let request = strata_proto::json::decode_metrics(request(hosts).as_bytes()).unwrap();
    let converted = strata_ingest::convert::metrics_to_batch(&request);
    let batch = converted.batch.unwrap();
    storage
        .write(&tenant(id), Signal::Metrics, batch)
        .await
        .unwrap();
}

/// `indexed` has hosts 0–9 in one Parquet file and 10–19 in another; `buffered` has the same
/// points in its write buffer.
async fn engine(dir: &tempfile::TempDir) -> QueryEngine {
    QueryEngine::with_executor(
        storage(dir).await,
        QueryConfig {
            target_partitions: 2,
            ..QueryConfig::default()
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

async fn storage(dir: &tempfile::TempDir) -> Arc<Storage> {
    let storage = common::memory_storage(dir).await;
    write(&storage, "indexed", 0..10).await;
    storage.flush_all().await.unwrap();
    write(&storage, "indexed", 10..20).await;
    storage.flush_all().await.unwrap();
    write(&storage, "buffered", 0..10).await;
    write(&storage, "buffered", 10..20).await;
    storage
}

async fn run(engine: &QueryEngine, id: &str, sql: &str) -> QueryResult {
    engine
        .sql(&tenant(id), sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(result: &QueryResult) -> String {
    pretty_format_batches(&result.batches).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_filters_answer_as_a_full_scan_does() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let filters = [
        "resource_attributes['host'] = 'h03'",
        "resource_attributes['host'] IN ('h01', 'h15')",
        "attributes['cpu'] = 'cpu1' AND metric_name = 'm2'",
        "resource_attributes['host'] = 'h03' OR attributes['cpu'] = 'cpu0'",
        "resource_attributes['host'] = 'nowhere'",
        "resource_attributes['absent'] IS NULL AND resource_attributes['host'] LIKE 'h1%'",
        "service_name = 'svc-3' AND value > 1000",
        "resource_attributes['host'] <> 'h03' AND resource_attributes['region'] = 'east'",
        "metrics.resource_attributes['host'] = 'h12' AND time < TIMESTAMP '2026-01-05T00:03:00Z'",
        "NOT (resource_attributes['region'] = 'west')",
    ];
    let mut checked = String::new();
    for filter in filters {
        let sql = format!(
            "SELECT resource_attributes['host'] AS host, metric_name, attributes['cpu'] AS cpu, \
             count(*) AS points, sum(value) AS total FROM metrics WHERE {filter} \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        );
        let indexed = run(&engine, "indexed", &sql).await;
        let buffered = run(&engine, "buffered", &sql).await;
        assert_eq!(indexed.stats.buffer_batches_scanned, 0, "{filter}");
        assert_eq!(buffered.stats.files_scanned, 0, "{filter}");
        assert_eq!(text(&indexed), text(&buffered), "{filter}");
        writeln!(checked, "{filter}: {} rows", indexed.num_rows()).unwrap();
    }
    // The filters select something (all but one), so the comparison is not of empty results.
    assert_eq!(checked.matches(": 0 rows").count(), 1, "{checked}");
}

/// Expressions of resource attributes — answered once per resource in files that store
/// their resources once, row by row in the buffer — answer the same either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_of_resources_answer_as_the_buffer_does() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let queries = [
        "SELECT upper(resource_attributes['region']) AS region, cardinality(resource_attributes) AS n, \
         count(*) AS points FROM metrics GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT resource_attributes['host'] || '/' || metric_name AS series, count(*) AS points \
         FROM metrics WHERE resource_attributes['region'] = 'east' GROUP BY 1 ORDER BY 1",
        // A top-N on a resource attribute (a dynamic filter in the scan).
        "SELECT resource_attributes['host'] AS host, value FROM metrics \
         ORDER BY resource_attributes['host'] DESC, value DESC LIMIT 5",
        "SELECT count(*) AS points, sum(value) AS total FROM metrics \
         WHERE resource_attributes['host'] IN ('h01', 'h12') AND value > 150",
        "SELECT CAST(substr(resource_attributes['host'], 2) AS INT) % 3 AS k, count(*) AS points \
         FROM metrics WHERE resource_attributes['absent'] IS NULL GROUP BY 1 ORDER BY 1",
    ];
    for sql in queries {
        let indexed = run(&engine, "indexed", sql).await;
        let buffered = run(&engine, "buffered", sql).await;
        assert_eq!(indexed.stats.buffer_batches_scanned, 0, "{sql}");
        assert_eq!(buffered.stats.files_scanned, 0, "{sql}");
        assert!(indexed.num_rows() > 0, "{sql}");
        assert_eq!(text(&indexed), text(&buffered), "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_without_a_matching_series_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let count_where = async |filter: &str| {
        let sql = format!("SELECT count(*) AS n FROM metrics WHERE {filter}");
        run(&engine, "indexed", &sql).await
    };
    let all = run(&engine, "indexed", "SELECT count(*) FROM metrics").await;
    assert_eq!(all.stats.files_scanned, 2);

    // h03 is in the first file only: the second is left out.
    let one = count_where("resource_attributes['host'] = 'h03'").await;
    assert_eq!(text(&one).matches("| 240 |").count(), 1, "{}", text(&one));
    assert_eq!(one.stats.files_scanned, 1);
    assert_eq!(one.stats.files_pruned, 1);

    // No series matches: nothing is read.
    let none = count_where("resource_attributes['host'] = 'nowhere'").await;
    assert_eq!(none.stats.files_scanned, 0);
    assert_eq!(none.stats.bytes_scanned, 0);

    // Filters on other columns are not the index's: every file is read.
    let other = count_where("value > 1000").await;
    assert_eq!(other.stats.files_scanned, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_selects_the_runs_of_matching_series() {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(&dir).await;
    let mut files = storage
        .snapshot(&tenant("indexed"), Signal::Metrics, TimeRange::ALL)
        .files;
    files.sort_by(|a, b| a.id.cmp(&b.id)); // ids sort by creation: hosts 0–9 first
    assert_eq!(files.len(), 2);
    let factory = DefaultParquetFileReaderFactory::new(storage.object_store());
    let ctx = SessionContext::new();
    let schema = DFSchema::try_from(schema_for(Signal::Metrics)).unwrap();
    let index = SeriesIndex::default();
    let select = async |meta: &FileMeta, filter: &str| {
        let filter = ctx.parse_sql_expr(filter, &schema).unwrap();
        let file = PartitionedFile::new(meta.path.clone(), meta.size_bytes as u64);
        index
            .select(&ctx.state(), &factory, &meta.id, &file, &filter)
            .await
            .unwrap()
    };
    // One host: its 3 metrics × 2 cpus × 40 points, out of the file's 10 hosts.
    match select(&files[0], "resource_attributes['host'] = 'h03'").await {
        Selected::Rows(rows) => {
            assert_eq!(rows.row_count(), 240);
            assert_eq!(rows.skipped_row_count(), 2160);
        }
        other => panic!("expected a row selection, got {other:?}"),
    }
    assert!(matches!(
        select(&files[1], "resource_attributes['host'] = 'h03'").await,
        Selected::None
    ));
    // A point attribute: half the series of every host.
    match select(&files[1], "attributes['cpu'] = 'cpu0'").await {
        Selected::Rows(rows) => assert_eq!(rows.row_count(), 1200),
        other => panic!("expected a row selection, got {other:?}"),
    }
    // Every series matches: the file is read whole.
    assert!(matches!(
        select(&files[0], "metric_name LIKE 'm%'").await,
        Selected::All
    ));
    assert!(index.bytes() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_the_map_on_every_row_read_as_before() {
    use datafusion::parquet::arrow::ArrowWriter;
    use strata_storage::parquet_file::{partition_and_sort, writer_properties};
    use strata_storage::resources::{RESOURCE_COLUMN, materialise, parse};

    // Hosts 0–9 in a file of the layout written before resources were stored once: the
    // resource attribute map on every row.
    let dir = tempfile::tempdir().unwrap();
    let (store, catalog) = common::local_store_and_catalog(&dir).await;
    let request = strata_proto::json::decode_metrics(request(0..10).as_bytes()).unwrap();
    let batch = strata_ingest::convert::metrics_to_batch(&request)
        .batch
        .unwrap();
    let [part] =
        <[_; 1]>::try_from(partition_and_sort(Signal::Metrics, &[batch]).unwrap()).unwrap();
    let resources = parse(part.resources.as_deref().unwrap()).unwrap();
    let table = materialise(&schema_for(Signal::Metrics), &part.batch, Some(&resources)).unwrap();
    let mut bytes = Vec::new();
    let props = writer_properties(Signal::Metrics, 1);
    let mut writer = ArrowWriter::try_new(&mut bytes, table.schema(), Some(props)).unwrap();
    writer.write(&table).unwrap();
    writer.close().unwrap();
    common::put_file(
        &store,
        &catalog,
        "mixed",
        Signal::Metrics,
        "tenant=mixed/signal=metrics/earlier.parquet",
        bytes,
        (part.min_time, part.max_time),
        table.num_rows(),
    )
    .await;

    // Hosts 10–19 flushed now, each resource stored once; the same points buffered elsewhere.
    let storage = Storage::open(store, catalog, strata_storage::StorageConfig::default())
        .await
        .unwrap();
    write(&storage, "mixed", 10..20).await;
    storage.flush_all().await.unwrap();
    write(&storage, "buffered", 0..10).await;
    write(&storage, "buffered", 10..20).await;
    let files = storage
        .snapshot(&tenant("mixed"), Signal::Metrics, TimeRange::ALL)
        .files;
    assert_eq!(files.len(), 2);
    let engine = QueryEngine::with_executor(
        storage,
        QueryConfig::default(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    for filter in [
        "true",
        "resource_attributes['host'] IN ('h01', 'h15')",
        "resource_attributes['region'] = 'east' AND attributes['cpu'] = 'cpu1'",
        "resource_attributes['host'] = 'nowhere'",
    ] {
        let sql = format!(
            "SELECT resource_attributes['host'] AS host, resource_attributes, metric_name, \
             count(*) AS points, sum(value) AS total FROM metrics WHERE {filter} \
             GROUP BY 1, 2, 3 ORDER BY 1, 3"
        );
        let mixed = run(&engine, "mixed", &sql).await;
        let buffered = run(&engine, "buffered", &sql).await;
        assert_eq!(buffered.stats.files_scanned, 0, "{filter}");
        assert_eq!(text(&mixed), text(&buffered), "{filter}");
    }
    // `resource` is the files' own: not a column of the table.
    let star = run(&engine, "mixed", "SELECT * FROM metrics LIMIT 1").await;
    assert!(star.batches[0].schema().index_of(RESOURCE_COLUMN).is_err());
    assert_eq!(
        star.batches[0].schema().fields(),
        schema_for(Signal::Metrics).fields()
    );
}
