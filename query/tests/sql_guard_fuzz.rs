//! Fuzzing the SQL guard: statements generated from a grammar of escape attempts — DDL, DML,
//! `COPY`, `SET`, URL and file tables, table functions, other catalogs and schemas, other
//! tenants' paths, system tables — and then mutated byte by byte, run as one tenant against an
//! engine that also holds another tenant's data.
//!
//! Properties, for every statement: the engine answers (an error or a result, never a panic);
//! a statement that would write, change settings or define tables is refused; and no result —
//! rows or `EXPLAIN` text — holds anything of the other tenant (a marker only its logs carry,
//! or a path of its files).
//!
//! The generator is seeded (`STRATA_SQL_FUZZ_SEED`, default fixed) and runs
//! `STRATA_SQL_FUZZ_ITERATIONS` statements (default 3,000), so a failure is reproducible from
//! the seed it prints. It lives in the test suite rather than under `fuzz/` because the guard
//! is DataFusion's planner: building DataFusion a second time with fuzzing instrumentation
//! would double the CI build (docs/FUZZING.md).

mod common;

use strata_query::{QueryConfig, QueryEngine};
use strata_storage::{PerTenant, Signal, TenantId};

const SECRET: &str = "globex-secret-7f3a";

fn logs_json(service: &str, body: &str) -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
            "scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1709634600010000000","severityNumber":9,
            "body":{{"stringValue":"{body}"}}}}]}}]}}]}}"#
    )
}

