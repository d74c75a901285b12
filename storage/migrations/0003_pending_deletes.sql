-- Objects to delete from the object store once `delete_after` (ns since the epoch) has
-- passed: files replaced by compaction or expired by retention. The delay lets queries that
-- started before the swap finish reading them.
CREATE TABLE pending_deletes (
    path          TEXT PRIMARY KEY,
    delete_after  BIGINT NOT NULL
);
