"""Fixtures of the end-to-end tests; the live stack itself (`stack`, `management`, `analyst`) is
tests/live_stack.py's, shared with the browser tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hms_management.client import AirflowClient


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    # The secrets scan reads what every other test left behind: it goes last.
    items.sort(key=lambda item: item.get_closest_marker("secrets_scan") is not None)


@pytest.fixture
def backend_calls(hms: httpx.Client):
    """Calls each backend route has received so far, but /stats (which this reads) and the reads
    made whatever proposals do: the review watcher's look at the decision feed (GET /gov/decisions,
    every poll) and the active suspensions (GET /gov/suspensions, for a metrics scrape or the
    Proposals view's banner)."""

    def read() -> dict[str, int]:
        routes = hms.get("/stats").json()["routes"]
        return {route: counts["calls"] for route, counts in routes.items()
                if route not in ("GET /stats", "GET /gov/decisions", "GET /gov/suspensions")}

    return read


@pytest.fixture
def idle(agent: AirflowClient):
    """Wait until no proposal run is queued or running, so that backend counters stand still."""

    def wait(timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while agent.count_runs(states=("queued", "running")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"proposal runs still going after {timeout:.0f} s")
            time.sleep(1)

    return wait


@pytest.fixture(autouse=True)
def no_faults_left(hms: httpx.Client) -> Iterator[None]:
    yield
    hms.delete("/admin/faults")


@pytest.fixture
def proposal_id(request: pytest.FixtureRequest) -> str:
    """A fresh business key per test, readable in the UI: the test's name and a suffix."""
    name = request.node.name.removeprefix("test_").replace("[", "-").replace("]", "")[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"
