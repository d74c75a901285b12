//! The benchmark suite (`strata-bench run`): fresh nodes of the real binary, the data sets of
//! `data/`, and every figure of `docs/BENCHMARKS.md` side by side with its reference.
//!
//! 1. **Ingest**: one node per protocol; each workload is sent flat out into its own tenant;
//!    throughput is stated per second of *server* CPU (from `/proc`), so the load generator
//!    sharing the machine does not distort it. The CPU is read once the workload's rows are
//!    all in Parquet (the write buffer empty): flushing them is part of what they cost.
//! 2. **Limits**: decode-only throughput of the same payloads (prost, one core, in process),
//!    and the pipeline example (`ingest/examples/pipeline.rs`: decode, convert, Parquet) when
//!    built.
//! 3. **Storage**: after a flush and compaction, bytes per item on the object store, next to
//!    the raw OTLP protobuf, its gzip, the raw nginx lines, and Prometheus TSDB blocks of the
//!    same TSBS series (`promtool`, when installed).
//! 4. **Latency**: ack latency at 1, 100 and 10,000 connections at a fixed rate; time from
//!    acknowledgement to visible in a query.
//! 5. **Queries**: warm and cold latency of the dashboard queries through `/api/v1/sql`, and of
//!    the same SQL in DuckDB over the same Parquet files (`bench/peers/duckdb_queries.py`).
//! 6. **Memory**: peak RSS of the ingest nodes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use prost::Message;
use serde::Serialize;
use serde_json::{Value, json};

use crate::data::{Size, Stream, Workload, generate};
use crate::load::{self, LoadConfig, LoadReport, Percentiles, Protocol};
use crate::node::{Node, status_bytes};

/// Flags of `strata-bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A short run (under 5 minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// The strata binary to benchmark (a release build).
    #[arg(long, default_value = "target/release/strata")]
    pub strata_bin: PathBuf,
    /// The pipeline example (decode/convert/Parquet limits), if built.
    #[arg(long, default_value = "target/release/examples/pipeline")]
    pub pipeline_bin: PathBuf,
    /// Scratch space for the nodes' data directories (deleted first).
    #[arg(long, default_value = "target/bench-work")]
    pub work_dir: PathBuf,
    /// Where result files go.
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
    /// The document whose generated section is rewritten.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    pub docs: PathBuf,
    /// Python with duckdb installed, for the DuckDB comparison.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Connections of the throughput runs.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Sizes of one mode.
struct Plan {
    mode: &'static str,
    workloads: Vec<(Workload, u64, f64)>,
    batch: usize,
    latency_seconds: f64,
    query_runs: usize,
    probes: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                mode: "quick",
                workloads: vec![
                    (Workload::Traces, 300_000, 6.0),
                    (Workload::NginxLogs, 300_000, 6.0),
                    (Workload::AppLogs, 200_000, 6.0),
                    (Workload::TsbsCpu, 1_000_000, 6.0),
                    (Workload::HttpHistograms, 100_000, 6.0),
                ],
                batch: 1000,
                latency_seconds: 4.0,
                query_runs: 30,
                probes: 50,
            }
        } else {
            Self {
                mode: "full",
                workloads: vec![
                    (Workload::Traces, 10_000_000, 24.0),
                    (Workload::NginxLogs, 5_000_000, 24.0),
                    (Workload::AppLogs, 5_000_000, 24.0),
                    (Workload::TsbsCpu, 100_000_000, 24.0),
                    (Workload::HttpHistograms, 2_000_000, 24.0),
                ],
                batch: 2000,
                latency_seconds: 15.0,
                query_runs: 30,
                probes: 200,
            }
        }
    }
}

const START: &str = "2026-01-05T00:00:00Z";

fn size(plan: &Plan, items: u64, hours: f64) -> Size {
    Size {
        items,
        batch: plan.batch,
        start_ns: chrono::DateTime::parse_from_rfc3339(START)
            .expect("valid constant")
            .timestamp_nanos_opt()
            .expect("in range"),
        span_ns: (hours * 3600e9) as i64,
    }
}

