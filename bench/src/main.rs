//! # strata-bench
//!
//! The load generator and benchmark runner: deterministic OTLP data shaped like real services
//! (`data/`), load over gRPC and HTTP with ack-latency measurement (`load.rs`), and the suite
//! that runs fresh nodes and writes `bench/results/*.json` and `docs/BENCHMARKS.md` (`run.rs`).
//! Depends on `strata-proto` only; it talks to Strata over the network like any client.
//!
//! ```text
//! strata-bench generate --workload traces --items 1000000 --out traces.otlp
//! strata-bench load --workload traces --items 1000000 --protocol grpc --endpoint 127.0.0.1:4317 -c 8
//! strata-bench load --input traces.otlp --protocol http --endpoint 127.0.0.1:4318 --rate 50000
//! strata-bench run --quick
//! ```

mod load;
mod node;
mod report;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use strata_bench::data::{Size, Stream, Workload, generate};
use strata_bench::{data, dataset_file};

use crate::load::{LoadConfig, Protocol};

#[derive(Debug, Parser)]
#[command(
    name = "strata-bench",
    about = "Load generator and benchmark runner for Strata"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a data set and write it to a file of encoded OTLP export requests.
    Generate {
        #[command(flatten)]
        data: DataArgs,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Send a data set to a running node and report throughput and ack latency (JSON).
    Load(Box<LoadArgs>),
    /// Run the whole suite against fresh nodes; writes bench/results/*.json and the table of
    /// docs/BENCHMARKS.md.
    Run(Box<run::RunArgs>),
}

/// What data to generate.
#[derive(Debug, Clone, Args)]
struct DataArgs {
    #[arg(long, value_enum, default_value = "traces")]
    workload: Workload,
    /// Items (spans, log records, data points) in total.
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Items per export request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start of the data's time window (RFC 3339).
    #[arg(long, default_value = "2026-01-05T00:00:00Z")]
    start: String,
    /// Length of the data's time window, in hours.
    #[arg(long, default_value_t = 6.0)]
    hours: f64,
}

impl DataArgs {
    fn size(&self) -> Result<Size, String> {
        let start = chrono::DateTime::parse_from_rfc3339(&self.start)
            .map_err(|e| format!("--start {}: {e}", self.start))?;
        Ok(Size {
            items: self.items,
            batch: self.batch.max(1),
            start_ns: start.timestamp_nanos_opt().ok_or("--start out of range")?,
            span_ns: (self.hours * 3600e9) as i64,
        })
    }
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Read the data set from a file written by `generate` (else generate it in memory).
    #[arg(long)]
    input: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// `host:port` of the node's OTLP listener for the protocol.
    #[arg(long)]
    endpoint: String,
    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 4)]
    connections: usize,
    /// Target items per second over all connections (default: flat out).
    #[arg(long)]
    rate: Option<f64>,
    /// Send the data set this many times.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// gzip request bodies.
    #[arg(long)]
    gzip: bool,
    /// Resend refused requests (429/503, UNAVAILABLE) after a backoff until acknowledged, as
    /// OpenTelemetry exporters do.
    #[arg(long)]
    retry: bool,
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Generate { data, out } => {
                let dataset = generate(data.workload, data.seed, &data.size()?);
                dataset_file::write(&out, &dataset)
                    .map_err(|e| format!("{}: {e}", out.display()))?;
                eprintln!(
                    "wrote {} requests, {} items, {} bytes to {}",
                    dataset.requests.len(),
                    dataset.total_items(),
                    dataset.total_bytes(),
                    out.display()
                );
                Ok(())
            }
            Command::Load(args) => {
                let (requests, workload): (load::Requests, Workload) = match &args.input {
                    Some(path) => {
                        let dataset = dataset_file::read(path)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        let workload = dataset.workload;
                        (load::passes(Arc::new(dataset), args.passes), workload)
                    }
                    None => {
                        let size = args.data.size()?;
                        let (w, seed, passes) = (args.data.workload, args.data.seed, args.passes);
                        let requests: load::Requests = Box::new(
                            (0..passes.max(1)).flat_map(move |_| Stream::new(w, seed, &size)),
                        );
                        (requests, w)
                    }
                };
                raise_fd_limit();
                let report = load::run(
                    requests,
                    workload.signal(),
                    LoadConfig {
                        protocol: args.protocol,
                        endpoint: args.endpoint.clone(),
                        connections: args.connections,
                        rate: args.rate,
                        max_duration: args.seconds.map(Duration::from_secs_f64),
                        tenant: args.tenant.clone(),
                        gzip: args.gzip,
                        retry: args.retry,
                    },
                )
                .await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serializable")
                );
                Ok(())
            }
            Command::Run(args) => run::run(*args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Lifts the soft limit on open files to the hard limit: 10,000 connections need it.
pub(crate) fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
