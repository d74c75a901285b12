#!/usr/bin/env bash
# The node's own CPU seconds for one load, on a fresh node: the A/B measurement of
# docs/BENCHMARKS.md ("Round 2: what moved and why").
#
#   bench/scripts/node-cpu.sh BIN_DIR PROTOCOL DATASET [RUNS]
#
# BIN_DIR holds `strata` and `strata-bench`; DATASET is a file written by
# `strata-bench generate` (or the *.otlp files `strata-bench run` leaves in its work dir).
# Sends the data set RUNS times (default 2, each to its own tenant) over 8 connections and
# prints each load's report, then the node's user+system CPU seconds from /proc once the
# write buffer is empty (flushed to Parquet), and the rows flushed. A request the node
# refuses is sent again until acknowledged (`--retry`), so the CPU is always that of the
# whole data set. Extra `strata-bench load` flags (e.g.
# `--rate 190000`) can be given in LOAD_ARGS.
# Environment for the node (e.g. MIMALLOC_ALLOW_THP=0) can be given in NODE_ENV.
set -euo pipefail
bin=$1 protocol=$2 dataset=$3 runs=${4:-2}
dir=$(mktemp -d)
trap 'kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true; rm -rf "$dir"' EXIT
grpc=127.0.0.1:14317 otlp_http=127.0.0.1:14318
# shellcheck disable=SC2086
env ${NODE_ENV:-} "$bin/strata" serve --data-dir "$dir" --grpc-listen $grpc \
    --otlp-http-listen $otlp_http --http-listen 127.0.0.1:13100 --log-level warn &
node=$!
for _ in $(seq 50); do
    curl -sf http://127.0.0.1:13100/readyz >/dev/null && break
    sleep 0.2
done
endpoint=$grpc
[ "$protocol" = http ] && endpoint=$otlp_http
for i in $(seq "$runs"); do
    "$bin/strata-bench" load --input "$dataset" --endpoint "$endpoint" --protocol "$protocol" \
        --connections 8 --retry --tenant "run$i" ${LOAD_ARGS:-}
    echo
done
# Counted once what was acknowledged is in Parquet: the last flush is part of the load's cost.
for _ in $(seq 600); do
    curl -s http://127.0.0.1:13100/metrics | grep -q '^strata_storage_buffered_bytes 0$' && break
    sleep 0.1
done
curl -s http://127.0.0.1:13100/metrics | grep '^strata_storage_rows_flushed_total' || true
awk '{ printf "node CPU seconds: %.2f\n", ($14 + $15) / 100 }' "/proc/$node/stat"
