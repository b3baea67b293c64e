"""`make run-distributed` keeps its stack running too: a Celery worker or Redis that dies is
restarted like any other component, and what a dead worker left (its pool processes and their
tasks) is ended first.

Only `make test-distributed` runs these (HMS_STACK=distributed), as tests/distributed.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hms_stack.stack import free_port

from .launcher import (
    Launcher,
    Proposals,
    count,
    descends_from,
    proposal_ids,
    restarted,
    stack_processes,
    still_running,
    wait_for,
)

pytestmark = pytest.mark.skipif(os.environ.get("HMS_STACK") != "distributed",
                                reason="needs the distributed stack: make test-distributed")


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    folder = Path(tempfile.mkdtemp(prefix="hms-stack-distributed-"))
    launcher = Launcher(folder, args=("--distributed", "--redis-port", str(free_port()))).start()
    try:
        yield launcher.wait_ready()
    finally:
        launcher.finish()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def proposals(launcher: Launcher) -> Iterator[Proposals]:
    client = Proposals(launcher.api_url, launcher.hms_url, launcher.state)
    yield client
    client.clear_faults()
    client.close()


def test_a_killed_celery_worker_is_restarted_and_its_pool_is_not_left(launcher, proposals):
    proposals.slow_policy_calls(3000)
    ids = proposal_ids("worker-killed", 6)
    for proposal_id in ids:
        proposals.submit(proposal_id)
    wait_for(lambda: proposals.steps_in("running", ids), 120, "no step of the proposals was running")
    old_pid = launcher.pid("worker-1")
    old = stack_processes(launcher.state)["worker-1"]
    before = count(stack_processes(launcher.state))

    os.kill(old_pid, signal.SIGKILL)
    new_pid = restarted(launcher, "worker-1", old_pid)
    proposals.clear_faults()
    proposals.wait_completed(ids, timeout=600)  # a task lost with the worker waits for its heartbeat timeout

    assert still_running(old) == []
    print(launcher.console())
    assert all(descends_from(proc, new_pid) for proc in stack_processes(launcher.state)["worker-1"])
    print(f"worker-1 SIGKILLed mid-task: {before} before, {count(stack_processes(launcher.state))} after")


def test_a_killed_redis_is_restarted_and_proposals_go_through_again(launcher, proposals):
    old_pid = launcher.pid("redis")
    old = stack_processes(launcher.state)["redis"]

    os.kill(old_pid, signal.SIGKILL)
    restarted(launcher, "redis", old_pid)
    ids = proposal_ids("after-redis", 2)
    for proposal_id in ids:
        proposals.submit(proposal_id)
    started = time.monotonic()
    proposals.wait_completed(ids, timeout=600)
    print(f"completed {time.monotonic() - started:.0f} s after the submission")

    assert still_running(old) == []
    print(launcher.console())
