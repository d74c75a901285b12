//! A real rule against a real query engine over temp-dir storage: validation on save plans
//! the SQL, evaluation fires on real spans, and the state change shows in the `alerts` table.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use parking_lot::Mutex;
use strata_alert::rule_store::RuleStore;
use strata_alert::rules::{Rule, RuleGroup};
use strata_alert::scheduler::{RuleQuerier, Scheduler, SchedulerConfig};
use strata_alert::{Alert, AlertSink, Clock, ManualClock, Nanos, SystemClock};
use strata_query::{QueryConfig, QueryEngine};
use strata_storage::audit::Actor;
use strata_storage::objects::object_store_from_url;
use strata_storage::schema::spans_schema;
use strata_storage::{MemoryDocStore, Signal, SqlCatalog, Storage, StorageConfig, TenantId};

/// `(service, status_code)` spans at `time`, in the `spans` schema.
fn spans(rows: &[(&str, &str)], time: Nanos) -> RecordBatch {
    let mut text = String::new();
    for (i, (service, status)) in rows.iter().enumerate() {
        text.push_str(&format!(
            r#"{{"time":{time},"end_time":{time},"duration_ns":1000,"trace_id":"{i:032x}","span_id":"{i:016x}","flags":0,"name":"GET /cart","kind":"server","status_code":"{status}","service_name":"{service}","resource_attributes":{{}},"scope_name":"s","scope_version":"1","attributes":{{}},"dropped_attributes_count":0,"events":[],"dropped_events_count":0,"links":[],"dropped_links_count":0}}"#
        ));
        text.push('\n');
    }
    arrow::json::ReaderBuilder::new(spans_schema())
        .build(Cursor::new(text))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

#[derive(Debug, Default)]
struct Sink(Mutex<Vec<Alert>>);

impl AlertSink for Sink {
    fn receive(&self, _tenant: &str, alerts: Vec<Alert>, _now: Nanos) {
        self.0.lock().extend(alerts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_rule_fires_on_real_spans_and_its_history_is_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(
        SqlCatalog::connect(&format!("sqlite://{}/catalog.db", dir.path().display()))
            .await
            .unwrap(),
    );
    let storage = Storage::open(
        object_store_from_url("memory://").unwrap(),
        catalog,
        StorageConfig::default(),
    )
    .await
    .unwrap();
    let acme = TenantId::new("acme").unwrap();
    let now = SystemClock.now();
    storage
        .write(
            &acme,
            Signal::Spans,
            spans(
                &[
                    ("cart", "error"),
                    ("cart", "error"),
                    ("cart", "ok"),
                    ("cart", "ok"),
                    ("web", "ok"),
                ],
                now - 1_000_000_000,
            ),
        )
        .await
        .unwrap();
    let docs = Arc::new(MemoryDocStore::default());
    let engine = Arc::new(
        QueryEngine::with_executor(
            storage,
            QueryConfig {
                target_partitions: 2,
                ..QueryConfig::default()
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap()
        .with_alert_history(docs.clone()),
    );
    let clock = ManualClock::new(now);
    let store = Arc::new(RuleStore::new(
        docs.clone(),
        engine.clone(),
        Arc::new(clock.clone()),
    ));
    let by = Actor::new("key1", None);
    let rule = Rule {
        alert: "HighErrorRate".into(),
        sql: "SELECT service_name AS service, \
              avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS value \
              FROM spans WHERE time > now() - INTERVAL '5 minutes' GROUP BY service_name"
            .into(),
        condition: Some("value > 0.05".into()),
        for_: None,
        keep_firing_for: None,
        labels: [("severity".to_string(), "page".to_string())].into(),
        annotations: [(
            "summary".to_string(),
            "{{ $labels.service }} error rate {{ $value }}".to_string(),
        )]
        .into(),
    };
    let group = RuleGroup {
        name: "checkout".into(),
        tenant: None,
        interval: Some(Duration::from_secs(15)),
        rules: vec![rule.clone()],
    };

    // Validation plans the SQL without running it.
    assert!(engine.validate(&acme, &rule.evaluated_sql()).await.is_ok());
    let mut bad = group.clone();
    bad.rules[0].sql = "SELECT count(*) AS value FROM nosuch".into();
    let err = store.create(&acme, bad, &by).await.unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("nosuch"), "{err}");
    let mut no_value = group.clone();
    no_value.rules[0].sql = "SELECT count(*) AS n FROM spans".into();
    no_value.rules[0].condition = None;
    let err = store.create(&acme, no_value, &by).await.unwrap_err();
    assert!(err.to_string().contains("no 'value' column"), "{err}");
    let mut bad_condition = group.clone();
    bad_condition.rules[0].condition = Some("nosuchcolumn > 1".into());
    assert_eq!(
        store
            .create(&acme, bad_condition, &by)
            .await
            .unwrap_err()
            .http_status(),
        400
    );

    store.create(&acme, group, &by).await.unwrap();
    let sink = Arc::new(Sink::default());
    let scheduler = Scheduler::new(
        store.clone(),
        engine.clone(),
        sink.clone(),
        Arc::new(clock.clone()),
        tokio::runtime::Handle::current(),
        SchedulerConfig::default(),
    );
    scheduler.reload().await.unwrap();
    let due = scheduler.next_due().unwrap();
    assert_eq!(scheduler.evaluate_due(due).await, 1);

    let status = store.rules_status(&acme).await.unwrap();
    assert_eq!(status[0].rules[0].last_error, None);
    let alerts = sink.0.lock().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].labels["service"], "cart");
    assert_eq!(alerts[0].labels["severity"], "page");
    assert_eq!(alerts[0].value, Some(0.5));
    assert_eq!(alerts[0].annotations["summary"], "cart error rate 0.5");

    let history = engine
        .sql(
            &acme,
            "SELECT alertname, state, value, source FROM alerts ORDER BY time",
        )
        .await
        .unwrap();
    assert_eq!(history.num_rows(), 1);
    let batch = &history.batches[0];
    assert_eq!(batch.column(0).as_string::<i32>().value(0), "HighErrorRate");
    assert_eq!(batch.column(1).as_string::<i32>().value(0), "firing");
    assert_eq!(batch.column(3).as_string::<i32>().value(0), "rule");
    let other = engine
        .sql(&TenantId::new("globex").unwrap(), "SELECT * FROM alerts")
        .await
        .unwrap();
    assert_eq!(other.num_rows(), 0);
}
