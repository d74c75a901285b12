-- The audit log (docs/SECURITY.md, "Audit log"): one row per administrative action of a
-- tenant — key creation and revocation, refused admin requests. Append-only: Strata has no
-- code that updates or deletes these rows. `time` is ns since the Unix epoch; `actor` is a key
-- id, `bootstrap`, `cli` or `anonymous` (auth none); `detail` is a JSON object (never a
-- secret); `remote_addr` is the client's IP:port (for the CLI: user@host), NULL when unknown;
-- `outcome` is `success` or `denied`.
CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    time         BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT,
    detail       TEXT NOT NULL,
    remote_addr  TEXT,
    outcome      TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant_time ON audit_log (tenant, time);
