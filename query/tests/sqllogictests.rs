//! sqllogictest runner for Strata's SQL surface.
//!
//! Runs every `tests/slt/*.slt` file against a real node in this process: an in-memory object
//! store, a SQLite catalog in a temporary directory, the storage engine and the query engine.
//! The fixture data (`tests/data/<tenant>/<signal>.{flushed,buffered}.json`, OTLP/JSON) is
//! loaded for the tenants `acme` and `globex` in two steps: the `*.flushed.json` requests are
//! written and flushed to Parquet files, the `*.buffered.json` requests stay in the write
//! buffer, so that every query reads files ∪ buffer. See `tests/data/README.md`.
//!
//! ```text
//! cargo test -p strata-query --test sqllogictests                 # run all files
//! cargo test -p strata-query --test sqllogictests -- spans logs   # files whose name contains a filter
//! cargo test -p strata-query --test sqllogictests -- --complete   # regenerate expected output
//! ```
//!
//! Harness conventions:
//! - every file starts as tenant `acme`; the directive `statement ok` + `SET TENANT <id>`
//!   switches the tenant of the following records (handled here, never sent to DataFusion);
//! - values are rendered as DataFusion's sqllogictest does: `NULL`, strings as they are, the
//!   empty string as `(empty)`, floats rounded to 12 decimals without trailing zeros,
//!   timestamps in RFC 3339 with 0, 3, 6 or 9 fractional digits, nested values (lists, maps,
//!   structs) as compact JSON with floats and timestamps in those same forms (other scalars
//!   as `strata_query::format::cell` has them);
//! - a cell with line breaks (EXPLAIN plans) is split into one row per line, with leading
//!   spaces shown as `-` so that the indentation survives whitespace normalisation;
//! - in `EXPLAIN` output, file names (random UUIDv7s) are replaced by `<uuid>.parquet`;
//! - column types are checked: `I` for integers, `R` for floats and decimals, `T` otherwise.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use serde_json::Value;
use sqllogictest::{
    AsyncDB, DBOutput, DefaultColumnType, Runner, default_normalizer, default_validator,
    strict_column_validator,
};
use strata_query::{QueryConfig, QueryEngine, QueryError, format};
use strata_storage::objects::object_store_from_url;
use strata_storage::{Signal, SqlCatalog, Storage, StorageConfig, TenantId, TimeRange};

/// Tenants of the fixture, each with its own directory under `tests/data/`.
const TENANTS: [&str; 2] = ["acme", "globex"];

/// The tenant every `.slt` file starts as.
const DEFAULT_TENANT: &str = "acme";

/// "Received at" time handed to the logs conversion, for records without any timestamp:
/// 2024-03-05T12:30:00Z.
const RECEIVED_NS: i64 = 1_709_641_800_000_000_000;

fn test_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

// ---------------------------------------------------------------------------------------------
// The node
// ---------------------------------------------------------------------------------------------

/// A node in this process, loaded with the fixture.
struct Node {
    engine: Arc<QueryEngine>,
    // Keeps the catalog database alive as long as the node.
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let store = object_store_from_url("memory://").map_err(|e| e.to_string())?;
        let catalog_url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = SqlCatalog::connect(&catalog_url)
            .await
            .map_err(|e| format!("catalog: {e}"))?;
        let config = StorageConfig {
            // Nothing runs the flusher; make that explicit should it ever be started.
            max_buffer_age: std::time::Duration::from_secs(24 * 3600),
            ..StorageConfig::default()
        };
        let storage = Storage::open(store, Arc::new(catalog), config)
            .await
            .map_err(|e| format!("storage: {e}"))?;

        for tenant in TENANTS {
            load(&storage, tenant, "flushed").await?;
        }
        storage
            .flush_all()
            .await
            .map_err(|e| format!("flush: {e}"))?;
        for tenant in TENANTS {
            load(&storage, tenant, "buffered").await?;
        }

        // Every table of every tenant must be read from files and from the buffer.
        for tenant in TENANTS {
            let tenant = TenantId::new(tenant).expect("valid tenant");
            for signal in Signal::ALL {
                let snapshot = storage.snapshot(&tenant, signal, TimeRange::ALL);
                if snapshot.files.is_empty() || snapshot.batches.is_empty() {
                    return Err(format!(
                        "fixture of {tenant}/{signal}: {} files, {} buffered batches; \
                         expected both",
                        snapshot.files.len(),
                        snapshot.batches.len()
                    ));
                }
            }
        }

