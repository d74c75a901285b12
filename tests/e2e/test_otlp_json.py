"""OTLP/JSON over HTTP, with bodies written by hand as JSON text.

Covers the OTLP/JSON rules (hex ids, integer enums, int64 as strings and as numbers, unknown
fields ignored, every AnyValue kind), all three signals, JSON responses, chunked bodies without
Content-Length, and gzip.
"""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from helpers import normalize_rows

JSON = "application/json"

# 2018-12-13T14:51:00Z
T = 1_544_712_660_000_000_000

# Every AnyValue kind, nested ones included, and what SCHEMA.md says each is stored as.
ATTRIBUTES_JSON = """[
  {"key": "s", "value": {"stringValue": "hello \\"world\\" ünï"}},
  {"key": "b", "value": {"boolValue": true}},
  {"key": "b_false", "value": {"boolValue": false}},
  {"key": "i_str", "value": {"intValue": "-9007199254740993"}},
  {"key": "i_num", "value": {"intValue": 42}},
  {"key": "i_max", "value": {"intValue": 9223372036854775807}},
  {"key": "d", "value": {"doubleValue": 0.25}},
  {"key": "d_str", "value": {"doubleValue": "-2.5"}},
  {"key": "d_nan", "value": {"doubleValue": "NaN"}},
  {"key": "d_inf", "value": {"doubleValue": "Infinity"}},
  {"key": "d_ninf", "value": {"doubleValue": "-Infinity"}},
  {"key": "bytes", "value": {"bytesValue": "AQID"}},
  {"key": "bytes_unpadded", "value": {"bytesValue": "AQI"}},
  {"key": "arr", "value": {"arrayValue": {"values": [
      {"stringValue": "a"}, {"intValue": "1"}, {"boolValue": true}, {"doubleValue": 1.5},
      {"bytesValue": "AQID"}, {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}},
      {"arrayValue": {"values": []}}, {}, {"doubleValue": "NaN"}]}}},
  {"key": "kv", "value": {"kvlistValue": {"values": [
      {"key": "inner", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "x"}]}}},
      {"key": "n", "value": {"doubleValue": 2.5}},
      {"key": "deep", "value": {"kvlistValue": {"values": [{"key": "z", "value": {"boolValue": false}}]}}},
      {"key": "empty", "value": {}}]}}},
  {"key": "empty_arr", "value": {"arrayValue": {}}},
  {"key": "nothing", "value": {}},
  {"key": "no_value"},
  {"key": "future", "value": {"someFutureValue": {"x": 1}}},
  {"key": "s", "value": {"stringValue": "duplicate key: the first value wins"}}
]"""

ATTRIBUTES_TEXT = {
    "s": 'hello "world" ünï',
    "b": "true",
    "b_false": "false",
    "i_str": "-9007199254740993",
    "i_num": "42",
    "i_max": "9223372036854775807",
    "d": "0.25",
    "d_str": "-2.5",
    "d_nan": "NaN",
    "d_inf": "Infinity",
    "d_ninf": "-Infinity",
    "bytes": "AQID",
    "bytes_unpadded": "AQI=",
    "arr": '["a",1,true,1.5,"AQID",{"k":"v"},[],null,"NaN"]',
    "kv": '{"inner":[1,"x"],"n":2.5,"deep":{"z":false},"empty":null}',
    "empty_arr": "[]",
    "nothing": None,
    "no_value": None,
    "future": None,
}

RESOURCE_JSON = """{
  "attributes": [
    {"key": "service.name", "value": {"stringValue": "json-svc"}},
    {"key": "host.cpus", "value": {"intValue": "8"}}
  ],
  "droppedAttributesCount": 0,
  "someUnknownResourceField": [1, 2, {"deep": [null, true]}]
}"""
RESOURCE_TEXT = {"service.name": "json-svc", "host.cpus": "8"}

