"""A live stack for the end-to-end tests: its own state folder and free ports, stopped at the end."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hms_management.client import AirflowClient, ManagementClient
from hms_stack.stack import Stack, free_port

# Short waits so that the review tests finish in seconds; everything else is as `make run` has it.
REVIEW_TIMEOUT_SECONDS = 20
# An HMS call unanswered this long is retried under the same key: short, so that a test can hold an
# answer past it (the backend's hold_answer_ms fault) in seconds; long enough for two busy cores.
REQUEST_TIMEOUT_SECONDS = 4
# Fewer proposals at work at once than `make run` allows (24), so that a burst of a few dozen shows
# the queue's order in seconds.
MAX_RUNNING_PROPOSALS = 6


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    # The secrets scan reads what every other test left behind: it goes last.
    items.sort(key=lambda item: item.get_closest_marker("secrets_scan") is not None)


def new_stack(**settings) -> Stack:
    """The flavour HMS_STACK asks for: `local` (default, as `make run`) or `distributed` (make
    test-distributed: the same suite on CeleryExecutor with Redis and two Celery workers)."""
    flavour = os.environ.get("HMS_STACK", "local")
    if flavour == "distributed":
        from hms_stack.distributed import DistributedStack

        return DistributedStack(redis_port=free_port(), **settings)
    if flavour != "local":
        raise pytest.UsageError(f"HMS_STACK={flavour!r}: expected 'local' or 'distributed'")
    return Stack(**settings)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # Not pytest's tmp_path: it deletes old numbered folders, even under a stack another pytest
    # session is still running.
    home = Path(tempfile.mkdtemp(prefix="hms-e2e-"))
    live = new_stack(
        state=home / ".state",
        api_port=free_port(),
        hms_port=free_port(),
        extra_env={
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_WATCH_POLL_SECONDS": "0.5",
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT_SECONDS),
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_REMINDER_SECONDS": str(REVIEW_TIMEOUT_SECONDS // 2),
            "AIRFLOW__HMS_MANAGEMENT__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
            "AIRFLOW__HMS_MANAGEMENT__MAX_RUNNING_PROPOSALS": str(MAX_RUNNING_PROPOSALS),
            # The tests start sweeps themselves; a scheduled one would blur their counts.
            "AIRFLOW__HMS_MANAGEMENT__BACKLOG_SWEEP_SCHEDULE": "none",
        },
    )
    live.start(log=lambda line: print(f"[stack] {line}", file=sys.stderr))
    yield live
    live.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def management(stack: Stack) -> Iterator[ManagementClient]:
    """The /management API as the agent (role user) calls it."""
    with ManagementClient(stack.api_url, "agent", stack.credentials()["airflow"]["agent"]) as client:
        yield client


@pytest.fixture(scope="session")
def analyst(stack: Stack) -> Iterator[ManagementClient]:
    """The /management API as an analyst (role viewer) calls it."""
    with ManagementClient(stack.api_url, "analyst", stack.credentials()["airflow"]["analyst"]) as client:
        yield client


@pytest.fixture
def backend_calls(hms: httpx.Client):
    """Calls each backend route has received so far, but /stats (which this reads) and the review
    watcher's look at the decision feed (GET /gov/decisions, every poll, whatever proposals do)."""

    def read() -> dict[str, int]:
        routes = hms.get("/stats").json()["routes"]
        return {route: counts["calls"] for route, counts in routes.items()
                if route not in ("GET /stats", "GET /gov/decisions")}

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
