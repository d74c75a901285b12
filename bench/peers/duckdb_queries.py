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

Logs files store each line by field (`body_template`, `body_text_{k}`, `body_number_{k}`; `body`
null where a line is split). The logs view rebuilds `body` from them at query time, as
Strata's reader does, with the macro `strata_line`.
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


FIELDS = 12
# A field's text from its marker (0x10 text, 0x11 integer, 0x12 IPv4, 0x12 + s a decimal with s
# digits after the point), text and number; a split line from its template and fields.
MACROS = r"""
CREATE MACRO strata_field(m, s, n) AS CASE
    WHEN m IS NULL THEN ''
    WHEN m = chr(16) THEN s
    WHEN m = chr(17) THEN CAST(n AS VARCHAR)
    WHEN m = chr(18) THEN concat_ws('.', (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)
    ELSE (CASE WHEN n < 0 THEN '-' ELSE '' END)
        || CAST(abs(n) // CAST(10 ** (ascii(m) - 18) AS BIGINT) AS VARCHAR) || '.'
        || lpad(CAST(abs(n) % CAST(10 ** (ascii(m) - 18) AS BIGINT) AS VARCHAR), ascii(m) - 18, '0')
END;
CREATE MACRO strata_line(body, t, s, n) AS CASE
    WHEN body IS NOT NULL OR t IS NULL THEN body
    ELSE array_to_string(list_transform(regexp_split_to_array(t, '[\x10-\x1b]'),
        lambda part, i: part || strata_field(regexp_extract_all(t, '[\x10-\x1b]')[i], s[i], n[i])), '')
END;
"""
LINE_COLUMNS = ["body", "body_template"] + [f"body_{kind}_{k}" for k in range(FIELDS) for kind in ("text", "number")]
LINE = ("strata_line(t.body, t.body_template, "
        f"[{', '.join(f't.body_text_{k}' for k in range(FIELDS))}], "
        f"[{', '.join(f't.body_number_{k}' for k in range(FIELDS))}]) AS body")


def create_view(con: duckdb.DuckDBPyConnection, table: str, glob: str) -> None:
    """A view of one table over its files, with `resource_attributes` (and for logs `body`) as
    columns."""
    columns = {r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning = false)").fetchall()}
    excluded, extra = ["resource", "filename"], ""
    if "body_template" in columns:
        excluded += LINE_COLUMNS
        extra = ", " + LINE
    kv = con.execute(
        "SELECT file_name, decode(value) FROM parquet_kv_metadata(?) "
        "WHERE decode(key) = 'strata.resources'",
        [glob],
    ).fetchall()
    if not kv:
        lines = f"* EXCLUDE ({', '.join(LINE_COLUMNS)}){extra}" if extra else "*"
        con.execute(
            f"CREATE VIEW {table} AS SELECT {lines} FROM read_parquet('{glob}', hive_partitioning = false) t"
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
        f"CREATE VIEW {table} AS SELECT t.* EXCLUDE ({', '.join(excluded)}){extra}, r.resource_attributes "
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
        con.execute(MACROS)
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
