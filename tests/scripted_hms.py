"""A scripted HMS service on 127.0.0.1, shared by the tiers that run our operators without the
reference backend: the unit tests (`tests/unit`, one operator at a time) and the workflow tests
(`tests/workflow`, the whole DAG in `dag.test()`).

The service answers each (method, path) with what the test scripted (status, body, content type)
and records every request it got, so a test reads exactly what the workflow sent: its path, its
headers (the Idempotency-Key, the token from the connection) and its JSON body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from hms_management.domain.services import SERVICES

TOKEN = "Bearer unit-test-token"


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class ScriptedHms:
    url: str
    answers: dict[tuple[str, str], list[tuple[int, str, str]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def answer(self, method: str, path: str, status: int, body: Any = None, *, content_type: str = "application/json",
               times: int = 1) -> None:
        """The next `times` calls of (method, path) get this answer (the last one scripted repeats)."""
        text = body if isinstance(body, str) else json.dumps(body if body is not None else {})
        self.answers.setdefault((method, path), []).extend([(status, text, content_type)] * times)

    def to(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


@contextmanager
def scripted_service() -> Generator[ScriptedHms]:
    """A real HTTP server on 127.0.0.1 that answers what the test scripts and records each request."""
    scripted: ScriptedHms

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            scripted.requests.append(Request(self.command, parts.path, parts.query, dict(self.headers),
                                             json.loads(raw) if raw else None))
            queue = scripted.answers.get((self.command, parts.path)) or [(404, '{"error": "not scripted"}',
                                                                          "application/json")]
            status, text, content_type = queue.pop(0) if len(queue) > 1 else queue[0]
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scripted = ScriptedHms(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def scripted_hms(monkeypatch: pytest.MonkeyPatch) -> Generator[ScriptedHms]:
    """A scripted service with every HMS connection pointing at it, the token as the connection's extra."""
    with scripted_service() as scripted:
        port = urlsplit(scripted.url).port
        for service in SERVICES:
            monkeypatch.setenv(f"AIRFLOW_CONN_{service.conn_id.upper()}", json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": port, "extra": {"Authorization": TOKEN}}))
        yield scripted
