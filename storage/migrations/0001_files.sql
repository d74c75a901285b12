-- One row per Parquet file on the object store. Written in the SQL that SQLite and
-- PostgreSQL share; times are nanoseconds since the Unix epoch.
CREATE TABLE files (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    signal      TEXT NOT NULL,
    path        TEXT NOT NULL,
    min_time    BIGINT NOT NULL,
    max_time    BIGINT NOT NULL,
    row_count   BIGINT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    level       INTEGER NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX files_by_table_time ON files (tenant, signal, max_time);
