//! Writes the seed corpora of `fuzz/corpus/` (deterministic: the same files every run).
//!
//!     cd fuzz && cargo fuzz build --sanitizer none --codegen-units 16 --features corpus gen_corpus
//!     target/x86_64-unknown-linux-gnu/release/gen_corpus
//!
//! (Built like the targets, so it reuses their build; for that it links libFuzzer too,
//! which provides the coverage hooks the instrumented code calls.)
//!
//! - `otlp_protobuf`: small requests of every `strata-bench` workload (realistic shop
//!   traces, nginx and application logs, TSBS gauges, HTTP histograms), plus the protobuf
//!   form of every `otlp_json` seed;
//! - `decompress`: gzip of some of those bodies, one multi-member and an empty one, with
//!   limits below, at and above their size;
//! - `tenant_id`: ordinary and borderline ids.
//!
//! `otlp_json` holds the JSON bodies of `proto/src/json/tests.rs` and
//! `tests/e2e/test_otlp_json.py`; this reads them and writes nothing there.
//! Every seed of the OTLP targets starts with the signal byte (0 traces, 1 logs, 2 metrics).

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys as _;
use prost::Message;
use strata_bench::data::{Size, Workload, generate};

const HOUR_NS: i64 = 3_600_000_000_000;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A `decompress` seed: two little-endian bytes of limit, then the body.
fn with_limit(limit: u16, body: &[u8]) -> Vec<u8> {
    [&limit.to_le_bytes()[..], body].concat()
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let protobuf = corpus.join("otlp_protobuf");
    let decompress = corpus.join("decompress");
    let tenant = corpus.join("tenant_id");
    for dir in [&protobuf, &decompress, &tenant] {
        fs::create_dir_all(dir).unwrap();
    }

    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for (workload, selector, items) in [
        (Workload::Traces, 0u8, 24),
        (Workload::NginxLogs, 1, 8),
        (Workload::AppLogs, 1, 8),
        (Workload::TsbsCpu, 2, 20),
        (Workload::HttpHistograms, 2, 6),
    ] {
        let size = Size {
            items,
            batch: items as usize,
            start_ns: 1_704_067_200_000_000_000,
            span_ns: HOUR_NS,
        };
        let dataset = generate(workload, 42, &size);
        let body = dataset.requests.first().expect("one request").to_vec();
        bodies.push((
            format!("{selector}-bench-{}", workload.name()),
            [&[selector][..], &body].concat(),
        ));
    }

    let mut json_seeds: Vec<_> = fs::read_dir(corpus.join("otlp_json"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    json_seeds.sort();
    for path in json_seeds {
        let data = fs::read(&path).unwrap();
        let (selector, body) = data.split_first().unwrap();
        let encoded = match selector % 3 {
            0 => strata_proto::json::decode_traces(body).map(|r| r.encode_to_vec()),
            1 => strata_proto::json::decode_logs(body).map(|r| r.encode_to_vec()),
            _ => strata_proto::json::decode_metrics(body).map(|r| r.encode_to_vec()),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        bodies.push((
            format!("{stem}-from-json"),
            [&[*selector][..], &encoded].concat(),
        ));
    }
    for (name, bytes) in &bodies {
        write(&protobuf, &format!("{name}.pb"), bytes);
    }

    for (name, bytes) in bodies
        .iter()
        .filter(|(n, _)| n.contains("bench") || n.contains("e2e"))
    {
        let body = &bytes[1..];
        let gz = gzip(body);
        let n = body.len() as u16;
        write(&decompress, &format!("{name}.fits.gz"), &with_limit(n, &gz));
        write(
            &decompress,
            &format!("{name}.over.gz"),
            &with_limit(n - 1, &gz),
        );
    }
    let two_members = [gzip(b"first member, "), gzip(b"second member")].concat();
    write(
        &decompress,
        "two-members.gz",
        &with_limit(1024, &two_members),
    );
    write(&decompress, "empty.gz", &with_limit(0, &gzip(b"")));
    // 64 KiB of zeroes in a few hundred bytes: the bomb shape, stopped at the limit.
    write(
        &decompress,
        "zeroes.gz",
        &with_limit(4096, &gzip(&[0u8; 65536])),
    );

    for (name, id) in [
        ("default", "default"),
        ("dashes", "team-a_prod.eu-1"),
        ("dot-inside", "a.b"),
        ("dots", ".."),
        ("slash", "a/b"),
        ("backslash", "a\\b"),
        ("space", "a b"),
        ("newline", "a\nb"),
        ("nul", "a\0b"),
        ("unicode", "é"),
        ("max-len", &"x".repeat(150)),
        ("too-long", &"x".repeat(151)),
        ("traversal", "../../etc"),
        ("equals", "tenant=x"),
    ] {
        write(&tenant, name, id.as_bytes());
    }
    write(&tenant, "invalid-utf8", b"ab\xff\xfe");
}
