-- Alerting state (docs/ALERTING.md). `alerting_docs` holds every alerting object of a tenant as
-- a JSON document, keyed by its kind (`rule_group`, `rule_state`, `silence`, `incident`,
-- `alert_group`, `notification`, …) and id: objects are few (hundreds to thousands per tenant)
-- and read whole, so one table serves them all. `updated_at` is ns since the Unix epoch.
CREATE TABLE alerting_docs (
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, id)
);
-- Alert history: one row per state change of an alert instance (pending, firing, resolved,
-- inactive), append-only; served as the SQL table `alerts`. `labels` and `annotations` are
-- JSON objects; `value` is NULL for alerts received through the Alertmanager intake.
CREATE TABLE alert_history (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    time         BIGINT NOT NULL,
    alertname    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL,
    value        DOUBLE PRECISION,
    labels       TEXT NOT NULL,
    annotations  TEXT NOT NULL,
    source       TEXT NOT NULL
);
CREATE INDEX alert_history_by_tenant_time ON alert_history (tenant, time);