TRACE_ID = "5B8EFFF798038103D269B633813FC60C"  # upper case: hex is case-insensitive
SPAN_ID = "EEE19B7EC3C1B174"
PARENT_ID = "eee19b7ec3c1b173"


def traces_json(span_id: str = SPAN_ID, trace_id: str = TRACE_ID) -> str:
    return f"""{{
  "resourceSpans": [{{
    "resource": {RESOURCE_JSON},
    "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
    "scopeSpans": [{{
      "scope": {{"name": "json-scope", "version": "0.1", "attributes": [], "unknownScopeField": 1}},
      "spans": [{{
        "traceId": "{trace_id}",
        "spanId": "{span_id}",
        "parentSpanId": "{PARENT_ID}",
        "traceState": "vendor=x",
        "name": "json span",
        "kind": 2,
        "startTimeUnixNano": "{T}",
        "endTimeUnixNano": {T + 1_500_000_123},
        "attributes": {ATTRIBUTES_JSON},
        "droppedAttributesCount": 3,
        "events": [{{
          "timeUnixNano": {T + 5},
          "name": "ev",
          "attributes": [{{"key": "ek", "value": {{"intValue": "7"}}}}],
          "droppedAttributesCount": "1",
          "unknownEventField": "x"
        }}],
        "droppedEventsCount": 2,
        "links": [{{
          "traceId": "0af7651916cd43dd8448eb211c80319c",
          "spanId": "b7ad6b7169203331",
          "traceState": "a=b",
          "attributes": [{{"key": "lk", "value": {{"boolValue": false}}}}],
          "droppedAttributesCount": 4,
          "flags": 769
        }}],
        "droppedLinksCount": "1",
        "status": {{"code": 2, "message": "json error"}},
        "flags": 257,
        "someFutureSpanField": {{"nested": [1, 2, {{"x": null}}]}}
      }}]
    }}]
  }}]
}}"""


def post_json(node, path: str, body: str | bytes, tenant: str, headers: dict | None = None) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return node.post_otlp(path, data, JSON, tenant=tenant, headers=headers)


def assert_json_success(r: requests.Response):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"] == JSON
    assert r.json() == {}


def expected_span(span_id: str = SPAN_ID.lower()) -> dict:
    return {
        "time": T,
        "end_time": T + 1_500_000_123,
        "duration_ns": 1_500_000_123,
        "trace_id": TRACE_ID.lower(),
        "span_id": span_id,
        "parent_span_id": PARENT_ID,
        "trace_state": "vendor=x",
        "flags": 257,
        "name": "json span",
        "kind": "server",
        "status_code": "error",
        "status_message": "json error",
        "service_name": "json-svc",
        "resource_attributes": RESOURCE_TEXT,
        "scope_name": "json-scope",
        "scope_version": "0.1",
        "attributes": ATTRIBUTES_TEXT,
        "dropped_attributes_count": 3,
        "events": [{"time": T + 5, "name": "ev", "attributes": {"ek": "7"}, "dropped_attributes_count": 1}],
        "dropped_events_count": 2,
        "links": [{
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "trace_state": "a=b",
            "flags": 769,
            "attributes": {"lk": "false"},
            "dropped_attributes_count": 4,
        }],
        "dropped_links_count": 1,
    }


def test_traces_json_every_field(node, tenant):
    r = post_json(node, "/v1/traces", traces_json(), tenant)
    assert_json_success(r)
    rows = normalize_rows(node.sql("SELECT * FROM spans", tenant=tenant))
    assert rows == [expected_span()]


def test_traces_json_charset_parameter_and_response_type(node, tenant):
    r = node.post_otlp("/v1/traces", traces_json().encode(), "application/json; charset=utf-8", tenant=tenant)
    assert_json_success(r)
    assert node.sql("SELECT span_id FROM spans", tenant=tenant) == [{"span_id": SPAN_ID.lower()}]


