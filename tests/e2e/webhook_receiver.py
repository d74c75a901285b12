"""A real HTTP webhook receiver for the alerting end-to-end tests.

It listens on 127.0.0.1 (port 0), records every request (path, headers, raw body, parsed JSON)
and answers from a script: a list of status codes consumed one per request (the list of the
request's path in ``scripts``, else ``script``; then ``default_status``), where ``"hang"`` means: read the request and never answer (until the
receiver is closed). ``verify_signature`` checks Strata's webhook signature the way a receiver
in production would (docs/ALERTING.md, "Signatures").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | str

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    script: list = field(default_factory=list)
    default_status: int = 200
    scripts: dict = field(default_factory=dict)

    def __post_init__(self):
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    script = receiver.scripts.get(self.path, receiver.script)
                    status = script.pop(0) if script else receiver.default_status
                    receiver.deliveries.append(
                        Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                if status == "hang":
                    receiver._closed.wait()
                    return
                payload = b'{"ok":true}'
                self.send_response(int(status))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def received(self, path: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if path is None or d.path == path]

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, delivery: Delivery) -> bool:
    """What a receiver does: recompute the HMAC over ``<timestamp>.<body>`` and compare in
    constant time."""
    timestamp = delivery.headers.get("x-strata-timestamp")
    signature = delivery.headers.get("x-strata-signature")
    if not timestamp or not signature:
        return False
    return hmac.compare_digest(sign(secret, timestamp, delivery.body), signature)
