"""The live stack of a test session, shared by every folder whose tests drive one (tests/e2e,
tests/browser): its own state folder and free ports, started once, stopped at the end.

Registered as a plugin in tests/conftest.py so that one `stack` serves them all (a fixture defined
in two conftest files would start two stacks); tests/distributed defines a stack of its own.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hms_management.client import ManagementClient
from hms_stack.stack import Stack, free_port

# Short waits so that the review tests finish in seconds; everything else is as `make run` has it.
REVIEW_TIMEOUT_SECONDS = 20
# An HMS call unanswered this long is retried under the same key: short, so that a test can hold an
# answer past it (the backend's hold_answer_ms fault) in seconds; long enough for two busy cores.
REQUEST_TIMEOUT_SECONDS = 4
# Fewer proposals at work at once than `make run` allows (24), so that a burst of a few dozen shows
# the queue's order in seconds.
MAX_RUNNING_PROPOSALS = 6


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
        # Airflow's own metrics through the StatsD bridge, for the metrics tests' Prometheus.
        metrics_port=free_port(),
        extra_env={
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_WATCH_POLL_SECONDS": "0.5",
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT_SECONDS),
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_REMINDER_SECONDS": str(REVIEW_TIMEOUT_SECONDS // 2),
            "AIRFLOW__HMS_MANAGEMENT__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
            "AIRFLOW__HMS_MANAGEMENT__MAX_RUNNING_PROPOSALS": str(MAX_RUNNING_PROPOSALS),
            # The tests start sweeps themselves; a scheduled one would blur their counts.
            "AIRFLOW__HMS_MANAGEMENT__BACKLOG_SWEEP_SCHEDULE": "none",
            # A record whose run was deleted or whose end was lost is repaired in seconds.
            "AIRFLOW__HMS_MANAGEMENT__RECORDS_REPAIR_SECONDS": "2",
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


def wait_for_status(client: ManagementClient, proposal_id: str, status: str, timeout: float = 120) -> dict:
    """The proposal's status once it is `status`, as /management reports it."""
    deadline = time.monotonic() + timeout
    while True:
        current = client.status(proposal_id)
        if current["status"] == status:
            return current
        assert time.monotonic() < deadline, f"{proposal_id} is {current['status']}, not {status}, after {timeout} s"
        time.sleep(0.3)
