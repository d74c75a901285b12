//! Logs files store lines by field (`strata_storage::lines`); SQL sees the lines as they came.
//! The same records written to a tenant whose data stays in the write buffer are the
//! reference, and a file of the layout written before (every line whole in `body`) is read
//! beside a flushed one.

mod common;

use std::sync::Arc;

use arrow::util::pretty::pretty_format_batches;
use strata_query::{QueryConfig, QueryEngine};
use strata_storage::{Signal, Storage, TenantId, TimeRange};

const T0: i64 = 1_767_571_200_000_000_000; // 2026-01-05T00:00:00Z

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// Lines of several shapes: access log lines, messages with ids and amounts, words only,
/// numbers that are not stored as numbers, more fields than a line is split into, text
/// with quotes and brackets that do not close, and a record without a body.
fn lines(from: usize, to: usize) -> Vec<Option<String>> {
    (from..to)
        .map(|i| match i % 8 {
            0 => Some(format!(
                "10.0.{}.{} - - [05/Jan/2026:00:00:{:02} +0000] \"GET /api/items/{i} HTTP/1.1\" {} {} \"-\" \"curl/8.{}\" rt=0.{:03}",
                i % 256,
                i % 7,
                i % 60,
                if i % 3 == 0 { 404 } else { 200 },
                1000 + i * 37,
                i % 5,
                i % 1000
            )),
            1 => Some(format!("user u{i} placed order ord_{i:08x} for {}.{:02} EUR", i % 90, i % 100)),
            2 => Some("connection closed by peer".into()),
            3 => Some(format!("ids 007 -0 +{i} 1.2.3.4.5 256.1.1.{} -{i}.50 x{i}", i % 256)),
            4 => Some((0..20).map(|k| (i + k).to_string()).collect::<Vec<_>>().join(" ")),
            5 => Some(format!("unclosed \"quote {i} and [bracket {} key= =1 k=\"v {i}\"", i % 9)),
            6 => None,
            _ => Some(format!("naïve café {i}€ 日本 {}", i * 3)),
        })
        .collect()
}

/// A request of `lines`, the first at `start` seconds after `T0`.
fn request(start: usize, lines: &[Option<String>]) -> String {
    let records: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let time = T0 + (start + i) as i64 * 1_000_000_000;
            let body = match line {
                Some(line) => format!(r#","body":{{"stringValue":{}}}"#, serde_json::to_string(line).unwrap()),
                None => String::new(),
            };
            format!(
                r#"{{"timeUnixNano":"{time}","observedTimeUnixNano":"{}","severityNumber":9{body}}}"#,
                time + 7
            )
        })
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"web"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    )
}

async fn write(storage: &Storage, id: &str, start: usize, lines: &[Option<String>]) {
    common::write_logs(storage, id, request(start, lines).as_bytes(), T0).await;
}

async fn sql(engine: &QueryEngine, id: &str, sql: &str) -> String {
    let result = engine
        .sql(&tenant(id), sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&result.batches).unwrap().to_string()
}

