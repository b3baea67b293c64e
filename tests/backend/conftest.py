"""Fixtures for the reference HMS backend: a fresh backend on a temporary data dir, and a token;
the real server as a process, for what only a process shows (a crash, a graceful stop, a timeout)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import hms_backend
from hms_backend import Settings, create_app
from hms_backend.__main__ import main
from hms_backend.auth import generate_secret, mint_token
from hms_backend.settings import DATABASE_FILE, read_secret

INCLUDE_DIR = Path(hms_backend.__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "hms_backend", jwt_secret=generate_secret())


@pytest.fixture
def token(settings: Settings) -> str:
    return mint_token(settings.jwt_secret, "airflow", ttl_seconds=300)


@pytest.fixture
def api(settings: Settings, token: str) -> Iterator[TestClient]:
    """The backend as Airflow calls it: every request carries a valid token.

    Used as a context manager so the app's lifespan opens and closes its storage, and so that
    requests from several threads share one event loop, as they do under uvicorn.
    """
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture
def route_stats(api: TestClient):
    """Read one route's counters from the open /stats endpoint, e.g. route_stats("POST /svc/policy")."""

    def read(route: str) -> dict[str, int]:
        return api.get("/stats").json()["routes"][route]

    return read


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveBackend:
    """`python -m hms_backend serve` on a free loopback port, over a data dir that outlives the process.

    Started again after a stop or a kill, it serves the same data (on another port).
    """

    def __init__(self, home: Path) -> None:
        self.data_dir = home / "data"
        self.secret_file = home / "hms_secret"
        main(["new-secret", str(self.secret_file)])
        self.token = mint_token(read_secret(self.secret_file), "airflow", ttl_seconds=300)
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    def start(self) -> None:
        port = free_port()
        command = [sys.executable, "-m", "hms_backend", "serve", "--port", str(port)]
        command += ["--data-dir", str(self.data_dir), "--secret-file", str(self.secret_file)]
        env = {**os.environ, "PYTHONPATH": str(INCLUDE_DIR)}
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            assert self.process.poll() is None, self.process.stdout.read().decode()
            try:
                httpx.get(f"{self.base_url}/health", timeout=1)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the backend did not answer within 15 s"
                time.sleep(0.05)

    def client(self, timeout: float = 5) -> httpx.Client:
        """A client with the token, as Airflow calls the backend."""
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)

    def stop(self) -> int:
        """Stop it as `make stop` does (SIGTERM); its exit status."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int:
        """Stop it as a crash would: SIGKILL, no chance to finish anything."""
        return self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(how)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()
            self.process = None


@pytest.fixture
def live_backend(tmp_path: Path) -> Iterator[LiveBackend]:
    """A LiveBackend, started; killed at the end if a test left it running."""
    backend = LiveBackend(tmp_path)
    backend.start()
    yield backend
    if backend.process is not None:
        backend.kill()