def test_logs_json(node, tenant):
    body = f"""{{
  "resourceLogs": [{{
    "resource": {RESOURCE_JSON},
    "scopeLogs": [{{
      "scope": {{"name": "json-logs", "version": "2"}},
      "logRecords": [
        {{
          "timeUnixNano": "{T}",
          "observedTimeUnixNano": {T + 10},
          "severityNumber": 17,
          "severityText": "ERROR",
          "body": {{"kvlistValue": {{"values": [
              {{"key": "msg", "value": {{"stringValue": "disk full"}}}},
              {{"key": "pct", "value": {{"doubleValue": 99.5}}}},
              {{"key": "raw", "value": {{"bytesValue": "/w=="}}}}]}}}},
          "attributes": {ATTRIBUTES_JSON},
          "droppedAttributesCount": 2,
          "flags": 1,
          "traceId": "{TRACE_ID}",
          "spanId": "{SPAN_ID}",
          "eventName": "disk.full",
          "unknownRecordField": {{"a": [1, 2, 3]}}
        }},
        {{
          "timeUnixNano": "0",
          "observedTimeUnixNano": "{T + 20}",
          "severityNumber": 9,
          "body": {{"stringValue": "plain string body"}},
          "traceId": "",
          "spanId": ""
        }},
        {{
          "timeUnixNano": {T + 30},
          "observedTimeUnixNano": {T + 30},
          "body": {{"arrayValue": {{"values": [{{"intValue": "1"}}, {{"stringValue": "two"}}]}}}}
        }},
        {{
          "timeUnixNano": {T + 40},
          "observedTimeUnixNano": {T + 40},
          "body": {{"intValue": "-5"}}
        }},
        {{
          "timeUnixNano": {T + 50},
          "observedTimeUnixNano": {T + 50}
        }}
      ]
    }}]
  }}]
}}"""
    assert_json_success(post_json(node, "/v1/logs", body, tenant))
    rows = normalize_rows(node.sql("SELECT * FROM logs ORDER BY time", tenant=tenant))
    common = {
        "service_name": "json-svc",
        "resource_attributes": RESOURCE_TEXT,
        "scope_name": "json-logs",
        "scope_version": "2",
    }
    plain = {"severity_number": 0, "severity_text": "", "trace_id": None, "span_id": None, "flags": 0,
             "event_name": None, "attributes": {}, "dropped_attributes_count": 0}
    assert rows == [
        {
            "time": T, "observed_time": T + 10, "severity_number": 17, "severity_text": "ERROR",
            "body": '{"msg":"disk full","pct":99.5,"raw":"/w=="}',
            "trace_id": TRACE_ID.lower(), "span_id": SPAN_ID.lower(), "flags": 1, "event_name": "disk.full",
            **common, "attributes": ATTRIBUTES_TEXT, "dropped_attributes_count": 2,
        },
        # time 0: the observed time stands in (OTLP data model).
        {**plain, "time": T + 20, "observed_time": T + 20, "severity_number": 9, "body": "plain string body",
         **common},
        {**plain, "time": T + 30, "observed_time": T + 30, "body": '[1,"two"]', **common},
        {**plain, "time": T + 40, "observed_time": T + 40, "body": "-5", **common},
        {**plain, "time": T + 50, "observed_time": T + 50, "body": None, **common},
    ]