        let engine = QueryEngine::with_executor(
            storage,
            QueryConfig {
                target_partitions: 2,
                ..QueryConfig::default()
            },
            tokio::runtime::Handle::current(),
        )
        .map_err(|e| format!("query engine: {e}"))?;
        Ok(Self {
            engine: Arc::new(engine),
            _dir: dir,
        })
    }
}

/// Writes `tests/data/<tenant>/<signal>.<part>.json` of every signal into the storage.
async fn load(storage: &Storage, tenant: &str, part: &str) -> Result<(), String> {
    let tenant_id = TenantId::new(tenant).map_err(|e| e.to_string())?;
    for (signal, file) in [
        (Signal::Spans, "traces"),
        (Signal::Logs, "logs"),
        (Signal::Metrics, "metrics"),
    ] {
        let path = test_dir()
            .join("data")
            .join(tenant)
            .join(format!("{file}.{part}.json"));
        let body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let decode_error = |e: strata_proto::json::JsonError| format!("{}: {e}", path.display());
        let converted = match signal {
            Signal::Spans => strata_ingest::convert::spans_to_batch(
                &strata_proto::json::decode_traces(&body).map_err(decode_error)?,
            ),
            Signal::Logs => strata_ingest::convert::logs_to_batch(
                &strata_proto::json::decode_logs(&body).map_err(decode_error)?,
                RECEIVED_NS,
            ),
            Signal::Metrics => strata_ingest::convert::metrics_to_batch(
                &strata_proto::json::decode_metrics(&body).map_err(decode_error)?,
            ),
        };
        if converted.rejected.count > 0 {
            return Err(format!(
                "{}: {}",
                path.display(),
                converted.rejected.message("items")
            ));
        }
        let batch = converted
            .batch
            .ok_or_else(|| format!("{}: no rows", path.display()))?;
        storage
            .write(&tenant_id, signal, batch)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The database under test
// ---------------------------------------------------------------------------------------------

/// Why a record failed: the engine's error, or a bad harness directive.
#[derive(Debug)]
enum DbError {
    Query(QueryError),
    Harness(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Query(e) => e.fmt(f),
            DbError::Harness(message) => write!(f, "harness: {message}"),
        }
    }
}

impl std::error::Error for DbError {}

/// One sqllogictest connection: the query engine, as the current tenant.
struct StrataDb {
    engine: Arc<QueryEngine>,
    tenant: TenantId,
}

#[async_trait]
impl AsyncDB for StrataDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        if let Some(tenant) = set_tenant(sql)? {
            self.tenant = tenant;
            return Ok(DBOutput::StatementComplete(0));
        }
        let result = self
            .engine
            .sql(&self.tenant, sql)
            .await
            .map_err(DbError::Query)?;
        let types = result
            .schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let explain = is_explain(sql);
        let mut rows = Vec::with_capacity(result.num_rows());
        for batch in &result.batches {
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|column| {
                        let text = render(column.as_ref(), row);
                        if explain {
                            normalize_uuids(&text)
                        } else {
                            text
                        }
                    })
                    .collect();
                expand_lines(cells, &mut rows);
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "strata"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The tenant of a `SET TENANT <id>` directive; `None` for any other statement.
fn set_tenant(sql: &str) -> Result<Option<TenantId>, DbError> {
    let words: Vec<&str> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect();
    match words.as_slice() {
        [set, tenant, rest @ ..]
            if set.eq_ignore_ascii_case("set") && tenant.eq_ignore_ascii_case("tenant") =>
        {
            let [id] = rest else {
                return Err(DbError::Harness(format!(
                    "expected `SET TENANT <id>`, got {sql:?}"
                )));
            };
            TenantId::new(id)
                .map(Some)
                .map_err(|e| DbError::Harness(format!("SET TENANT {id}: {e}")))
        }
        _ => Ok(None),
    }
}

fn is_explain(sql: &str) -> bool {
    sql.trim_start()
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("explain"))
}

/// `I` for integers, `R` for floating point and decimals, `T` for everything else.
fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

/// The text of one cell.
fn render(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_string();
    }
    match array.data_type() {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => {
            let mut text = String::new();
            json_cell(array, row, &mut text);
            text
        }
        data_type => match (data_type, format::cell(array, row)) {
            (_, Value::Null) => "NULL".to_string(),
            (DataType::Float16 | DataType::Float32 | DataType::Float64, Value::Number(n)) => {
                float(n.as_f64().unwrap_or(f64::NAN))
            }
            (DataType::Timestamp(_, tz), Value::String(s)) => timestamp(&s, tz.is_some()),
            (_, Value::String(s)) if s.is_empty() => "(empty)".to_string(),
            (_, Value::String(s)) => s,
            (_, other) => other.to_string(),
        },
    }
}

