"""A burst of proposals on two Celery workers, and one worker lost with SIGKILL in the middle of it.

A worker that dies takes its running tasks with it. The scheduler notices that they stopped
heartbeating, fails them, and they are retried on the surviving worker; the idempotency keys make
the re-sent HMS calls harmless. What a user must see: every proposal ends in its right outcome,
and the backend applied each side effect once.
"""

from __future__ import annotations

import contextlib
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

BURST = 50
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


def held_calls_of(stack: DistributedStack, worker: str, hms: httpx.Client) -> list[str]:
    """Idempotency keys of the worker's policy calls whose answer the backend holds right now: the
    backend lists each held call's client address, and the worker's task processes own those sockets."""
    ports = set()
    for proc in process_tree(stack.processes[worker].pid):
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in proc.net_connections("tcp") if c.raddr and c.raddr.port == stack.hms_port}
    held = hms.get("/stats").json()["routes"][route(POLICY)]["held"]
    return [call["idempotency_key"] for call in held if int(call["client"].rsplit(":", 1)[1]) in ports]


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


# Policy answers are held until the victim is waiting for one, each try this long at most: well
# inside the steps' 10 s request timeout, so that no call of the surviving worker times out.
HOLD_TRY_S = 5.0


def kill_mid_call(stack: DistributedStack, victim: str, hms: httpx.Client) -> list[str]:
    """SIGKILL the victim while one of its tasks provably waits for a policy answer, then release the
    answers held: the killed call's side effect is applied, so its retry must meet the Idempotency-Key.
    Returns the killed calls' keys."""
    deadline = time.monotonic() + BURST_TIMEOUT
    while time.monotonic() < deadline:
        hms.put("/admin/faults", json={"route": POLICY.endpoint, "hold_answer_ms": 60_000, "times": -1}
                ).raise_for_status()
        try_over = time.monotonic() + HOLD_TRY_S
        while time.monotonic() < try_over:
            if killed := held_calls_of(stack, victim, hms):
                kill_tree(stack.processes[victim].pid)
                hms.delete("/admin/faults").raise_for_status()
                return killed
            time.sleep(0.05)
        hms.delete("/admin/faults").raise_for_status()  # none of the victim's this time: let them go
    raise TimeoutError(f"{victim} never waited for a policy answer")


@pytest.mark.usefixtures("fresh_stats")
def test_worker_killed_mid_burst_every_proposal_ends_right_and_no_side_effect_twice(stack, agent, hms, prefix):
    expected = burst(prefix)
    victim = stack.worker_names[0]

    submit_all(agent, expected)
    # In the middle of the burst, and while a task of the victim waits for its policy answer.
    wait_until(lambda: sum(r["state"] in TERMINAL_STATES for r in runs(agent, prefix)) >= BURST // 5,
               BURST_TIMEOUT, "a fifth of the burst never ended", poll=0.5)
    terminal_at_kill = sum(r["state"] in TERMINAL_STATES for r in runs(agent, prefix))
    killed = kill_mid_call(stack, victim, hms)
    found = wait_until(lambda: all_terminal(agent, prefix), BURST_TIMEOUT, "the burst was not over")

    assert_each_ends_right_with_one_side_effect_each(agent, hms, expected, found)
    retried = tries(agent, expected)
    # The killed tasks got a second try (their first was failed when its heartbeat stopped).
    # A policy call's key is `<id>:policy:<scope>`; its task, `<id>.apply_policy`.
    assert {f"{key.split(':policy:', 1)[0]}.apply_policy" for key in killed} <= set(retried), (killed, retried)
    policy = hms.get("/stats").json()["routes"].get(route(POLICY), {})
    print(f"{victim} killed (SIGKILL, whole process tree) while waiting for policy answers to {killed}, "
          f"{terminal_at_kill}/{BURST} runs over; all {BURST} ended right; "
          f"{len(retried)} task instance(s) retried: {retried}; "
          f"POST /svc/policy: {policy.get('calls')} calls, {policy.get('side_effects')} side effects; "
          f"{seconds_from_first_trigger_to_last_end(found):.1f} s from the first trigger to the last end")
