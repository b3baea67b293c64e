"""A burst flows through in submission order, and a high-priority proposal goes ahead of it.

At most `max_running_proposals` proposal runs are at work (6 in this stack); the rest wait queued
and start in the order of their `run_after` — the time they were submitted, or a day earlier for
`priority: high`. Completion times come from Airflow's own records (queued_at, end_date).
"""

from __future__ import annotations

import time

from hms_management.domain.proposal import DAG_ID
from tests.live_stack import MAX_RUNNING_PROPOSALS

BURST = 4 * MAX_RUNNING_PROPOSALS
RULE = {"queue": "foia"}


def ended_in_order(agent, prefix: str, count: int, timeout: float = 300) -> list[str]:
    """The run ids of the `count` runs named after `prefix`, in the order they ended."""
    deadline = time.monotonic() + timeout
    while True:
        runs = agent.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns",
                             params={"run_id_pattern": prefix, "limit": 200}).json()["dag_runs"]
        if len(runs) == count and all(r["state"] in ("success", "failed") for r in runs):
            assert {r["state"] for r in runs} == {"success"}
            return [r["dag_run_id"] for r in sorted(runs, key=lambda r: r["end_date"])]
        assert time.monotonic() < deadline, f"the burst {prefix} did not end in {timeout} s"
        time.sleep(1)


def test_a_burst_ends_in_submission_order_and_a_high_priority_proposal_overtakes_it(agent, proposal_id):
    prefix = f"order-{proposal_id[-8:]}"
    submitted = [f"{prefix}-{n:02d}" for n in range(BURST)]
    for pid in submitted:
        agent.submit({"id": pid, "rule": RULE})
    urgent = f"{prefix}-urgent"
    agent.submit({"id": urgent, "rule": RULE, "priority": "high"})

    order = [run_id.removeprefix("proposal__") for run_id in ended_in_order(agent, prefix, BURST + 1)]

    # Each proposal ends within one wave of running proposals of where it was submitted.
    displaced = {pid: order.index(pid) - n for n, pid in enumerate(submitted)
                 if abs(order.index(pid) - n) > MAX_RUNNING_PROPOSALS}
    assert displaced == {}
    # Submitted last, the urgent one starts as soon as a slot is free: in the first two waves.
    assert order.index(urgent) < 2 * MAX_RUNNING_PROPOSALS, order