/// Compact JSON of a cell: lists as arrays, structs and maps as objects, `null`; scalars as
/// `format::cell` has them, except floats and timestamps, which read as top-level ones do.
fn json_cell(array: &dyn Array, row: usize, out: &mut String) {
    fn items(values: &dyn Array, out: &mut String) {
        out.push('[');
        for i in 0..values.len() {
            if i > 0 {
                out.push(',');
            }
            json_cell(values, i, out);
        }
        out.push(']');
    }
    fn key(text: &str, out: &mut String) {
        out.push_str(&Value::String(text.to_string()).to_string());
        out.push(':');
    }
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        DataType::List(_) => items(array.as_list::<i32>().value(row).as_ref(), out),
        DataType::LargeList(_) => items(array.as_list::<i64>().value(row).as_ref(), out),
        DataType::FixedSizeList(..) => items(array.as_fixed_size_list().value(row).as_ref(), out),
        DataType::Struct(fields) => {
            out.push('{');
            for (i, (field, column)) in fields.iter().zip(array.as_struct().columns()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                key(field.name(), out);
                json_cell(column.as_ref(), row, out);
            }
            out.push('}');
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                match format::cell(entries.column(0).as_ref(), i) {
                    Value::String(s) => key(&s, out),
                    other => key(&other.to_string(), out),
                }
                json_cell(entries.column(1).as_ref(), i, out);
            }
            out.push('}');
        }
        data_type => match (data_type, format::cell(array, row)) {
            (DataType::Float16 | DataType::Float32 | DataType::Float64, Value::Number(n)) => {
                out.push_str(&float(n.as_f64().unwrap_or(f64::NAN)));
            }
            (DataType::Timestamp(_, tz), Value::String(s)) => {
                out.push_str(&Value::String(timestamp(&s, tz.is_some())).to_string());
            }
            (_, value) => out.push_str(&value.to_string()),
        },
    }
}

/// An RFC 3339 timestamp with as many fractional digits as it needs (0, 3, 6 or 9), as
/// Arrow displays them; `Z` for time zone aware ones. (The JSON API's own form, which
/// `format::cell` returns, may differ.)
fn timestamp(text: &str, utc: bool) -> String {
    if utc {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return t
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        }
    } else if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return t.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
    }
    text.to_string()
}