/// Runs each query on `tenant` and on `buffered` (the same records in the write buffer) and
/// checks that they answer the same, with rows.
async fn answers_as_the_buffer(storage: Arc<Storage>, tenant: &str, queries: &[&str]) {
    let engine = QueryEngine::with_executor(
        storage,
        QueryConfig::default(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    for query in queries {
        let answer = sql(&engine, tenant, query).await;
        assert_eq!(answer, sql(&engine, "buffered", query).await, "{query}");
        assert!(answer.lines().count() > 4, "{query}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_stored_by_field_read_as_they_came() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::memory_storage(&dir).await;
    let first = lines(0, 200);
    let second = lines(200, 400);
    // Five shapes of eight are split (the flush splits as this does): their `body` is null in
    // a file, as is that of the records without one.
    let bodies = arrow::array::StringArray::from(first.clone());
    let split = strata_storage::lines::split_column(&bodies);
    assert_eq!(split.body.null_count(), 150);
    // `split`: both halves flushed, one file each; `buffered`: the same records, never flushed.
    write(&storage, "split", 0, &first).await;
    storage.flush_all().await.unwrap();
    write(&storage, "split", 200, &second).await;
    storage.flush_all().await.unwrap();
    write(&storage, "buffered", 0, &first).await;
    write(&storage, "buffered", 200, &second).await;
    assert_eq!(
        storage
            .snapshot(&tenant("split"), Signal::Logs, TimeRange::ALL)
            .files
            .len(),
        2
    );
    answers_as_the_buffer(
        storage,
        "split",
        &[
            "SELECT time, body FROM logs ORDER BY time",
            "SELECT time, body FROM logs WHERE body LIKE '%items/1%' OR body LIKE '%u3%' ORDER BY time",
            "SELECT count(*), count(body), sum(length(body)) FROM logs",
            "SELECT body, count(*) FROM logs WHERE body NOT LIKE '%1%' GROUP BY body ORDER BY body",
            "SELECT time FROM logs WHERE body IS NULL ORDER BY time",
            "SELECT upper(body) FROM logs WHERE body = 'connection closed by peer' LIMIT 1",
            "SELECT time, severity_number FROM logs WHERE time < TIMESTAMP '2026-01-05T00:01:00Z' ORDER BY time DESC LIMIT 5",
            // Searches for a term no number renders: in templates, in text fields, across
            // both, in lines stored whole, negated, and the latest of them.
            "SELECT time, body FROM logs WHERE body LIKE '%placed order%' ORDER BY time",
            "SELECT time, body FROM logs WHERE body LIKE '%GET /api/items/%' ORDER BY time",
            "SELECT time, body FROM logs WHERE body LIKE '%HTTP/%' AND body LIKE '%curl/%' ORDER BY time",
            "SELECT time, body FROM logs WHERE body LIKE '%\" \"curl%' OR body LIKE '%[bracket %' ORDER BY time",
            "SELECT time, body FROM logs WHERE body LIKE '%café%' OR body LIKE '%by peer%' ORDER BY time",
            "SELECT count(*), count(body) FROM logs WHERE body NOT LIKE '%placed%'",
            "SELECT time, body FROM logs WHERE body LIKE '%key= =%' ORDER BY time DESC LIMIT 5",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_every_line_whole_read_as_before() {
    use datafusion::parquet::arrow::ArrowWriter;
    use strata_storage::parquet_file::{partition_and_sort, writer_properties};

    let dir = tempfile::tempdir().unwrap();
    let (store, catalog) = common::local_store_and_catalog(&dir).await;
    // The first half in a file of the earlier layout: the lines whole, no line columns.
    let first = lines(0, 200);
    let request = strata_proto::json::decode_logs(request(0, &first).as_bytes()).unwrap();
    let batch = strata_ingest::convert::logs_to_batch(&request, T0)
        .batch
        .unwrap();
    let [part] = <[_; 1]>::try_from(partition_and_sort(Signal::Logs, &[batch]).unwrap()).unwrap();
    let whole = strata_storage::lines::materialise(&part.batch).unwrap();
    assert!(whole.schema().index_of("body_template").is_err());
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(
        &mut bytes,
        whole.schema(),
        Some(writer_properties(Signal::Logs, 1)),
    )
    .unwrap();
    for kv in part.resources.iter() {
        strata_storage::parquet_file::append_resources(kv, |kv| {
            writer.append_key_value_metadata(kv)
        });
    }
    writer.write(&whole).unwrap();
    writer.close().unwrap();
    common::put_file(
        &store,
        &catalog,
        "mixed",
        Signal::Logs,
        "tenant=mixed/signal=logs/earlier.parquet",
        bytes,
        (part.min_time, part.max_time),
        whole.num_rows(),
    )
    .await;
    // The second half flushed now, its lines stored by field; the same records buffered.
    let storage = Storage::open(store, catalog, strata_storage::StorageConfig::default())
        .await
        .unwrap();
    let second = lines(200, 400);
    write(&storage, "mixed", 200, &second).await;
    storage.flush_all().await.unwrap();
    write(&storage, "buffered", 0, &first).await;
    write(&storage, "buffered", 200, &second).await;
    assert_eq!(
        storage
            .snapshot(&tenant("mixed"), Signal::Logs, TimeRange::ALL)
            .files
            .len(),
        2
    );
    answers_as_the_buffer(
        storage,
        "mixed",
        &[
            "SELECT time, body, resource_attributes FROM logs ORDER BY time",
            "SELECT time, body FROM logs WHERE body LIKE '%GET%' ORDER BY time",
        ],
    )
    .await;
}
