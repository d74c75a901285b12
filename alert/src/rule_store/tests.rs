//! Rule store CRUD, validation, audit rows and read-only file groups.

use std::sync::Arc;

use strata_storage::MemoryDocStore;

use super::*;
use crate::rules::Rule;
use crate::scheduler::tests::FakeQuerier;
use crate::time::ManualClock;

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn group(name: &str, sql: &str) -> RuleGroup {
    RuleGroup {
        name: name.into(),
        tenant: None,
        interval: None,
        rules: vec![Rule {
            alert: "HighErrorRate".into(),
            sql: sql.into(),
            condition: None,
            for_: None,
            keep_firing_for: None,
            labels: Default::default(),
            annotations: Default::default(),
        }],
    }
}

fn store(docs: Arc<MemoryDocStore>) -> RuleStore {
    RuleStore::new(
        docs,
        Arc::new(FakeQuerier::default()),
        Arc::new(ManualClock::new(1_000)),
    )
    .with_file_groups(vec![(acme(), group("from_file", "SELECT 1 AS value"))])
}

fn by() -> Actor {
    Actor::new("key1", Some("10.0.0.1:5000".into()))
}

#[tokio::test]
async fn groups_are_created_read_updated_and_deleted_with_audit_rows() {
    let docs = Arc::new(MemoryDocStore::default());
    let store = store(docs.clone());
    let created = store
        .create(&acme(), group("checkout", "SELECT 1 AS value"), &by())
        .await
        .unwrap();
    assert_eq!(created.origin, GroupOrigin::Api);
    assert_eq!(created.updated_at, Some(1_000));
    let got = store.get(&acme(), "checkout").await.unwrap();
    assert_eq!(got, created);
    let names: Vec<(String, GroupOrigin)> = (store.list(&acme()).await.unwrap())
        .into_iter()
        .map(|g| (g.group.name, g.origin))
        .collect();
    assert_eq!(
        names,
        [
            ("checkout".into(), GroupOrigin::Api),
            ("from_file".into(), GroupOrigin::File)
        ]
    );
    let other = TenantId::new("globex").unwrap();
    assert!(store.list(&other).await.unwrap().is_empty(), "per tenant");
    assert!(matches!(
        store.get(&other, "checkout").await,
        Err(RuleStoreError::NotFound(_))
    ));

    let updated = store
        .update(
            &acme(),
            "checkout",
            group("checkout", "SELECT 2 AS value"),
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(updated.group.rules[0].sql, "SELECT 2 AS value");
    assert_eq!(
        store.get(&acme(), "checkout").await.unwrap().group.rules[0].sql,
        "SELECT 2 AS value"
    );
    store.delete(&acme(), "checkout", &by()).await.unwrap();
    assert!(matches!(
        store.get(&acme(), "checkout").await,
        Err(RuleStoreError::NotFound(_))
    ));

    let audit = docs.audit_rows();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [RULE_GROUP_CREATE, RULE_GROUP_UPDATE, RULE_GROUP_DELETE]
    );
    assert!(audit.iter().all(|e| e.target.as_deref() == Some("checkout")
        && e.actor == "key1"
        && e.tenant == acme()
        && e.remote_addr.as_deref() == Some("10.0.0.1:5000")));
    assert!(
        audit[0].detail.contains(r#""interval":"1m""#),
        "{}",
        audit[0].detail
    );
}

#[tokio::test]
async fn errors_map_to_400_404_and_409() {
    let docs = Arc::new(MemoryDocStore::default());
    let store = store(docs.clone());
    store
        .create(&acme(), group("checkout", "SELECT 1 AS value"), &by())
        .await
        .unwrap();

    let dup = store
        .create(&acme(), group("checkout", "SELECT 1 AS value"), &by())
        .await
        .unwrap_err();
    assert!(matches!(dup, RuleStoreError::AlreadyExists(_)));
    assert_eq!(dup.http_status(), 409);

    let missing = store
        .update(&acme(), "nope", group("nope", "SELECT 1 AS value"), &by())
        .await
        .unwrap_err();
    assert_eq!(missing.http_status(), 404);
    assert_eq!(
        store
            .delete(&acme(), "nope", &by())
            .await
            .unwrap_err()
            .http_status(),
        404
    );

    let bad_sql = store
        .create(&acme(), group("bad", "SELECT * FROM nosuch"), &by())
        .await
        .unwrap_err();
    assert_eq!(bad_sql.http_status(), 400);
    let message = bad_sql.to_string();
    assert!(
        message.contains("rule \"HighErrorRate\"") && message.contains("nosuch"),
        "{message}"
    );

    let mut invalid = group("bad", "SELECT 1 AS value");
    invalid.rules[0].labels.insert("a-b".into(), "x".into());
    assert_eq!(
        store
            .create(&acme(), invalid, &by())
            .await
            .unwrap_err()
            .http_status(),
        400
    );

    let mut elsewhere = group("bad", "SELECT 1 AS value");
    elsewhere.tenant = Some("globex".into());
    let err = store.create(&acme(), elsewhere, &by()).await.unwrap_err();
    assert!(err.to_string().contains("names tenant \"globex\""), "{err}");

    let renamed = store
        .update(
            &acme(),
            "checkout",
            group("other", "SELECT 1 AS value"),
            &by(),
        )
        .await
        .unwrap_err();
    assert!(
        renamed.to_string().contains("cannot be renamed"),
        "{renamed}"
    );

    assert_eq!(
        docs.audit_rows().len(),
        1,
        "refused changes write no audit row"
    );
}

#[tokio::test]
async fn groups_from_rule_files_are_read_only() {
    let docs = Arc::new(MemoryDocStore::default());
    let store = store(docs.clone());
    let got = store.get(&acme(), "from_file").await.unwrap();
    assert_eq!(got.origin, GroupOrigin::File);
    let update = store
        .update(
            &acme(),
            "from_file",
            group("from_file", "SELECT 2 AS value"),
            &by(),
        )
        .await
        .unwrap_err();
    assert!(matches!(update, RuleStoreError::ReadOnly(_)));
    assert_eq!(update.http_status(), 409);
    assert!(update.to_string().contains("read-only"));
    let delete = store.delete(&acme(), "from_file", &by()).await.unwrap_err();
    assert!(matches!(delete, RuleStoreError::ReadOnly(_)));
    let create = store
        .create(&acme(), group("from_file", "SELECT 2 AS value"), &by())
        .await
        .unwrap_err();
    assert_eq!(create.http_status(), 409);
    // Another tenant may use the name.
    store
        .create(
            &TenantId::new("globex").unwrap(),
            group("from_file", "SELECT 1 AS value"),
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(store.all_groups().await.unwrap().len(), 2);
    assert!(docs.audit_rows().len() == 1);
}

#[tokio::test]
async fn rule_status_lists_every_rule_unknown_until_evaluated() {
    let store = store(Arc::new(MemoryDocStore::default()));
    let status = store.rules_status(&acme()).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, "from_file");
    assert_eq!(status[0].interval_seconds, 60.0);
    assert_eq!(status[0].rules[0].health, Health::Unknown);
    store.record_status(
        &acme(),
        "from_file",
        vec![(
            "HighErrorRate".into(),
            RuleStatus {
                health: Health::Err,
                last_error: Some("boom".into()),
                last_evaluation: Some(5),
                evaluation_duration: std::time::Duration::from_millis(250),
            },
            StateCounts {
                pending: 1,
                firing: 2,
                resolved: 0,
            },
        )],
    );
    let status = store.rules_status(&acme()).await.unwrap();
    let rule = &status[0].rules[0];
    assert_eq!(rule.health, Health::Err);
    assert_eq!(rule.last_error.as_deref(), Some("boom"));
    assert_eq!(rule.evaluation_duration_seconds, 0.25);
    assert_eq!(rule.counts.firing, 2);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json[0]["rules"][0]["health"], "err");
}