METRICS_JSON = f"""{{
  "resourceMetrics": [{{
    "resource": {RESOURCE_JSON},
    "scopeMetrics": [{{
      "scope": {{"name": "json-metrics", "version": "3"}},
      "metrics": [
        {{
          "name": "j.gauge", "unit": "Cel", "description": "temperature",
          "metadata": [{{"key": "ignored", "value": {{"stringValue": "yes"}}}}],
          "gauge": {{"dataPoints": [{{
            "timeUnixNano": "{T}", "startTimeUnixNano": 0,
            "asDouble": 21.5,
            "attributes": [{{"key": "room", "value": {{"stringValue": "a"}}}}],
            "exemplars": [
              {{"timeUnixNano": "{T - 1}", "asInt": "3", "traceId": "{TRACE_ID}", "spanId": "{SPAN_ID}",
                "filteredAttributes": [{{"key": "user", "value": {{"stringValue": "u1"}}}}]}},
              {{"timeUnixNano": {T - 2}, "asDouble": 2.5}}
            ]
          }}]}}
        }},
        {{
          "name": "j.sum",
          "sum": {{"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
            {{"timeUnixNano": {T}, "startTimeUnixNano": "{T - 60_000_000_000}", "asInt": "9007199254740993",
              "flags": 0}},
            {{"timeUnixNano": {T + 1}, "startTimeUnixNano": {T - 60_000_000_000}, "asInt": 17,
              "attributes": [{{"key": "k", "value": {{"intValue": 1}}}}]}}
          ]}}
        }},
        {{
          "name": "j.hist", "unit": "ms",
          "histogram": {{"aggregationTemporality": 1, "dataPoints": [{{
            "timeUnixNano": "{T}", "startTimeUnixNano": "{T - 10}",
            "count": "6", "sum": 120.5, "min": 0.5, "max": 99,
            "bucketCounts": ["1", 2, "3"], "explicitBounds": [10, 50.5],
            "flags": 0
          }}]}}
        }},
        {{
          "name": "j.exp",
          "exponentialHistogram": {{"aggregationTemporality": 2, "dataPoints": [{{
            "timeUnixNano": {T}, "count": 10, "sum": 33.25, "scale": -2, "zeroCount": "1",
            "zeroThreshold": 0.001,
            "positive": {{"offset": -1, "bucketCounts": [2, "3"]}},
            "negative": {{"offset": 4, "bucketCounts": ["4"]}},
            "min": -16, "max": 20
          }}]}}
        }},
        {{
          "name": "j.summary",
          "summary": {{"dataPoints": [{{
            "timeUnixNano": "{T}", "count": "4", "sum": 10,
            "quantileValues": [{{"quantile": 0.5, "value": 2}}, {{"quantile": 1, "value": "4.5"}}]
          }}]}}
        }},
        {{
          "name": "j.nodata", "unit": "1", "someFutureMetricData": {{"dataPoints": [{{"asInt": 1}}]}}
        }}
      ]
    }}]
  }}]
}}"""


def test_metrics_json_every_type(node, tenant):
    assert_json_success(post_json(node, "/v1/metrics", METRICS_JSON, tenant))
    rows = normalize_rows(node.sql("SELECT * FROM metrics ORDER BY metric_name, time", tenant=tenant))
    for r in rows:
        assert isinstance(r.pop("series"), int)
    common = {
        "service_name": "json-svc", "resource_attributes": RESOURCE_TEXT, "scope_name": "json-metrics",
        "scope_version": "3", "flags": 0, "description": "", "unit": "", "start_time": None, "attributes": {},
        "aggregation_temporality": None, "is_monotonic": None, "value": None, "count": None, "sum": None,
        "min": None, "max": None, "bucket_counts": None, "explicit_bounds": None, "scale": None,
        "zero_count": None, "zero_threshold": None, "positive_offset": None, "positive_bucket_counts": None,
        "negative_offset": None, "negative_bucket_counts": None, "quantiles": None, "exemplars": [],
    }
    assert rows == [
        {**common, "time": T, "metric_name": "j.exp", "metric_type": "exponential_histogram",
         "aggregation_temporality": "cumulative", "count": 10, "sum": 33.25, "min": -16.0, "max": 20.0,
         "scale": -2, "zero_count": 1, "zero_threshold": 0.001, "positive_offset": -1,
         "positive_bucket_counts": [2, 3], "negative_offset": 4, "negative_bucket_counts": [4]},
        {**common, "time": T, "metric_name": "j.gauge", "metric_type": "gauge", "unit": "Cel",
         "description": "temperature", "attributes": {"room": "a"}, "value": 21.5,
         "exemplars": [
             {"time": T - 1, "value": 3.0, "trace_id": TRACE_ID.lower(), "span_id": SPAN_ID.lower(),
              "filtered_attributes": {"user": "u1"}},
             {"time": T - 2, "value": 2.5, "trace_id": None, "span_id": None, "filtered_attributes": {}},
         ]},
        {**common, "time": T, "start_time": T - 10, "metric_name": "j.hist", "metric_type": "histogram",
         "unit": "ms", "aggregation_temporality": "delta", "count": 6, "sum": 120.5, "min": 0.5, "max": 99.0,
         "bucket_counts": [1, 2, 3], "explicit_bounds": [10.0, 50.5]},
        {**common, "time": T, "start_time": T - 60_000_000_000, "metric_name": "j.sum", "metric_type": "sum",
         "aggregation_temporality": "cumulative", "is_monotonic": True, "value": 9007199254740992.0},
        {**common, "time": T + 1, "start_time": T - 60_000_000_000, "metric_name": "j.sum", "metric_type": "sum",
         "aggregation_temporality": "cumulative", "is_monotonic": True, "value": 17.0, "attributes": {"k": "1"}},
        {**common, "time": T, "metric_name": "j.summary", "metric_type": "summary", "count": 4, "sum": 10.0,
         "quantiles": [{"quantile": 0.5, "value": 2.0}, {"quantile": 1.0, "value": 4.5}]},
    ]