#[derive(Debug, Default, Serialize)]
struct IngestResult {
    workload: String,
    protocol: String,
    items: u64,
    payload_bytes: u64,
    server_cpu_s: f64,
    wall_s: f64,
    items_per_server_core_s: f64,
    mb_per_server_core_s: f64,
    items_per_wall_s: f64,
    load: LoadReport,
}

/// Writes progress to stderr.
fn say(msg: impl AsRef<str>) {
    eprintln!("[strata-bench] {}", msg.as_ref());
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    crate::raise_fd_limit();
    let plan = Plan::new(args.quick);
    let started = Instant::now();
    if !args.strata_bin.exists() {
        return Err(format!(
            "{} not found; build it with `cargo build --release -p strata-server`",
            args.strata_bin.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&args.work_dir);
    std::fs::create_dir_all(&args.work_dir).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.results).map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    let mut results: BTreeMap<&str, Value> = BTreeMap::new();
    results.insert("mode", json!(plan.mode));
    results.insert("machine", machine());
    results.insert("strata_bin", json!(args.strata_bin.display().to_string()));
    results.insert("started", json!(chrono::Utc::now().to_rfc3339()));

    // 1. Ingest, per protocol; the gRPC node keeps its data for everything after.
    let mut ingest = Vec::new();
    let mut peak_rss = BTreeMap::new();
    let mut grpc_node = None;
    for protocol in [Protocol::Grpc, Protocol::Http] {
        let name = format!("{protocol:?}").to_lowercase();
        let node = Node::start(
            &args.strata_bin,
            &args.work_dir.join(format!("ingest-{name}")),
            &strings(&["--flush-interval", "10s", "--compaction-interval", "1h"]),
        )?;
        for &(workload, items, hours) in &plan.workloads {
            say(format!(
                "ingest {} over {name}: {items} items",
                workload.name()
            ));
            let requests: load::Requests =
                Box::new(Stream::new(workload, args.seed, &size(&plan, items, hours)));
            let endpoint = match protocol {
                Protocol::Grpc => node.grpc.clone(),
                Protocol::Http => node.http.clone(),
            };
            let cpu0 = node.cpu_seconds();
            let report = load::run(
                requests,
                workload.signal(),
                LoadConfig {
                    protocol,
                    endpoint,
                    connections: args.connections,
                    rate: None,
                    max_duration: None,
                    tenant: workload.name().into(),
                    gzip: false,
                    // Flat out, the node pushes back once flushing falls behind; the items
                    // of a refused request are sent again, as an exporter would, so every
                    // item of the data set is stored and the rate is the sustained one.
                    retry: true,
                },
            )
            .await?;
            // The node's CPU for these items includes writing them to Parquet: the flush of
            // what is still buffered when the load ends is waited for and counted here (it
            // would otherwise land in the next workload's figure, or in none).
            settle_flush(&node, &http).await;
            let cpu = node.cpu_seconds() - cpu0;
            ingest.push(IngestResult {
                workload: workload.name().into(),
                protocol: name.clone(),
                items: report.items_acked,
                payload_bytes: report.bytes_acked,
                server_cpu_s: cpu,
                wall_s: report.elapsed_s,
                items_per_server_core_s: report.items_acked as f64 / cpu.max(1e-9),
                mb_per_server_core_s: report.bytes_acked as f64 / 1e6 / cpu.max(1e-9),
                items_per_wall_s: report.items_per_s,
                load: report,
            });
        }
        peak_rss.insert(name.clone(), status_bytes(node.pid(), "VmHWM"));
        match protocol {
            Protocol::Grpc => grpc_node = Some(node),
            Protocol::Http => {
                node.stop()?;
                let _ = std::fs::remove_dir_all(args.work_dir.join("ingest-http"));
            }
        }
    }
    results.insert("ingest", json!(ingest));
    results.insert("peak_rss_bytes", json!(peak_rss));
    let node = grpc_node.expect("the gRPC node ran");

    // 2. Limits: decode-only in process; the pipeline example if built.
    say("limits: decode-only");
    let mut limits = Vec::new();
    for &(workload, items, hours) in &plan.workloads {
        let sample = generate(workload, args.seed, &size(&plan, items.min(200_000), hours));
        limits.push(decode_only(
            &sample.requests,
            sample.total_items(),
            workload,
        ));
    }
    results.insert("decode_only", json!(limits));
    if args.pipeline_bin.exists() {
        say("limits: pipeline (decode, convert, Parquet)");
        results.insert("pipeline", pipeline(&args, &plan)?);
    } else {
        results.insert(
            "pipeline",
            json!({"skipped": format!("{} not built (cargo build --release -p strata-ingest --example pipeline)", args.pipeline_bin.display())}),
        );
    }

    // 3. Storage after flush and compaction.
    say("storage: flush and compact");
    let node = node.restart(&strings(&[
        "--flush-interval",
        "10s",
        "--compaction-interval",
        "1s",
        "--delete-grace",
        "1s",
        "--retention-interval",
        "2s",
    ]))?;
    settle_compaction(&node, &http).await;
    let objects = node.data_dir.join("objects");
    let mut storage = Vec::new();
    for &(workload, items, hours) in &plan.workloads {
        let stored = dir_bytes(&objects.join(format!("tenant={}", workload.name())));
        let acked = ingest
            .iter()
            .find(|r| r.workload == workload.name() && r.protocol == "grpc")
            .map_or(items, |r| r.items);
        let sample = generate(workload, args.seed, &size(&plan, items.min(200_000), hours));
        let raw_per_item = sample.total_bytes() as f64 / sample.total_items() as f64;
        let gzip_per_item = gzip_size(&sample.requests) as f64 / sample.total_items() as f64;
        let mut row = json!({
            "workload": workload.name(),
            "items": acked,
            "stored_bytes": stored,
            "bytes_per_item": stored as f64 / acked.max(1) as f64,
            "otlp_protobuf_bytes_per_item": raw_per_item,
            "otlp_protobuf_gzip_bytes_per_item": gzip_per_item,
        });
        if workload == Workload::NginxLogs {
            let file = nginx_lines(&sample.requests);
            let lines = file.len() as f64 / sample.total_items() as f64;
            let zstd19 = nginx_zstd_bytes_per_line(&file);
            row["raw_line_bytes_per_item"] = json!(lines);
            row["raw_lines_to_stored_ratio"] = json!(lines / (stored as f64 / acked.max(1) as f64));
            row["raw_lines_zstd19_bytes_per_item"] = json!(zstd19);
            row["raw_lines_to_zstd19_ratio"] = json!(lines / zstd19.max(f64::MIN_POSITIVE));
        }
        if workload == Workload::TsbsCpu {
            row["prometheus_tsdb"] = promtool(&args, &sample);
        }
        storage.push(row);
    }
    results.insert("storage", json!(storage));

    // 4. Latency: ack latency by connection count, ack-to-visible.
    let mut latency = Vec::new();
    for connections in [1usize, 100, 10_000] {
        say(format!("ack latency at {connections} connections"));
        let rate = 2_000.0f64.max(connections as f64 * 2.0);
        let seconds = plan.latency_seconds;
        let items = (rate * seconds) as u64 + 1;
        let requests: load::Requests = Box::new(Stream::new(
            Workload::AppLogs,
            args.seed + 7,
            &Size {
                items,
                batch: 10,
                ..size(&plan, items, 1.0)
            },
        ));
        let report = load::run(
            requests,
            crate::data::Signal::Logs,
            LoadConfig {
                protocol: Protocol::Grpc,
                endpoint: node.grpc.clone(),
                connections,
                rate: Some(rate),
                max_duration: Some(Duration::from_secs_f64(seconds * 3.0)),
                tenant: "latency".into(),
                gzip: false,
                retry: false,
            },
        )
        .await?;
        latency
            .push(json!({"connections": connections, "rate_items_per_s": rate, "report": report}));
    }
    results.insert("ack_latency", json!(latency));
    say("ack-to-visible probes");
    results.insert(
        "ack_to_visible_ms",
        ack_to_visible(&node, &http, plan.probes).await?,
    );

    // 5. Queries, warm and cold, and DuckDB on the same files. The node is at rest first
    // (the latency phase's data flushed and compacted), as DuckDB's files are, and runs with
    // the default intervals rather than the storage phase's 1 s compaction passes.
    say("queries");
    settle_compaction(&node, &http).await;
    let node = node.restart(&[])?;
    let queries = queries(&node, &http).await?;
    let mut query_results = Vec::new();
    for q in &queries {
        let mut warm = Vec::new();
        // One run to warm the caches, as the DuckDB script's cold run does, then the measured.
        for run in 0..=plan.query_runs {
            let t = Instant::now();
            node.sql(&http, &q.tenant, &q.strata)
                .await
                .map_err(|e| format!("{}: {e}", q.name))?;
            if run > 0 {
                warm.push(t.elapsed().as_micros() as u32);
            }
        }
        query_results
            .push(json!({"name": q.name, "sql": q.strata, "warm_ms": Percentiles::of(&mut warm)}));
    }
    // Cold: the first run of each query after a restart (empty metadata and block caches).
    let node = node.restart(&strings(&["--compaction-interval", "1h"]))?;
    for (q, row) in queries.iter().zip(query_results.iter_mut()) {
        let t = Instant::now();
        node.sql(&http, &q.tenant, &q.strata)
            .await
            .map_err(|e| format!("{}: {e}", q.name))?;
        row["cold_ms"] = json!(t.elapsed().as_secs_f64() * 1000.0);
    }
    results.insert("queries", json!(query_results));
    say("DuckDB on the same files");
    results.insert("duckdb", duckdb(&args, &objects, &queries, plan.query_runs));
    node.stop()?;
    results.insert("elapsed_s", json!(started.elapsed().as_secs_f64()));

    let results = json!(results);
    let file = args.results.join(format!("{}.json", plan.mode));
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&results).expect("serializable"),
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    say(format!("wrote {}", file.display()));
    crate::report::update_docs(&args.docs, &results, &file)?;
    say(format!(
        "updated {} in {:.0} s",
        args.docs.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.to_string()))
        .unwrap_or_default();
    json!({"cpu": cpu, "cores": cores, "memory": mem})
}

