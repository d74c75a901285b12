-- Per node and table: every WAL record up to `seq` is in Parquet files listed in `files`.
-- Written in the same transaction as those files' rows; read at start to skip replaying
-- what is already stored.
CREATE TABLE wal_watermarks (
    node_id  TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    signal   TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (node_id, tenant, signal)
);