def test_partial_success_is_json_with_int64_as_string(node, tenant):
    bad = traces_json(trace_id="5b8efff798038103d269b633813fc6")  # 15 bytes
    good = json.loads(traces_json())
    good["resourceSpans"][0]["scopeSpans"][0]["spans"] += json.loads(bad)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    r = post_json(node, "/v1/traces", json.dumps(good), tenant)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == JSON
    body = r.json()
    assert set(body) == {"partialSuccess"}
    assert body["partialSuccess"]["rejectedSpans"] == "1"
    assert "trace_id" in body["partialSuccess"]["errorMessage"]
    assert node.sql("SELECT span_id FROM spans", tenant=tenant) == [{"span_id": SPAN_ID.lower()}]


def test_chunked_request_without_content_length(node, tenant):
    payload = traces_json().encode()

    def chunks():
        for i in range(0, len(payload), 97):
            yield payload[i:i + 97]

    r = requests.post(
        node.otlp_url + "/v1/traces",
        data=chunks(),
        headers={"Content-Type": JSON, "X-Scope-OrgID": tenant},
        timeout=30,
    )
    assert "Content-Length" not in r.request.headers
    assert r.request.headers["Transfer-Encoding"] == "chunked"
    assert_json_success(r)
    rows = normalize_rows(node.sql("SELECT * FROM spans", tenant=tenant))
    assert rows == [expected_span()]


def test_chunked_gzip_protobuf_without_content_length(node, tenant):
    from helpers import rand_span_id, rand_trace_id, span, traces_request

    req = traces_request([span(rand_trace_id(), rand_span_id(), name="chunked-pb")])
    payload = gzip.compress(req.SerializeToString())
    r = requests.post(
        node.otlp_url + "/v1/traces",
        data=iter([payload[:10], payload[10:]]),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "X-Scope-OrgID": tenant},
        timeout=30,
    )
    assert "Content-Length" not in r.request.headers
    assert r.status_code == 200, r.content
    assert r.headers["Content-Type"] == "application/x-protobuf"
    assert r.content == b""
    assert node.sql("SELECT name FROM spans", tenant=tenant) == [{"name": "chunked-pb"}]


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "x-gzip"])
def test_gzip_json(node, tenant, encoding):
    body = gzip.compress(traces_json().encode())
    r = post_json(node, "/v1/traces", body, tenant, headers={"Content-Encoding": encoding})
    assert_json_success(r)
    assert normalize_rows(node.sql("SELECT * FROM spans", tenant=tenant)) == [expected_span()]