/// Waits until the node has flushed everything and compaction has nothing left to do: no
/// pass running, nothing buffered, and no partition compacted or object deleted for five
/// seconds (five compaction intervals). A pass over a large partition can run for many
/// seconds without a counter moving, hence the `strata_compactions_running` gauge.
async fn settle_compaction(node: &Node, http: &reqwest::Client) {
    let mut last = -1.0;
    let mut quiet = 0;
    for _ in 0..1800 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let runs = node.metric(http, "strata_compaction_runs_total").await;
        let deleted = node.metric(http, "strata_gc_objects_deleted_total").await;
        let merged = node.metric(http, "strata_compaction_files_in_total").await;
        let running = node.metric(http, "strata_compactions_running").await;
        let buffered = node.metric(http, "strata_storage_buffered_bytes").await;
        let now = runs + deleted;
        if now == last && deleted >= merged && running == 0.0 && buffered == 0.0 {
            quiet += 1;
            if quiet >= 5 {
                return;
            }
        } else {
            quiet = 0;
        }
        last = now;
    }
}

/// Waits until the node's write buffers are empty: everything acknowledged is in Parquet.
async fn settle_flush(node: &Node, http: &reqwest::Client) {
    let mut empty = 0;
    for _ in 0..3000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if node.metric(http, "strata_storage_buffered_bytes").await == 0.0 {
            empty += 1;
            if empty >= 2 {
                return;
            }
        } else {
            empty = 0;
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

fn gzip_size(requests: &[Bytes]) -> u64 {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for r in requests {
        enc.write_all(r).expect("memory");
    }
    enc.finish().expect("memory").len() as u64
}

/// The nginx lines of `requests` as a log file: one line each, newline-terminated.
fn nginx_lines(requests: &[Bytes]) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    let mut file = Vec::new();
    for l in requests
        .iter()
        .filter_map(|r| ExportLogsServiceRequest::decode(r.as_ref()).ok())
        .flat_map(|r| r.resource_logs)
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
    {
        if let Some(V::StringValue(s)) = l.body.and_then(|b| b.value) {
            file.extend_from_slice(s.as_bytes());
            file.push(b'\n');
        }
    }
    file
}

/// Bytes per line of the best general-purpose compression of the log file: zstd at its
/// highest standard level over the first `NGINX_ZSTD_SAMPLE` bytes (a bound on what storing
/// the line as one opaque string can reach, whatever the container).
fn nginx_zstd_bytes_per_line(file: &[u8]) -> f64 {
    const NGINX_ZSTD_SAMPLE: usize = 32 << 20;
    let mut end = file.len().min(NGINX_ZSTD_SAMPLE);
    while end < file.len() && file[end - 1] != b'\n' {
        end += 1;
    }
    let sample = &file[..end];
    let lines = sample.iter().filter(|&&b| b == b'\n').count().max(1);
    let compressed = zstd::bulk::compress(sample, 19).map_or(0, |c| c.len());
    compressed as f64 / lines as f64
}

fn decode_only(requests: &[Bytes], items: u64, workload: Workload) -> Value {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let bytes: u64 = requests.iter().map(|r| r.len() as u64).sum();
    let t = Instant::now();
    for r in requests {
        let ok = match workload.signal() {
            crate::data::Signal::Traces => ExportTraceServiceRequest::decode(r.as_ref()).is_ok(),
            crate::data::Signal::Logs => ExportLogsServiceRequest::decode(r.as_ref()).is_ok(),
            crate::data::Signal::Metrics => ExportMetricsServiceRequest::decode(r.as_ref()).is_ok(),
        };
        assert!(ok, "generated requests decode");
    }
    let s = t.elapsed().as_secs_f64();
    json!({"workload": workload.name(), "items_per_core_s": items as f64 / s, "mb_per_core_s": bytes as f64 / 1e6 / s})
}

fn pipeline(args: &RunArgs, plan: &Plan) -> Result<Value, String> {
    let mut out = Vec::new();
    for &(workload, items, hours) in &plan.workloads {
        let sample = generate(workload, args.seed, &size(plan, items.min(200_000), hours));
        let file = args.work_dir.join(format!("{}.otlp", workload.name()));
        crate::dataset_file::write(&file, &sample).map_err(|e| e.to_string())?;
        let output = std::process::Command::new(&args.pipeline_bin)
            .arg(&file)
            .output()
            .map_err(|e| format!("{}: {e}", args.pipeline_bin.display()))?;
        if !output.status.success() {
            return Err(format!(
                "pipeline: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let v: Value =
            serde_json::from_slice(&output.stdout).map_err(|e| format!("pipeline output: {e}"))?;
        out.push(json!({"workload": workload.name(), "stages": v}));
    }
    Ok(json!(out))
}

/// Prometheus TSDB blocks of the same TSBS series, built with promtool.
fn promtool(args: &RunArgs, sample: &crate::data::Dataset) -> Value {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as N};
    let Ok(which) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        return json!({"skipped": "promtool not installed (apt-get install prometheus)"});
    };
    if !which.status.success() {
        return json!({"skipped": "promtool not usable"});
    }
    let dir = args.work_dir.join("promtool");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok();
    let text = dir.join("tsbs.om");
    let Ok(mut f) = std::fs::File::create(&text).map(std::io::BufWriter::new) else {
        return json!({"skipped": "cannot write the OpenMetrics file"});
    };
    let mut samples = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut lines = Vec::new();
    for r in &sample.requests {
        let Ok(req) = ExportMetricsServiceRequest::decode(r.as_ref()) else {
            continue;
        };
        for rm in req.resource_metrics {
            let labels: Vec<String> = rm
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default()
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => s.clone(),
                        _ => String::new(),
                    };
                    format!("{}=\"{}\"", kv.key, v)
                })
                .collect();
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    if let Some(Data::Gauge(g)) = m.data {
                        for p in g.data_points {
                            let v = match p.value {
                                Some(N::AsDouble(v)) => Some(v),
                                Some(N::AsInt(v)) => Some(v as f64),
                                None => None,
                            };
                            if let Some(v) = v {
                                lines.push((
                                    m.name.clone(),
                                    labels.join(","),
                                    v,
                                    p.time_unix_nano as f64 / 1e9,
                                ));
                                samples += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    // OpenMetrics wants each metric family's samples together, with a TYPE line.
    lines.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.3.total_cmp(&b.3)));
    for (name, labels, v, ts) in &lines {
        if seen.insert(name.clone()) {
            let _ = writeln!(f, "# TYPE {name} gauge");
        }
        let _ = writeln!(f, "{name}{{{labels}}} {v} {ts:.3}");
    }
    let _ = writeln!(f, "# EOF");
    drop(f);
    let blocks = dir.join("blocks");
    let out = std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&text)
        .arg(&blocks)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let mut bytes = 0u64;
            let mut stack = vec![blocks];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        stack.push(e.path());
                    } else {
                        bytes += e.metadata().map_or(0, |m| m.len());
                    }
                }
            }
            json!({"samples": samples, "bytes": bytes, "bytes_per_sample": bytes as f64 / samples.max(1) as f64})
        }
        Ok(o) => {
            json!({"skipped": format!("promtool failed: {}", String::from_utf8_lossy(&o.stderr))})
        }
        Err(e) => json!({"skipped": e.to_string()}),
    }
}

