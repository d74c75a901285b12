"""TLS on every listener: the real OpenTelemetry SDK exporters send over OTLP/gRPC and
OTLP/HTTP with TLS, the SQL API answers over HTTPS, and plaintext clients get nothing.

The certificate is a fresh self-signed one (``openssl``) for 127.0.0.1 and localhost; the
clients trust exactly that certificate.
"""

from __future__ import annotations

import socket
import ssl
import subprocess

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from helpers import unique_tenant


@pytest.fixture(autouse=True)
def _trust_only_the_test_certificate(monkeypatch):
    # requests lets these variables replace a session's own `verify` (the HTTP exporter sets
    # its certificate_file on its session), so they would hide the certificate under test.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=strata-test",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_node(strata_bin, tmp_path_factory, backends, cert):
    from conftest import NodeFactory

    factory = NodeFactory(tmp_path_factory.mktemp("tls-node"), backends)
    node = factory.start("--tls-cert-file", str(cert[0]), "--tls-key-file", str(cert[1]))
    yield node
    factory.stop_all()


def _send(exporter, name: str):
    """Exports one span through ``exporter`` and checks that the export succeeded."""
    results = []
    original = exporter.export

    def export(spans):
        results.append(original(spans))
        return results[-1]

    exporter.export = export
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("tls").start_as_current_span(name):
        pass
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS]


def test_sdk_exporters_send_over_tls_and_the_api_answers_over_https(tls_node, cert):
    tenant = unique_tenant("tls")
    _send(HttpSpanExporter(endpoint=f"https://{tls_node.otlp_http_addr}/v1/traces",
                           certificate_file=str(cert[0]), headers={"X-Scope-OrgID": tenant}, timeout=10),
          "over-https")
    creds = grpc.ssl_channel_credentials(root_certificates=cert[0].read_bytes())
    _send(GrpcSpanExporter(endpoint=tls_node.grpc_addr, credentials=creds, insecure=False,
                           headers=(("x-scope-orgid", tenant),), timeout=10),
          "over-grpc-tls")
    r = requests.post(f"https://{tls_node.http_addr}/api/v1/sql",
                      json={"sql": "SELECT name FROM spans ORDER BY name"},
                      headers={"X-Scope-OrgID": tenant, "Accept": "application/json"},
                      verify=str(cert[0]), timeout=10)
    assert r.status_code == 200, r.text
    assert "over-grpc-tls" in r.text and "over-https" in r.text


@pytest.mark.parametrize("listener", ["otlp_http_addr", "http_addr"])
def test_plaintext_http_gets_no_answer(tls_node, listener):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{getattr(tls_node, listener)}/healthz", timeout=10)


def test_plaintext_grpc_fails(tls_node):
    channel = grpc.insecure_channel(tls_node.grpc_addr)
    with pytest.raises(grpc.RpcError) as e:
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("listener", ["grpc_addr", "otlp_http_addr", "http_addr"])
def test_every_listener_presents_the_certificate(tls_node, cert, listener):
    host, port = getattr(tls_node, listener).rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(cert[0]))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() is None or tls.selected_alpn_protocol() in ("h2", "http/1.1")


def test_a_missing_key_file_fails_the_start_with_the_path(strata_bin, tmp_path, cert):
    r = subprocess.run(
        [strata_bin, "serve", "--data-dir", str(tmp_path), "--grpc-listen", "127.0.0.1:0",
         "--otlp-http-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--tls-cert-file", str(cert[0]), "--tls-key-file", str(tmp_path / "nope.pem")],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "nope.pem" in r.stderr


def test_the_audit_log_records_the_client_address_over_tls(tls_node, cert):
    """The TLS listener hands the connection's peer address to the API (docs/SECURITY.md)."""
    tenant = unique_tenant("tls-audit")
    headers = {"X-Scope-OrgID": tenant, "Accept": "application/json"}
    r = requests.post(f"https://{tls_node.http_addr}/api/v1/keys", json={"name": "k", "scopes": ["read"]},
                      headers=headers, verify=str(cert[0]), timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(f"https://{tls_node.http_addr}/api/v1/sql",
                      json={"sql": "SELECT actor, action, remote_addr FROM audit"},
                      headers=headers, verify=str(cert[0]), timeout=10)
    assert r.status_code == 200, r.text
    [[actor, action, remote_addr]] = r.json()["rows"]
    assert (actor, action) == ("anonymous", "key.create")
    assert remote_addr.startswith("127.0.0.1:"), remote_addr
