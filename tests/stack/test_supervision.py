"""`make run` keeps its stack running: a component that dies is restarted (the database before
what it took down), what it left behind is ended first, and a component that keeps dying stops
the stack with a message that names it and its log.

One launcher for the module, with a small crash-loop limit so that the last test can reach it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .launcher import (
    Launcher,
    Proposals,
    count,
    descends_from,
    local_worker_sets,
    proposal_ids,
    restarted,
    stack_processes,
    still_running,
    wait_for,
)

CRASH_LOOP_RESTARTS = 3


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    folder = Path(tempfile.mkdtemp(prefix="hms-stack-"))
    # 3 restarts within 90 s: the last test reaches it in seconds, the others stay well below.
    launcher = Launcher(folder, env={"HMS_CRASH_LOOP_RESTARTS": str(CRASH_LOOP_RESTARTS),
                                     "HMS_CRASH_LOOP_SECONDS": "90"}).start()
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


def test_a_killed_scheduler_is_restarted_with_one_set_of_workers_and_proposals_complete(launcher, proposals):
    proposals.slow_policy_calls(3000)
    ids = proposal_ids("scheduler-killed", 4)
    for proposal_id in ids:
        proposals.submit(proposal_id)
    wait_for(lambda: proposals.steps_in("running", ids), 120, "no step of the proposals was running")
    old_pid = launcher.pid("scheduler")
    (workers,) = local_worker_sets(launcher.state).values()  # one set, [core] parallelism strong
    old = stack_processes(launcher.state)["scheduler"]
    before = count(stack_processes(launcher.state))

    os.kill(old_pid, signal.SIGKILL)
    new_pid = restarted(launcher, "scheduler", old_pid)
    one_set = wait_for(lambda: local_worker_sets(launcher.state) == {new_pid: workers}, 120,
                       "the new scheduler's workers are not the only ones")
    after = count(stack_processes(launcher.state))
    proposals.clear_faults()
    proposals.wait_completed(ids)

    assert one_set
    assert still_running(old) == []
    assert launcher.restarts("scheduler") == 1
    assert "scheduler was killed by SIGKILL; restarting it in 1 s" in launcher.console()
    print(f"scheduler SIGKILLed mid-task: {before} before, {after} after the restart; "
          f"{workers} LocalExecutor workers, all children of the new scheduler {new_pid}")


def test_a_task_the_killed_scheduler_had_queued_is_started_by_the_new_one(launcher, proposals):
    """A task queued by a scheduler that died is owned by a dead scheduler job: only the new
    scheduler's check for orphans hands it on ([scheduler] orphaned_tasks_check_interval).
    Its workers are stopped (SIGSTOP) so that the task provably stays queued until the kill."""
    (proposal_id,) = proposal_ids("queued-at-the-kill", 1)
    old_pid = launcher.pid("scheduler")
    workers = [proc for proc in stack_processes(launcher.state)["scheduler"] if proc.ppid() == old_pid]
    for worker in workers:
        worker.suspend()
    try:
        proposals.submit(proposal_id)
        queued = wait_for(lambda: proposals.steps_in("queued", [proposal_id]), 120,
                          "no step of the proposal was queued")
    except BaseException:  # leave no stopped workers behind for the tests that follow
        for worker in workers:
            worker.resume()
        raise

    os.kill(old_pid, signal.SIGKILL)
    restarted(launcher, "scheduler", old_pid)
    proposals.wait_completed([proposal_id])

    assert still_running(workers) == []
    print(f"{queued} queued when the scheduler was killed; completed under the new one")


@pytest.mark.parametrize("component", ["triggerer", "api-server", "dag-processor"])
def test_a_killed_component_is_restarted_and_nothing_of_the_dead_one_is_left(launcher, component):
    old_pid = launcher.pid(component)
    old = stack_processes(launcher.state)[component]
    before = count(stack_processes(launcher.state))

    os.kill(old_pid, signal.SIGKILL)
    new_pid = restarted(launcher, component, old_pid)

    assert still_running(old) == []
    assert all(descends_from(proc, new_pid) for proc in stack_processes(launcher.state)[component])
    print(f"{component} SIGKILLed: {before} before, {count(stack_processes(launcher.state))} after the restart")


def test_a_killed_database_is_restarted_first_and_the_stack_works_again(launcher, proposals):
    old_pid = launcher.pid("postgres")
    said_before = len(launcher.console())

    os.kill(old_pid, signal.SIGKILL)
    restarted(launcher, "postgres", old_pid)
    proposal_id = proposal_ids("after-database", 1)
    wait_for(lambda: _submitted(proposals, proposal_id[0]), 180, "the api-server took no proposal after the restart")
    proposals.wait_completed(proposal_id)

    said = launcher.console()[said_before:].splitlines()
    restarts = [line.split()[1] for line in said if line.startswith("restarted ")]
    assert restarts[0] == "postgres", said
    assert all(component in launcher.state_file()["components"] for component in restarts)
    assert set(stack_processes(launcher.state)) == set(launcher.state_file()["components"])


def _submitted(proposals: Proposals, proposal_id: str) -> bool:
    try:
        proposals.submit(proposal_id)
    except Exception:  # noqa: BLE001 (the api-server may still be reconnecting)
        return False
    return True


def test_a_component_that_keeps_dying_stops_the_stack_naming_it_and_its_log(launcher):
    """Last in this module: it ends the module's stack."""
    processes = [proc for group in stack_processes(launcher.state).values() for proc in group]
    for _ in range(CRASH_LOOP_RESTARTS):
        old_pid = launcher.pid("hms-backend")
        os.kill(old_pid, signal.SIGKILL)
        restarted(launcher, "hms-backend", old_pid)

    os.kill(launcher.pid("hms-backend"), signal.SIGKILL)

    assert launcher.exit_code() == 1
    log = launcher.state / "logs" / "hms-backend.log"
    said = launcher.console()
    assert "crash loop" in said and f"Its log: {log}" in said
    assert "stopping the stack" in log.read_text()
    assert "no process left behind" in said
    assert still_running(processes) == []
    assert stack_processes(launcher.state) == {}