async fn ack_to_visible(
    node: &Node,
    http: &reqwest::Client,
    probes: usize,
) -> Result<Value, String> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as V};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let mut samples = Vec::with_capacity(probes);
    for i in 0..probes {
        let marker = format!("probe-{i}-{}", std::process::id());
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: now,
                        body: Some(AnyValue {
                            value: Some(V::StringValue(marker.clone())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let t = Instant::now();
        let r = http
            .post(format!("http://{}/v1/logs", node.http))
            .header("content-type", "application/x-protobuf")
            .header("x-scope-orgid", "probe")
            .body(request.encode_to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("probe export: {}", r.status()));
        }
        loop {
            let v = node
                .sql(
                    http,
                    "probe",
                    &format!("SELECT count(*) AS n FROM logs WHERE body = '{marker}'"),
                )
                .await?;
            if v["rows"][0][0].as_i64() == Some(1) {
                break;
            }
        }
        samples.push(t.elapsed().as_micros() as u32);
    }
    Ok(json!(Percentiles::of(&mut samples)))
}

/// A dashboard query in Strata's SQL and DuckDB's.
pub struct Query {
    pub name: &'static str,
    pub tenant: String,
    pub strata: String,
    pub duckdb: String,
}

/// The queries of the comparison, with literals from the data itself.
async fn queries(node: &Node, http: &reqwest::Client) -> Result<Vec<Query>, String> {
    let one = |v: &Value| v["rows"][0][0].clone();
    let trace = one(&node
        .sql(
            http,
            "traces",
            "SELECT trace_id FROM spans WHERE status_code = 'error' LIMIT 1",
        )
        .await?);
    let trace = trace.as_str().ok_or("no trace to look up")?.to_string();
    let max_log = one(&node
        .sql(http, "app-logs", "SELECT max(time) FROM logs")
        .await?);
    let max_log = max_log.as_str().unwrap_or(START).to_string();
    let max_span = one(&node
        .sql(http, "traces", "SELECT max(time) FROM spans")
        .await?);
    let max_span = max_span.as_str().unwrap_or(START).to_string();
    let tsbs_start = one(&node
        .sql(http, "tsbs-cpu", "SELECT min(time) FROM metrics")
        .await?);
    let tsbs_start = tsbs_start.as_str().unwrap_or(START).to_string();
    let ts = |t: &str| format!("TIMESTAMP '{}'", t.trim_end_matches('Z').replace('T', " "));
    Ok(vec![
        Query {
            name: "trace by id",
            tenant: "traces".into(),
            strata: format!(
                "SELECT span_id, name, service_name, time, duration_ns FROM spans WHERE trace_id = '{trace}'"
            ),
            duckdb: format!(
                "SELECT span_id, name, service_name, time, duration_ns FROM spans WHERE trace_id = '{trace}'"
            ),
        },
        Query {
            name: "latest 100 logs with a term, last hour",
            tenant: "app-logs".into(),
            strata: format!(
                "SELECT time, service_name, body FROM logs WHERE time > TIMESTAMP '{max_log}' - INTERVAL '1 hour' AND body LIKE '%timed out%' ORDER BY time DESC LIMIT 100"
            ),
            duckdb: format!(
                "SELECT time, service_name, body FROM logs WHERE time > {} - INTERVAL '1 hour' AND body LIKE '%timed out%' ORDER BY time DESC LIMIT 100",
                ts(&max_log)
            ),
        },
        Query {
            name: "error rate per service per minute, 6 h",
            tenant: "traces".into(),
            strata: format!(
                "SELECT service_name, date_trunc('minute', time) AS minute, avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate FROM spans WHERE time > TIMESTAMP '{max_span}' - INTERVAL '6 hours' AND kind = 'server' GROUP BY 1, 2"
            ),
            duckdb: format!(
                "SELECT service_name, date_trunc('minute', time) AS minute, avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate FROM spans WHERE time > {} - INTERVAL '6 hours' AND kind = 'server' GROUP BY 1, 2",
                ts(&max_span)
            ),
        },
        Query {
            name: "p99 duration per operation, 24 h",
            tenant: "traces".into(),
            strata: format!(
                "SELECT name, approx_percentile_cont(duration_ns, 0.99) AS p99 FROM spans WHERE time > TIMESTAMP '{max_span}' - INTERVAL '24 hours' GROUP BY name"
            ),
            duckdb: format!(
                "SELECT name, approx_quantile(duration_ns, 0.99) AS p99 FROM spans WHERE time > {} - INTERVAL '24 hours' GROUP BY name",
                ts(&max_span)
            ),
        },
        Query {
            name: "TSBS cpu-max-all-1",
            tenant: "tsbs-cpu".into(),
            strata: format!(
                "SELECT date_trunc('hour', time) AS hour, metric_name, max(value) AS max_value FROM metrics WHERE resource_attributes['hostname'] = 'host_0' AND time >= TIMESTAMP '{tsbs_start}' AND time < TIMESTAMP '{tsbs_start}' + INTERVAL '8 hours' GROUP BY 1, 2"
            ),
            duckdb: format!(
                "SELECT date_trunc('hour', time) AS hour, metric_name, max(value) AS max_value FROM metrics WHERE resource_attributes['hostname'] = 'host_0' AND time >= {t} AND time < {t} + INTERVAL '8 hours' GROUP BY 1, 2",
                t = ts(&tsbs_start)
            ),
        },
        Query {
            name: "TSBS double-groupby-1",
            tenant: "tsbs-cpu".into(),
            strata: format!(
                "SELECT date_trunc('hour', time) AS hour, resource_attributes['hostname'] AS host, avg(value) AS mean FROM metrics WHERE metric_name = 'cpu_usage_user' AND time >= TIMESTAMP '{tsbs_start}' AND time < TIMESTAMP '{tsbs_start}' + INTERVAL '12 hours' GROUP BY 1, 2"
            ),
            duckdb: format!(
                "SELECT date_trunc('hour', time) AS hour, resource_attributes['hostname'] AS host, avg(value) AS mean FROM metrics WHERE metric_name = 'cpu_usage_user' AND time >= {t} AND time < {t} + INTERVAL '12 hours' GROUP BY 1, 2",
                t = ts(&tsbs_start)
            ),
        },
    ])
}

fn duckdb(args: &RunArgs, objects: &Path, queries: &[Query], runs: usize) -> Value {
    let script = Path::new("bench/peers/duckdb_queries.py");
    if !args.python.exists() || !script.exists() {
        return json!({"skipped": format!("{} or {} missing", args.python.display(), script.display())});
    }
    let input = json!({
        "objects": objects.display().to_string(),
        "runs": runs,
        "queries": queries.iter().map(|q| json!({"name": q.name, "tenant": q.tenant, "sql": q.duckdb})).collect::<Vec<_>>(),
    });
    let child = std::process::Command::new(&args.python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return json!({"skipped": "cannot start python"});
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.to_string().as_bytes());
    }
    match child.wait_with_output() {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| json!({"skipped": format!("bad output: {e}")})),
        Ok(o) => json!({"skipped": String::from_utf8_lossy(&o.stderr).to_string()}),
        Err(e) => json!({"skipped": e.to_string()}),
    }
}
