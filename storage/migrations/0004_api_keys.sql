-- API keys (docs/SECURITY.md). The secret itself is never stored: `hash` is the lowercase
-- hex SHA-256 of the whole key (`strata_<id>_<secret>`). `scopes` is a comma-separated list
-- of ingest, read, write, admin. Times are nanoseconds since the Unix epoch; `expires_at`
-- NULL means never, `revoked_at` NULL means not revoked.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    created_by  TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
