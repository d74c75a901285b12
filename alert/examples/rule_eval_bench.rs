//! Rule evaluation load: N rules (default 1,000) in groups of 10 at a 15 s interval against a
//! real query engine over in-memory storage holding some spans; evaluates one interval's
//! worth of groups and reports evaluations/s, CPU seconds per interval (from
//! /proc/self/stat) and p50/p99 evaluation latency.
//!
//! ```text
//! cargo run -p strata-alert --example rule_eval_bench -- [rules] [spans]
//! ```
//!
//! Numbers from a debug build mean nothing; use `--release` for figures worth quoting.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use strata_alert::rule_store::RuleStore;
use strata_alert::rules::{Rule, RuleGroup};
use strata_alert::scheduler::{Scheduler, SchedulerConfig};
use strata_alert::{Alert, AlertSink, Clock, ManualClock, Nanos, SystemClock};
use strata_query::{QueryConfig, QueryEngine};
use strata_storage::audit::Actor;
use strata_storage::objects::object_store_from_url;
use strata_storage::schema::spans_schema;
use strata_storage::{MemoryDocStore, Signal, SqlCatalog, Storage, StorageConfig, TenantId};

const RULES_PER_GROUP: usize = 10;
const INTERVAL: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct CountingSink(std::sync::atomic::AtomicUsize);

impl AlertSink for CountingSink {
    fn receive(&self, _tenant: &str, alerts: Vec<Alert>, _now: Nanos) {
        self.0
            .fetch_add(alerts.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// `n` spans of 10 services, one in 20 an error, spread over the last minute.
fn spans(n: usize, now: Nanos) -> RecordBatch {
    let mut text = String::new();
    for i in 0..n {
        let time = now - (i as i64 % 60) * 1_000_000_000;
        let service = format!("svc{}", i % 10);
        let status = if i % 20 == 0 { "error" } else { "ok" };
        text.push_str(&format!(
            r#"{{"time":{time},"end_time":{time},"duration_ns":1000,"trace_id":"{i:032x}","span_id":"{i:016x}","flags":0,"name":"GET /","kind":"server","status_code":"{status}","service_name":"{service}","resource_attributes":{{}},"scope_name":"s","scope_version":"1","attributes":{{}},"dropped_attributes_count":0,"events":[],"dropped_events_count":0,"links":[],"dropped_links_count":0}}"#
        ));
        text.push('\n');
    }
    arrow::json::ReaderBuilder::new(spans_schema())
        .with_batch_size(n.max(1))
        .build(Cursor::new(text))
        .expect("reader")
        .next()
        .expect("a batch")
        .expect("valid spans")
}

/// This process's user + system CPU seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux platform Strata runs on.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rules: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let span_count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);

    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(
        SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
            .await
            .expect("catalog"),
    );
    let storage = Storage::open(
        object_store_from_url("memory://").expect("store"),
        catalog,
        StorageConfig::default(),
    )
    .await
    .expect("storage");
    let tenant = TenantId::new("bench").expect("tenant");
    let now = SystemClock.now();
    storage
        .write(&tenant, Signal::Spans, spans(span_count, now))
        .await
        .expect("write");
    storage.flush_all().await.expect("flush");
    let docs = Arc::new(MemoryDocStore::default());
    let engine = Arc::new(
        QueryEngine::new(
            storage,
            QueryConfig {
                target_partitions: 2,
                ..QueryConfig::default()
            },
        )
        .expect("engine")
        .with_alert_history(docs.clone()),
    );
    let clock = ManualClock::new(now);
    let store = Arc::new(RuleStore::new(
        docs.clone(),
        engine.clone(),
        Arc::new(clock.clone()),
    ));
    let by = Actor::new("bench", None);
    let groups = rules.div_ceil(RULES_PER_GROUP);
    let mut made = 0;
    for g in 0..groups {
        let n = RULES_PER_GROUP.min(rules - made);
        let group = RuleGroup {
            name: format!("group{g}"),
            tenant: None,
            interval: Some(INTERVAL),
            rules: (0..n)
                .map(|r| Rule {
                    alert: format!("ErrorRate{r}"),
                    sql: format!(
                        "SELECT service_name AS service, \
                         avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS value \
                         FROM spans WHERE time > now() - INTERVAL '5 minutes' \
                         AND service_name = 'svc{}' GROUP BY service_name",
                        (g * RULES_PER_GROUP + r) % 10
                    ),
                    condition: Some("value > 0.01".into()),
                    for_: Some(Duration::from_secs(60)),
                    keep_firing_for: None,
                    labels: Default::default(),
                    annotations: [("summary".to_string(), "{{ $value }}".to_string())].into(),
                })
                .collect(),
        };
        store.create(&tenant, group, &by).await.expect("create");
        made += n;
    }
    let sink = Arc::new(CountingSink::default());
    let scheduler = Scheduler::new(
        store.clone(),
        engine.clone(),
        sink.clone(),
        Arc::new(clock.clone()),
        tokio::runtime::Handle::current(),
        SchedulerConfig::default(),
    );
    scheduler.reload().await.expect("reload");

    // One interval: every group falls due once within [now, now + interval).
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut evaluated_groups = 0;
    let end = now + INTERVAL.as_nanos() as i64;
    while let Some(due) = scheduler.next_due().filter(|d| *d < end) {
        clock.set(due);
        evaluated_groups += scheduler.evaluate_due(due).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;

    let mut latencies: Vec<f64> = (store.rules_status(&tenant).await.expect("status"))
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.last_evaluation.is_some())
        .map(|r| r.evaluation_duration_seconds * 1_000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let errors = (store.rules_status(&tenant).await.expect("status"))
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.last_error.is_some())
        .count();
    println!("rules: {made} in {evaluated_groups} groups, interval 15s, {span_count} spans");
    println!(
        "evaluations: {} in {wall:.3} s wall = {:.1} evaluations/s",
        latencies.len(),
        latencies.len() as f64 / wall
    );
    println!(
        "CPU seconds per interval: {cpu:.2} ({:.1}% of one core over 15 s)",
        cpu / INTERVAL.as_secs_f64() * 100.0
    );
    println!(
        "latency per evaluation: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "unhealthy rules: {errors}; alerts sent: {}",
        sink.0.load(std::sync::atomic::Ordering::Relaxed)
    );
}