/// A float, rounded to 12 decimals, without trailing zeros (`1`, `0.5`, `0.021186440678`);
/// scientific notation outside `[1e-9, 1e15)`.
fn float(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !(1e-9..1e15).contains(&v.abs()) {
        return format!("{v:e}");
    }
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Adds a row's cells to `rows`; a cell with line breaks becomes one row per line (the other
/// cells on its first line), leading spaces shown as `-`.
fn expand_lines(cells: Vec<String>, rows: &mut Vec<Vec<String>>) {
    if !cells.iter().any(|c| c.contains('\n')) {
        rows.push(cells);
        return;
    }
    let mut first = Vec::with_capacity(cells.len());
    let mut more = Vec::new();
    for cell in cells {
        let mut lines = cell.lines().map(|line| {
            let line = line.trim_end();
            let body = line.trim_start_matches(' ');
            format!("{}{body}", "-".repeat(line.len() - body.len()))
        });
        first.push(lines.next().unwrap_or_default());
        more.extend(lines.map(|line| vec![line]));
    }
    rows.push(first);
    rows.extend(more);
}

/// Replaces `<8>-<4>-<4>-<4>-<12 hex>.parquet` file names with `<uuid>.parquet`.
fn normalize_uuids(text: &str) -> String {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    const SUFFIX: &str = ".parquet";
    let uuid_len = GROUPS.iter().sum::<usize>() + GROUPS.len() - 1;
    let bytes = text.as_bytes();
    let is_uuid = |at: usize| {
        let Some(candidate) = bytes.get(at..at + uuid_len) else {
            return false;
        };
        let mut i = 0;
        for (g, len) in GROUPS.iter().enumerate() {
            if g > 0 {
                if candidate[i] != b'-' {
                    return false;
                }
                i += 1;
            }
            if !candidate[i..i + len]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            {
                return false;
            }
            i += len;
        }
        bytes[at + uuid_len..].starts_with(SUFFIX.as_bytes())
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut copied = 0;
    while at < bytes.len() {
        if is_uuid(at) {
            out.push_str(&text[copied..at]);
            out.push_str("<uuid>");
            at += uuid_len;
            copied = at;
        } else {
            at += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

struct Args {
    /// Rewrite the expected output of every record with the actual output.
    complete: bool,
    /// List the files as libtest does (`<name>: test`), run nothing.
    list: bool,
    /// Only ignored tests are asked for: there are none.
    ignored: bool,
    /// Run only files whose name contains one of these.
    filters: Vec<String>,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            complete: false,
            list: false,
            ignored: false,
            filters: Vec::new(),
        };
        let mut argv = std::env::args().skip(1);
        while let Some(arg) = argv.next() {
            match arg.as_str() {
                "--complete" => args.complete = true,
                "--list" => args.list = true,
                "--ignored" => args.ignored = true,
                // libtest options cargo or a user may pass along; they take a value.
                "--test-threads" | "--format" | "--color" | "--skip" | "-Z" => {
                    argv.next();
                }
                other if other.starts_with('-') => {}
                other => args.filters.push(other.to_string()),
            }
        }
        args
    }
}

fn slt_files(filters: &[String]) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(test_dir().join("slt"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.ends_with(".slt") && (filters.is_empty() || filters.iter().any(|f| name.contains(f)))
    });
    files.sort();
    Ok(files)
}

async fn run(args: Args) -> Result<usize, String> {
    let files = slt_files(&args.filters).map_err(|e| format!("listing slt files: {e}"))?;
    if args.list {
        if !args.ignored {
            for path in &files {
                println!(
                    "{}: test",
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
            }
        }
        return Ok(0);
    }
    if args.ignored {
        return Ok(0);
    }
    if files.is_empty() {
        if args.filters.is_empty() {
            return Err("no .slt file in tests/slt".into());
        }
        // `cargo test -p strata-query -- <filter>` filters the crate's other tests too.
        println!("no .slt file matches {:?}", args.filters);
        return Ok(0);
    }
    let node = Node::start().await?;
    let mut failures = 0;
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let engine = node.engine.clone();
        let mut runner = Runner::new(move || {
            let engine = engine.clone();
            async move {
                Ok::<_, DbError>(StrataDb {
                    engine,
                    tenant: TenantId::new(DEFAULT_TENANT).expect("valid tenant"),
                })
            }
        });
        runner.with_column_validator(strict_column_validator);
        if args.complete {
            match runner
                .update_test_file(
                    path,
                    " ",
                    default_validator,
                    default_normalizer,
                    strict_column_validator,
                )
                .await
            {
                Ok(()) => println!("completed {name}"),
                Err(e) => {
                    failures += 1;
                    eprintln!("{name}: {e}");
                }
            }
        } else {
            match runner.run_file_async(path).await {
                Ok(()) => println!("ok {name}"),
                Err(e) => {
                    failures += 1;
                    eprintln!("FAILED {name}\n{}\n", e.display(false));
                }
            }
        }
        runner.shutdown_async().await;
    }
    Ok(failures)
}

/// Checks of the harness's own text handling (`harness = false` has no `#[test]`s).
fn self_check() {
    assert_eq!(
        normalize_uuids("[tenant=acme/hour=11/0190a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b.parquet, x]"),
        "[tenant=acme/hour=11/<uuid>.parquet, x]"
    );
    assert_eq!(
        normalize_uuids("0190a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b.csv"),
        "0190a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b.csv"
    );
    assert_eq!(float(1.0), "1");
    assert_eq!(float(-2.5), "-2.5");
    assert_eq!(float(0.1 + 0.2), "0.3");
    assert_eq!(float(1e300), "1e300");
    assert_eq!(
        timestamp("2024-03-05T10:15:00.020000000Z", true),
        "2024-03-05T10:15:00.020Z"
    );
    assert_eq!(
        timestamp("2024-03-05T10:15:00.000000000", false),
        "2024-03-05T10:15:00"
    );
    let mut rows = Vec::new();
    expand_lines(vec!["plan".into(), "A\n  B\n".into()], &mut rows);
    assert_eq!(
        rows,
        vec![vec!["plan".to_string(), "A".into()], vec!["--B".into()]]
    );
}

fn main() -> ExitCode {
    self_check();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("{failures} sqllogictest file(s) failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sqllogictests: {e}");
            ExitCode::FAILURE
        }
    }
}