/// acme's and globex's logs, one flushed to Parquet and one more in the buffer each.
async fn engine(dir: &tempfile::TempDir) -> QueryEngine {
    let storage = common::memory_storage(dir).await;
    for flushed in [true, false] {
        for (tenant, service, body) in [("acme", "web", "acme-visible"), ("globex", "api", SECRET)]
        {
            let request =
                strata_proto::json::decode_logs(logs_json(service, body).as_bytes()).unwrap();
            let batch = (strata_ingest::convert::logs_to_batch(&request, 0).batch).unwrap();
            let tenant = TenantId::new(tenant).unwrap();
            storage.write(&tenant, Signal::Logs, batch).await.unwrap();
        }
        if flushed {
            storage.flush_all().await.unwrap();
        }
    }
    QueryEngine::with_executor(
        storage,
        QueryConfig {
            target_partitions: 2,
            limits: PerTenant::default(),
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

/// splitmix64: small, seeded, good enough to pick grammar branches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TABLES: &[&str] = &[
    "logs",
    "spans",
    "metrics",
    "audit",
    "alerts",
    "incidents",
    "strata.public.logs",
    "public.logs",
    "datafusion.public.logs",
    "globex.logs",
    "strata.globex.logs",
    "\"tenant=globex\".logs",
    "information_schema.tables",
    "information_schema.columns",
    "information_schema.df_settings",
    "'tenant=globex/signal=logs'",
    "'strata://objects/tenant=globex/signal=logs/'",
    "'file:///etc/passwd'",
    "'/etc/passwd'",
    "'s3://bucket/tenant=globex/'",
    "read_parquet('tenant=globex/signal=logs')",
    "read_csv('/etc/passwd')",
    "parquet_metadata('strata://objects/tenant=globex/')",
    "generate_series(1, 3)",
    "range(3)",
    "(SELECT * FROM logs)",
    "(VALUES (1), (2))",
];

const COLUMNS: &[&str] = &[
    "*",
    "body",
    "service_name",
    "count(*)",
    "attributes",
    "resource_attributes['service.name']",
    "version()",
    "current_schema()",
    "arrow_typeof(body)",
    "'tenant=globex'",
];

const WRITES: &[&str] = &[
    "COPY logs TO '/tmp/x.parquet'",
    "COPY (SELECT * FROM logs) TO 'strata://objects/tenant=globex/signal=logs/x.parquet' STORED AS PARQUET",
    "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'strata://objects/tenant=globex/'",
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'",
    "CREATE TABLE t AS SELECT * FROM logs",
    "CREATE VIEW v AS SELECT * FROM logs",
    "CREATE SCHEMA globex",
    "CREATE FUNCTION f() RETURNS INT RETURN 1",
    "INSERT INTO logs SELECT * FROM logs",
    "INSERT INTO logs VALUES (1)",
    "UPDATE logs SET body = 'x'",
    "DELETE FROM logs",
    "DROP TABLE logs",
    "DROP SCHEMA public",
    "TRUNCATE logs",
    "SET datafusion.execution.target_partitions = 64",
    "SET datafusion.catalog.default_catalog = 'globex'",
    "SET TIME ZONE 'UTC'",
    "RESET ALL",
    "PREPARE p AS SELECT 1",
    "DEALLOCATE p",
];

/// One statement from the grammar.
fn statement(rng: &mut Rng) -> String {
    let table = rng.pick(TABLES);
    let column = rng.pick(COLUMNS);
    match rng.below(8) {
        0 => rng.pick(WRITES).to_string(),
        1 => format!("EXPLAIN SELECT {column} FROM {table}"),
        2 => format!(
            "SELECT {column} FROM {table} WHERE body LIKE '%{}%'",
            rng.pick(&["globex", "secret", "acme", "%"])
        ),
        3 => format!("WITH x AS (SELECT * FROM {table}) SELECT {column} FROM x"),
        4 => format!(
            "SELECT {column} FROM {table} UNION ALL SELECT {column} FROM {}",
            rng.pick(TABLES)
        ),
        5 => format!(
            "SELECT {column} FROM {table} JOIN {} USING (body)",
            rng.pick(TABLES)
        ),
        6 => format!("{}; SELECT {column} FROM {table}", rng.pick(WRITES)),
        _ => format!(
            "SHOW {}",
            rng.pick(&[
                "TABLES",
                "ALL",
                "COLUMNS FROM logs",
                "datafusion.catalog.default_catalog"
            ])
        ),
    }
}

/// Byte-level mutations: insertions of SQL punctuation and keywords, deletions, repeats.
fn mutate(rng: &mut Rng, sql: &str) -> String {
    let mut bytes = sql.as_bytes().to_vec();
    for _ in 0..rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 => {
                let insert = rng.pick(&[
                    "'", "\"", ";", "(", ")", "--", "/*", ",", " globex ", "\0", "é", "\\",
                ]);
                bytes.splice(at..at, insert.bytes());
            }
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            2 => {
                let end = (at + rng.below(16)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether `sql` asks to write, define, or change settings (after leading comments and
/// parentheses).
fn is_write(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_uppercase();
    [
        "COPY",
        "CREATE",
        "INSERT",
        "UPDATE",
        "DELETE",
        "DROP",
        "TRUNCATE",
        "SET ",
        "RESET",
        "PREPARE",
        "DEALLOCATE",
    ]
    .iter()
    .any(|k| head.starts_with(k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_escape_attempts_never_reach_another_tenant() {
    let seed: u64 = std::env::var("STRATA_SQL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_57a7a);
    let iterations: usize = std::env::var("STRATA_SQL_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let acme = TenantId::new("acme").unwrap();
    // The fixture is what the properties rely on: globex's marker is in its tenant only.
    let own = engine.sql(&acme, "SELECT body FROM logs").await.unwrap();
    let own = strata_query::format::Format::Json.encode(&own).unwrap();
    assert!(String::from_utf8_lossy(&own).contains("acme-visible"));
    assert!(!String::from_utf8_lossy(&own).contains(SECRET));

    let mut rng = Rng(seed);
    let (mut answered, mut refused) = (0usize, 0usize);
    for i in 0..iterations {
        let base = statement(&mut rng);
        let sql = if rng.below(3) == 0 {
            mutate(&mut rng, &base)
        } else {
            base
        };
        let context = || format!("seed {seed}, statement {i}: {sql:?}");
        match engine.sql(&acme, &sql).await {
            Ok(result) => {
                assert!(!is_write(&sql), "a write was not refused ({})", context());
                let text = strata_query::format::Format::Json.encode(&result).unwrap();
                let text = String::from_utf8_lossy(&text);
                assert!(
                    !text.contains(SECRET),
                    "another tenant's row ({})",
                    context()
                );
                assert!(
                    !text.contains("tenant=globex/"),
                    "another tenant's path ({})",
                    context()
                );
                answered += 1;
            }
            Err(_) => refused += 1,
        }
    }
    // The generator reaches both outcomes (it is not only producing parse errors).
    assert!(
        answered > iterations / 20,
        "answered {answered} of {iterations}"
    );
    assert!(
        refused > iterations / 20,
        "refused {refused} of {iterations}"
    );
}
