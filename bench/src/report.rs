//! The generated part of `docs/BENCHMARKS.md`: every figure of a run next to its target and
//! its reference, between two marker comments (the rest of the document is written by hand).

use std::path::Path;

use serde_json::Value;

const BEGIN: &str = "<!-- strata-bench run: begin (generated; do not edit) -->";
const END: &str = "<!-- strata-bench run: end -->";

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0} k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// "met" / "missed" with the ratio of measured to target.
fn verdict(measured: f64, target: f64, higher_is_better: bool) -> String {
    if !measured.is_finite() {
        return "not measured".into();
    }
    let ratio = measured / target;
    let met = if higher_is_better {
        ratio >= 1.0
    } else {
        ratio <= 1.0
    };
    format!(
        "{} ({:.2}× of target)",
        if met { "**met**" } else { "missed" },
        ratio
    )
}

/// Renders a run as Markdown.
pub fn render(results: &Value, file: &Path) -> String {
    let mut out = String::new();
    let m = &results["machine"];
    out.push_str(&format!(
        "Run: `{}` mode, {} — {} ({} cores), {}; binary `{}`; results in `{}`.\n\n",
        results["mode"].as_str().unwrap_or("?"),
        results["started"].as_str().unwrap_or("?"),
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["memory"]
            .as_str()
            .unwrap_or("?")
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" "),
        results["strata_bin"].as_str().unwrap_or("?"),
        file.display()
    ));

    out.push_str("### Ingest, per second of server CPU\n\n");
    out.push_str("Flat out over 8 connections; a request the node refuses (429 / `UNAVAILABLE`, its buffer full while flushing catches up) is sent again after a backoff, as an exporter would, and counted once when acknowledged (\"refusals\").\n\n");
    out.push_str("| workload | protocol | items | server CPU s | items/s per core | MB/s per core | wall items/s | ack p50 / p99 ms | refusals | decode-only items/s (limit) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let decode = results["decode_only"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in results["ingest"].as_array().into_iter().flatten() {
        let limit = decode
            .iter()
            .find(|d| d["workload"] == r["workload"])
            .map_or(f64::NAN, |d| f(&d["items_per_core_s"]));
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} / {} | {} | {} |\n",
            r["workload"].as_str().unwrap_or(""),
            r["protocol"].as_str().unwrap_or(""),
            num(f(&r["items"])),
            f(&r["server_cpu_s"]),
            num(f(&r["items_per_server_core_s"])),
            num(f(&r["mb_per_server_core_s"])),
            num(f(&r["items_per_wall_s"])),
            num(f(&r["load"]["latency_ms"]["p50"])),
            num(f(&r["load"]["latency_ms"]["p99"])),
            r["load"]["retried"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>()),
            num(limit),
        ));
    }
    if let Some(p) = results["pipeline"].as_array() {
        out.push_str("\nPipeline stages in process, one core (`ingest/examples/pipeline.rs`): items/s\n\n| workload | decode | decode + convert | + sort + Parquet | WAL record encoding alone |\n|---|---|---|---|---|\n");
        for r in p {
            let s = &r["stages"];
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r["workload"].as_str().unwrap_or(""),
                num(f(&s["decode_items_per_s"])),
                num(f(&s["convert_items_per_s"])),
                num(f(&s["parquet_items_per_s"])),
                num(f(&s["wal_encode_items_per_s"])),
            ));
        }
    } else if let Some(s) = results["pipeline"]["skipped"].as_str() {
        out.push_str(&format!("\nPipeline limits: not measured ({s}).\n"));
    }

    out.push_str("\n### Storage after compaction\n\n| workload | stored bytes/item | OTLP protobuf bytes/item | gzip of it | other reference |\n|---|---|---|---|---|\n");
    for r in results["storage"].as_array().into_iter().flatten() {
        let other = if let Some(x) = r["raw_line_bytes_per_item"].as_f64() {
            format!(
                "raw nginx line: {} B ({:.1}× larger than stored); zstd -19 of the lines: {} B ({:.1}×)",
                num(x),
                f(&r["raw_lines_to_stored_ratio"]),
                num(f(&r["raw_lines_zstd19_bytes_per_item"])),
                f(&r["raw_lines_to_zstd19_ratio"])
            )
        } else if let Some(b) = r["prometheus_tsdb"]["bytes_per_sample"].as_f64() {
            format!(
                "Prometheus TSDB: {} B/sample ({} samples)",
                num(b),
                num(f(&r["prometheus_tsdb"]["samples"]))
            )
        } else if let Some(s) = r["prometheus_tsdb"]["skipped"].as_str() {
            format!("Prometheus TSDB: not measured ({s})")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r["workload"].as_str().unwrap_or(""),
            num(f(&r["bytes_per_item"])),
            num(f(&r["otlp_protobuf_bytes_per_item"])),
            num(f(&r["otlp_protobuf_gzip_bytes_per_item"])),
            other
        ));
    }

    out.push_str("\n### Ack latency at a fixed rate\n\n| connections | rate items/s | acked | failed | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|\n");
    for r in results["ack_latency"].as_array().into_iter().flatten() {
        let l = &r["report"];
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["connections"],
            num(f(&r["rate_items_per_s"])),
            num(f(&l["items_acked"])),
            l["requests_failed"],
            num(f(&l["latency_ms"]["p50"])),
            num(f(&l["latency_ms"]["p95"])),
            num(f(&l["latency_ms"]["p99"])),
            num(f(&l["latency_ms"]["max"])),
        ));
    }
    let v = &results["ack_to_visible_ms"];
    out.push_str(&format!(
        "\nAcknowledgement to visible in a query: p50 {} ms, p99 {} ms (export, then query until the row is there).\n",
        num(f(&v["p50"])),
        num(f(&v["p99"]))
    ));

    out.push_str("\n### Queries (`/api/v1/sql`) and DuckDB on the same Parquet files\n\n| query | Strata warm p50 / p95 / p99 ms | Strata cold ms | DuckDB p50 / p95 ms | Strata p50 ÷ DuckDB p50 |\n|---|---|---|---|---|\n");
    let duck = results["duckdb"]["queries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for q in results["queries"].as_array().into_iter().flatten() {
        let d = duck.iter().find(|d| d["name"] == q["name"]);
        let (dp50, dp95) = d.map_or((f64::NAN, f64::NAN), |d| (f(&d["p50_ms"]), f(&d["p95_ms"])));
        out.push_str(&format!(
            "| {} | {} / {} / {} | {} | {} / {} | {} |\n",
            q["name"].as_str().unwrap_or(""),
            num(f(&q["warm_ms"]["p50"])),
            num(f(&q["warm_ms"]["p95"])),
            num(f(&q["warm_ms"]["p99"])),
            num(f(&q["cold_ms"])),
            num(dp50),
            num(dp95),
            num(f(&q["warm_ms"]["p50"]) / dp50),
        ));
    }
    if let Some(s) = results["duckdb"]["skipped"].as_str() {
        out.push_str(&format!("\nDuckDB: not measured ({s}).\n"));
    }

    out.push_str("\n### Peak RSS of the ingest nodes\n\n");
    if let Some(o) = results["peak_rss_bytes"].as_object() {
        for (k, v) in o {
            out.push_str(&format!("- {k}: {} MiB\n", num(f(v) / 1048576.0)));
        }
    }

    // Targets.
    let ingest = |w: &str, key: &str| -> f64 {
        results["ingest"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["workload"] == w)
            .map(|r| f(&r[key]))
            .fold(f64::NAN, f64::max)
    };
    let log_mb = ingest("nginx-logs", "mb_per_server_core_s")
        .max(ingest("app-logs", "mb_per_server_core_s"));
    let storage = |w: &str, key: &str| -> f64 {
        results["storage"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["workload"] == w)
            .map_or(f64::NAN, |r| f(&r[key]))
    };
    let query = |name: &str, key: &str| -> f64 {
        results["queries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["name"] == name)
            .map_or(f64::NAN, |q| f(&q["warm_ms"][key]))
    };
    let slowest_vs_duck = results["queries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| {
            let d = duck.iter().find(|d| d["name"] == q["name"])?;
            Some(f(&q["warm_ms"]["p50"]) / f(&d["p50_ms"]))
        })
        .fold(f64::NAN, f64::max);
    let p99_10k = results["ack_latency"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["connections"] == 10_000)
        .map_or(f64::NAN, |r| f(&r["report"]["latency_ms"]["p99"]));
    out.push_str("\n### Targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    let rows = [
        (
            "≥ 250k spans/s per server core",
            ingest("traces", "items_per_server_core_s"),
            250_000.0,
            true,
        ),
        (
            "≥ 50 MB/s of log payload per server core",
            log_mb,
            50.0,
            true,
        ),
        (
            "≥ 500k metric points/s per server core",
            ingest("tsbs-cpu", "items_per_server_core_s"),
            500_000.0,
            true,
        ),
        (
            "≤ 1.0 byte per TSBS-like sample",
            storage("tsbs-cpu", "bytes_per_item"),
            1.0,
            false,
        ),
        (
            "≤ 50 bytes per span",
            storage("traces", "bytes_per_item"),
            50.0,
            false,
        ),
        (
            "≥ 15× smaller than raw nginx lines",
            storage("nginx-logs", "raw_lines_to_stored_ratio"),
            15.0,
            true,
        ),
        (
            "trace by id, warm p99 ≤ 50 ms",
            query("trace by id", "p99"),
            50.0,
            false,
        ),
        (
            "latest 100 matching a term, warm p99 ≤ 200 ms",
            query("latest 100 logs with a term, last hour", "p99"),
            200.0,
            false,
        ),
        (
            "no query slower than DuckDB (worst p50 ratio ≤ 1)",
            slowest_vs_duck,
            1.0,
            false,
        ),
        (
            "10,000 connections, ack p99 ≤ 100 ms",
            p99_10k,
            100.0,
            false,
        ),
    ];
    for (name, measured, target, higher) in rows {
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            num(measured),
            verdict(measured, target, higher)
        ));
    }
    out
}

