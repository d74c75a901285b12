"""The DuckDB side of the query comparison of `strata-bench run`.

Reads from stdin: {"objects": DIR, "runs": N, "queries": [{"name", "tenant", "sql"}]}, where DIR
is a Strata node's local object store (tenant=…/signal=…/date=…/hour=…/*.parquet). Each query
runs against views `spans`, `logs` and `metrics` over that tenant's Parquet files: once cold
(first run in a fresh connection), then N times warm. Prints JSON with per-query p50/p95 in ms.

Strata's files store each resource's attributes once: a `resource` column indexes the file's
resources, kept as JSON in the file's key-value metadata under `strata.resources`. The views
put `resource_attributes` back as Strata's reader does: the resources of every file are loaded
into a table (before the cold run, as Strata keeps parsed resources in memory) and each view
joins its rows to it by file and index, at query time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[round((len(s) - 1) * q)]


def create_view(con: duckdb.DuckDBPyConnection, table: str, glob: str) -> None:
    """A view of one table over its files, with `resource_attributes` as a column."""
    kv = con.execute(
        "SELECT file_name, decode(value) FROM parquet_kv_metadata(?) "
        "WHERE decode(key) = 'strata.resources'",
        [glob],
    ).fetchall()
    if not kv:
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = false)"
        )
        return
    files, ids, keys, values = [], [], [], []
    for file_name, resources in kv:
        for i, resource in enumerate(json.loads(resources)):
            files.append(file_name)
            ids.append(i)
            keys.append([k for k, _ in resource])
            values.append([v for _, v in resource])
    resources = pa.table({"file": files, "resource": pa.array(ids, pa.uint32()), "k": keys, "v": values})
    con.register(f"{table}_resources_in", resources)
    con.execute(
        f"CREATE TABLE {table}_resources AS SELECT file, resource, map(k, v) AS resource_attributes "
        f"FROM {table}_resources_in"
    )
    con.unregister(f"{table}_resources_in")
    con.execute(
        f"CREATE VIEW {table} AS SELECT t.* EXCLUDE (resource, filename), r.resource_attributes "
        f"FROM read_parquet('{glob}', hive_partitioning = false, filename = true) t "
        f"JOIN {table}_resources r ON r.file = t.filename AND r.resource = t.resource"
    )


def main() -> None:
    spec = json.load(sys.stdin)
    objects = Path(spec["objects"])
    runs = int(spec["runs"])
    out = []
    for q in spec["queries"]:
        con = duckdb.connect()
        for table in ("spans", "logs", "metrics"):
            files = objects / f"tenant={q['tenant']}" / f"signal={table}"
            if files.exists():
                create_view(con, table, f"{files}/**/*.parquet")
        t = time.perf_counter()
        rows = len(con.execute(q["sql"]).fetchall())
        cold = (time.perf_counter() - t) * 1000
        warm = []
        for _ in range(runs):
            t = time.perf_counter()
            con.execute(q["sql"]).fetchall()
            warm.append((time.perf_counter() - t) * 1000)
        out.append({
            "name": q["name"],
            "rows": rows,
            "cold_ms": cold,
            "p50_ms": percentile(warm, 0.5),
            "p95_ms": percentile(warm, 0.95),
            "mean_ms": statistics.fmean(warm),
        })
        con.close()
    json.dump({"duckdb": duckdb.__version__, "queries": out}, sys.stdout)


if __name__ == "__main__":
    main()
