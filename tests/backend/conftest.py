"""Fixtures for the reference HMS backend: a fresh backend on a temporary data dir, and a token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings, create_app
from hms_backend.auth import generate_secret, mint_token


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