/// Rewrites the generated section of the document (appending it if the markers are absent).
pub fn update_docs(docs: &Path, results: &Value, file: &Path) -> Result<(), String> {
    let section = format!("{BEGIN}\n{}\n{END}", render(results, file));
    let text = std::fs::read_to_string(docs).unwrap_or_else(|_| "# Benchmarks\n".into());
    let text = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &text[..b], section, &text[e + END.len()..])
        }
        _ => format!(
            "{}\n\n## Latest `strata-bench run`\n\n{section}\n",
            text.trim_end()
        ),
    };
    std::fs::write(docs, text).map_err(|e| format!("{}: {e}", docs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_state_the_ratio() {
        assert_eq!(
            verdict(300_000.0, 250_000.0, true),
            "**met** (1.20× of target)"
        );
        assert_eq!(verdict(2.0, 1.0, false), "missed (2.00× of target)");
        assert_eq!(verdict(f64::NAN, 1.0, false), "not measured");
    }

    #[test]
    fn the_section_is_replaced_not_appended_twice() {
        let dir = std::env::temp_dir().join(format!("strata-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let docs = dir.join("B.md");
        std::fs::write(&docs, "# Benchmarks\n\nhand-written\n").unwrap();
        let results = serde_json::json!({"mode": "quick"});
        update_docs(&docs, &results, Path::new("r.json")).unwrap();
        update_docs(&docs, &results, Path::new("r.json")).unwrap();
        let text = std::fs::read_to_string(&docs).unwrap();
        assert_eq!(text.matches(BEGIN).count(), 1);
        assert!(text.starts_with("# Benchmarks\n\nhand-written\n"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