def test_gzip_json_logs_and_metrics(node, tenant):
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(T), "observedTimeUnixNano": str(T), "body": {"stringValue": "gz"}}]}]}]}
    r = post_json(node, "/v1/logs", gzip.compress(json.dumps(logs).encode()), tenant,
                  headers={"Content-Encoding": "gzip"})
    assert_json_success(r)
    r = post_json(node, "/v1/metrics", gzip.compress(METRICS_JSON.encode()), tenant,
                  headers={"Content-Encoding": "gzip"})
    assert_json_success(r)
    assert node.sql("SELECT body, service_name, scope_name FROM logs", tenant=tenant) == [
        {"body": "gz", "service_name": "unknown_service", "scope_name": ""}]
    assert node.sql("SELECT count(*) AS n FROM metrics", tenant=tenant) == [{"n": 6}]


@pytest.mark.parametrize("path,body", [
    ("/v1/traces", "{}"),
    ("/v1/logs", "{}"),
    ("/v1/metrics", "{}"),
    ("/v1/traces", '{"resourceSpans": []}'),
    ("/v1/logs", '{"resourceLogs": [{"scopeLogs": []}]}'),
    ("/v1/metrics", '{"resourceMetrics": [{"scopeMetrics": [{"metrics": []}]}]}'),
])
def test_empty_json_requests(node, tenant, path, body):
    assert_json_success(post_json(node, path, body, tenant))


def test_double_attribute_text_form(node, tenant):
    """SCHEMA.md: doubles in the shortest form that reads back as the same double, e.g. ``1e+300``."""
    values = {
        "quarter": (0.25, "0.25"),
        "tenth": (0.1, "0.1"),
        "e300": (1e300, "1e+300"),
        "max": (1.7976931348623157e308, "1.7976931348623157e+308"),
        "tiny": (1e-7, "1e-7"),
        "denormal": (5e-324, "5e-324"),
    }
    attrs = ",".join(
        f'{{"key": "{k}", "value": {{"doubleValue": {json.dumps(v)}}}}}' for k, (v, _) in values.items()
    )
    body = traces_json().replace(ATTRIBUTES_JSON, f"[{attrs}]")
    assert_json_success(post_json(node, "/v1/traces", body, tenant))
    attributes = node.sql("SELECT attributes FROM spans", tenant=tenant)[0]["attributes"]
    # Each text reads back as the same double...
    for k, (v, _) in values.items():
        assert float(attributes[k]) == v, (k, attributes[k])
    cast = node.sql(
        "SELECT " + ", ".join(f"CAST(attributes['{k}'] AS DOUBLE) AS \"{k}\"" for k in values) + " FROM spans",
        tenant=tenant,
    )[0]
    assert cast == {k: v for k, (v, _) in values.items()}
    # ...and is written as documented.
    assert attributes == {k: text for k, (_, text) in values.items()}


def test_log_times_default_to_arrival(node, tenant):
    """time 0 → observed time; observed time 0 → the time Strata received the request."""
    import time as _time

    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "no times"}},
        {"timeUnixNano": "0", "observedTimeUnixNano": "0", "body": {"stringValue": "zero times"}},
        {"timeUnixNano": str(T), "body": {"stringValue": "time only"}},
    ]}]}]}
    before = _time.time_ns()
    assert_json_success(post_json(node, "/v1/logs", json.dumps(body), tenant))
    after = _time.time_ns()
    rows = normalize_rows(node.sql("SELECT body, time, observed_time FROM logs ORDER BY body", tenant=tenant))
    assert [r["body"] for r in rows] == ["no times", "time only", "zero times"]
    for r in rows:
        assert before <= r["observed_time"] <= after, r
    assert rows[0]["time"] == rows[0]["observed_time"]
    assert rows[2]["time"] == rows[2]["observed_time"]
    assert rows[1]["time"] == T
    # One request, one arrival time.
    assert len({r["observed_time"] for r in rows}) == 1
