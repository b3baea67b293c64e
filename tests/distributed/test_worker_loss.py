"""A burst of proposals on two Celery workers, and one worker lost with SIGKILL in the middle of it.

A worker that dies takes its running tasks with it. The scheduler notices that they stopped
heartbeating, fails them, and they are retried on the surviving worker; the idempotency keys make
the re-sent HMS calls harmless. What a user must see: every proposal ends in its right outcome,
and the backend applied each side effect once.
"""

from __future__ import annotations

import signal
import time
import uuid
from datetime import datetime

import httpx
import psutil
import pytest

from hms_management.client import TERMINAL_STATES, AirflowClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from hms_management.domain.services import AUDIT, NOTIFICATIONS, POLICY
from hms_stack.distributed import DistributedStack
from hms_stack.stack import process_tree

BURST = 100
WEEKEND_EVERY = 10  # every tenth proposal falls on a Saturday: governance denies it
RULE = {"queue": "foia", "strategy": "oldest-first"}
# Generous: 2 shared cores, and a lost worker costs its tasks a heartbeat timeout and a retry.
BURST_TIMEOUT = 1800.0


def burst(prefix: str) -> dict[str, str]:
    """Proposal id → the outcome it must end with."""
    return {f"{prefix}-{n:03d}": "DENIED" if n % WEEKEND_EVERY == 0 else "COMPLETED" for n in range(BURST)}


def submit_all(agent: AirflowClient, expected: dict[str, str]) -> None:
    for proposal_id, outcome in expected.items():
        agent.submit({"id": proposal_id, "rule": RULE, "day": "Sat" if outcome == "DENIED" else "Tue"})


def runs(agent: AirflowClient, prefix: str) -> list[dict]:
    response = agent.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns",
                             params={"run_id_pattern": run_id_for(prefix), "limit": BURST * 2})
    response.raise_for_status()
    return response.json()["dag_runs"]


def wait_until(condition, timeout: float, what: str, poll: float = 2.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        time.sleep(poll)
    return result


def all_terminal(agent: AirflowClient, prefix: str) -> list[dict] | None:
    found = runs(agent, prefix)
    return found if len(found) == BURST and all(r["state"] in TERMINAL_STATES for r in found) else None


def side_effects(hms: httpx.Client, route: str) -> int:
    return hms.get("/stats").json()["routes"].get(route, {}).get("side_effects", 0)


def route(service) -> str:
    return f"POST {service.endpoint}"


def seconds_from_first_trigger_to_last_end(found: list[dict]) -> float:
    first = min(datetime.fromisoformat(r["queued_at"]) for r in found)
    last = max(datetime.fromisoformat(r["end_date"]) for r in found)
    return (last - first).total_seconds()


def assert_each_ends_right_with_one_side_effect_each(agent, hms, expected: dict[str, str], found: list[dict]):
    outcomes = {r["dag_run_id"]: r for r in found}
    wrong = {pid: (outcomes[run_id_for(pid)]["state"], outcomes[run_id_for(pid)]["note"])
             for pid, outcome in expected.items()
             if outcomes[run_id_for(pid)]["state"] != "success"
             or not (outcomes[run_id_for(pid)]["note"] or "").startswith(f"Outcome: {outcome}")}
    assert wrong == {}
    completed = [pid for pid, outcome in expected.items() if outcome == "COMPLETED"]
    # One policy version per completed proposal, none for a denied one: nothing applied twice.
    versions = {pid: len(hms.get(f"/svc/policy/{pid}").json().get("versions", [])) for pid in completed}
    assert {pid: n for pid, n in versions.items() if n != 1} == {}
    assert side_effects(hms, route(POLICY)) == len(completed)
    assert side_effects(hms, route(NOTIFICATIONS)) == len(completed)
    assert side_effects(hms, route(AUDIT)) == len(expected)  # one audit record per proposal, whatever its outcome


def tries(agent: AirflowClient, proposal_ids) -> dict[str, int]:
    """(proposal id, task id) → try number, for the tasks that needed more than one try."""
    retried = {}
    for pid in proposal_ids:
        for task_id, ti in agent.task_instances(pid).items():
            if (ti["try_number"] or 0) > 1:
                retried[f"{pid}.{task_id}"] = ti["try_number"]
    return retried


def busy_task_processes(stack: DistributedStack, worker: str) -> int:
    """Tasks a worker is running now: its pool processes that have a task process of their own."""
    pool = psutil.Process(stack.processes[worker].pid).children()
    return sum(1 for child in pool if any(task.status() != psutil.STATUS_ZOMBIE for task in child.children()))


def kill_tree(pid: int) -> int:
    """SIGKILL a process and all its descendants at once, as when its machine dies."""
    procs = process_tree(pid)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
    return len(procs)


@pytest.fixture
def prefix() -> str:
    return f"burst-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def fresh_stats(hms: httpx.Client) -> None:
    hms.delete("/stats").raise_for_status()


# Every policy update is applied at once and answered this much later: the apply_policy tasks are
# in flight for seconds, so the victim is provably in the middle of some when it dies, and their
# retries meet side effects that were already applied (the Idempotency-Key must hold).
POLICY_ANSWER_HELD_MS = 2000


@pytest.mark.usefixtures("fresh_stats")
def test_worker_killed_mid_burst_every_proposal_ends_right_and_no_side_effect_twice(stack, agent, hms, prefix):
    expected = burst(prefix)
    victim = stack.worker_names[0]
    hms.put("/admin/faults", json={"route": POLICY.endpoint, "hold_answer_ms": POLICY_ANSWER_HELD_MS,
                                   "times": -1}).raise_for_status()

    submit_all(agent, expected)
    # In the middle of the burst, and while the victim is running tasks.
    wait_until(lambda: sum(r["state"] in TERMINAL_STATES for r in runs(agent, prefix)) >= BURST // 5,
               BURST_TIMEOUT, "a fifth of the burst never ended", poll=0.5)
    terminal_at_kill = sum(r["state"] in TERMINAL_STATES for r in runs(agent, prefix))
    held_before = hms.get("/stats").json()["routes"][route(POLICY)]["in_flight"]
    killed_while_running = wait_until(lambda: busy_task_processes(stack, victim), BURST_TIMEOUT,
                                      f"{victim} never ran a task", poll=0.02)
    kill_tree(stack.processes[victim].pid)
    hms.delete("/admin/faults").raise_for_status()
    found = wait_until(lambda: all_terminal(agent, prefix), BURST_TIMEOUT, "the burst was not over")

    assert_each_ends_right_with_one_side_effect_each(agent, hms, expected, found)
    retried = tries(agent, expected)
    assert retried  # the tasks the lost worker was running got a second try
    policy = hms.get("/stats").json()["routes"].get(route(POLICY), {})
    print(f"{victim} killed (SIGKILL, whole process tree) running {killed_while_running} task(s) "
          f"({held_before} policy answers held at the backend), "
          f"{terminal_at_kill}/{BURST} runs over; all {BURST} ended right; "
          f"{len(retried)} task instance(s) retried: {retried}; "
          f"POST /svc/policy: {policy.get('calls')} calls, {policy.get('side_effects')} side effects; "
          f"{seconds_from_first_trigger_to_last_end(found):.1f} s from the first trigger to the last end")
