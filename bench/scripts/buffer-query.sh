#!/usr/bin/env bash
# bench/scripts/buffer-query.sh BIN_DIR DATASET: TSBS points held in the write buffer, then a query that projects
# resource_attributes and one that does not, 30 runs each; prints p50 of each (ms).
set -euo pipefail
bin=$1 dataset=$2
dir=$(mktemp -d)
"$bin/strata" serve --data-dir "$dir" --grpc-listen 127.0.0.1:14317 --otlp-http-listen 127.0.0.1:14318 --http-listen 127.0.0.1:13100 --log-level warn --flush-interval 1h --flush-max-bytes 1000000000 &
node=$!
trap 'kill $node 2>/dev/null || true; wait $node 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:13100/readyz >/dev/null && break; sleep 0.2; done
"$bin/strata-bench" load --input "$dataset" --endpoint 127.0.0.1:14317 --protocol grpc --connections 8 --retry --tenant t > /dev/null
curl -s http://127.0.0.1:13100/metrics | grep '^strata_storage_buffered_bytes'
q() {
  for i in $(seq 30); do
    curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:13100/api/v1/sql -H 'X-Scope-OrgID: t' -d "{\"sql\": \"$1\"}"
  done | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms  max %.1f ms\n", a[int(NR/2)]*1000, a[NR]*1000}'
}
echo "host filter:   $(q "SELECT count(*) FROM metrics WHERE resource_attributes['hostname'] = 'host_0'")"
echo "no resource:   $(q "SELECT count(*) FROM metrics WHERE metric_name = 'cpu_usage_user'")"
curl -s http://127.0.0.1:13100/api/v1/sql -H 'X-Scope-OrgID: t' -d "{\"sql\": \"SELECT count(*) AS n FROM metrics WHERE resource_attributes['hostname'] = 'host_0'\"}" | head -c 300; echo
