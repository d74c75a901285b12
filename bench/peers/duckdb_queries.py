"""The DuckDB side of the query comparison of `strata-bench run`.

Reads from stdin: {"objects": DIR, "runs": N, "queries": [{"name", "tenant", "sql"}]}, where DIR
is a Strata node's local object store (tenant=…/signal=…/date=…/hour=…/*.parquet). Each query
runs against views `spans`, `logs` and `metrics` over that tenant's Parquet files: once cold
(first run in a fresh connection), then N times warm. Prints JSON with per-query p50/p95 in ms.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import duckdb


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[round((len(s) - 1) * q)]


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
                con.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}/**/*.parquet', "
                    "hive_partitioning = false)"
                )
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
