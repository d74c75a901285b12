"""Per-tenant limits on a real node: a tenant over its ingest rate or metric cardinality is
throttled while another tenant's ingest and queries go on normally; a query over its memory
limit fails with a clear error and the node stays up.

Limits are configured per tenant in the config file (``[limits.tenants.<id>]``); every
assertion is about answers (status codes, partial success, rows), never about timing.
"""

from __future__ import annotations

import grpc
import requests
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from helpers import (
    decode_status,
    export_ok,
    gauge_metric,
    grpc_channel,
    metrics_request,
    number_point,
    post_protobuf,
    rand_span_id,
    rand_trace_id,
    span,
    traces_request,
    unique_tenant,
)

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _node(node_factory, tmp_path, limited: str, limits: str, *args: str):
    config = tmp_path / "limits.toml"
    config.write_text(f"[limits.tenants.{limited}]\n{limits}\n")
    return node_factory.start("--config", str(config), *args)


def _spans(n: int, name: str):
    return traces_request([span(rand_trace_id(), rand_span_id(), name=name) for _ in range(n)])


def _count(node, sql: str, tenant: str) -> int:
    return list(node.sql(sql, tenant=tenant)[0].values())[0]


def test_a_tenant_over_its_ingest_rate_is_throttled_and_another_is_not(node_factory, tmp_path):
    limited, other = unique_tenant("rate"), unique_tenant("free")
    # 1 record/s with a 1 s bucket: the first 100-span export puts it 99 s into debt.
    node = _node(node_factory, tmp_path, limited, 'ingest_rate_records = 1\ningest_burst = "1s"')
    export_ok(node, "/v1/traces", _spans(100, "first"), limited)

    r = post_protobuf(node, "/v1/traces", _spans(1, "refused-http"), limited)
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    status = decode_status(r.content)
    assert status.code == 14 and "ingest rate of 1 records/s" in status.message
    assert [d.type_url for d in status.details] == [RETRY_INFO]

    stub = trace_service_pb2_grpc.TraceServiceStub(grpc_channel(node))
    try:
        stub.Export(_spans(1, "refused-grpc"), metadata=[("x-scope-orgid", limited)], timeout=10)
        raise AssertionError("the export should have been refused")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e
        assert "ingest rate" in e.details()

    # The other tenant ingests far more, over both transports, and queries.
    for i in range(5):
        export_ok(node, "/v1/traces", _spans(200, f"free-{i}"), other)
    stub.Export(_spans(200, "free-grpc"), metadata=[("x-scope-orgid", other)], timeout=10)
    assert _count(node, "SELECT count(*) FROM spans", other) == 1200
    # Nothing refused was stored.
    assert _count(node, "SELECT count(*) FROM spans", limited) == 100
    assert node.sql("SELECT DISTINCT name FROM spans", tenant=limited) == [{"name": "first"}]


def test_new_series_over_the_cardinality_limit_are_rejected_with_partial_success(node_factory, tmp_path):
    limited, other = unique_tenant("card"), unique_tenant("free")
    node = _node(node_factory, tmp_path, limited, "max_active_series = 3")

    def series(tenant: str, n: int, start: int = 0):
        points = [number_point(1.0, attrs={"pod": f"pod-{i}"}) for i in range(start, start + n)]
        body = metrics_request([gauge_metric("cpu", points)])
        r = post_protobuf(node, "/v1/metrics", body, tenant)
        assert r.status_code == 200, r.text
        resp = metrics_service_pb2.ExportMetricsServiceResponse()
        resp.ParseFromString(r.content)
        return resp.partial_success

    partial = series(limited, 5)
    assert partial.rejected_data_points == 2
    assert "limit of 3 active metric series" in partial.error_message
    # Existing series keep flowing; new ones stay out.
    partial = series(limited, 3)
    assert partial.rejected_data_points == 0 and partial.error_message == ""
    assert series(limited, 1, start=10).rejected_data_points == 1
    assert _count(node, "SELECT count(DISTINCT series) FROM metrics", limited) == 3
    assert _count(node, "SELECT count(*) FROM metrics", limited) == 6

    # Another tenant has no such limit.
    assert series(other, 50).rejected_data_points == 0
    assert _count(node, "SELECT count(DISTINCT series) FROM metrics", other) == 50

    # The use is reported to the tenant, and in /metrics; another tenant's usage is a 404.
    usage = _usage(node, limited, limited)
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["ingest"]["limits"]["max_active_series"] == 3
    assert body["ingest"]["active_series"] == 3
    assert body["ingest"]["points_refused_cardinality"] == 3
    assert body["storage"]["metrics"]["buffered_rows"] + body["storage"]["metrics"]["file_rows"] == 6
    assert _usage(node, other, limited).status_code == 404
    assert node.metric_value("strata_tenant_active_series", {"tenant": limited}) == 3
    assert node.metric_value("strata_tenant_points_refused_cardinality_total", {"tenant": limited}) == 3


def _usage(node, tenant: str, as_tenant: str):
    return requests.get(f"{node.api_url}/api/v1/tenants/{tenant}/usage",
                        headers={"X-Scope-OrgID": as_tenant}, timeout=10)


def test_a_query_over_its_memory_limit_fails_clearly_and_the_node_stays_up(node_factory, tmp_path):
    limited, other = unique_tenant("mem"), unique_tenant("free")
    node = _node(node_factory, tmp_path, limited, "query_max_memory_bytes = 65536")
    for tenant in (limited, other):
        export_ok(node, "/v1/traces", _spans(2000, "x" * 100), tenant)

    sql = "SELECT * FROM spans ORDER BY name, span_id"
    r = node.sql_response(sql, tenant=limited)
    assert r.status_code == 422, r.text
    assert "memory" in r.json()["error"] and "64.0 KiB" in r.json()["error"]
    # The node answers, the same query of another tenant runs, small queries of the limited one too.
    assert len(node.sql(sql, tenant=other)) == 2000
    assert _count(node, "SELECT count(*) FROM spans", limited) == 2000
    assert node.sql_response("SELECT 1", tenant=limited).status_code == 200
    assert requests.get(node.api_url + "/healthz", timeout=10).status_code == 200


def test_the_node_raises_its_open_file_limit_to_the_hard_limit(node_factory):
    # Each exporter connection is a file descriptor: thousands of them need more than the
    # usual soft limit of 1,024.
    node = node_factory.start()
    limits = open(f"/proc/{node.pid}/limits", encoding="ascii").read()
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard, line
