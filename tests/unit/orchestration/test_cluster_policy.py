"""The priority policy: a proposal's priority becomes its tasks' weight; other DAGs are untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from hms_management.domain.priority import run_after_for
from hms_management.domain.proposal import DAG_ID
from hms_management.domain.steps import APPLY_POLICY
from hms_management.orchestration.cluster_policy import PRIORITY_WEIGHTS, task_instance_mutation_hook


def test_the_hook_weighs_proposal_tasks_by_the_runs_priority_and_leaves_other_dags_alone():
    ti = SimpleNamespace(dag_id=DAG_ID, task_id=APPLY_POLICY, priority_weight=1)
    task_instance_mutation_hook(ti, SimpleNamespace(conf={"id": "p", "priority": "high"}))
    assert ti.priority_weight == PRIORITY_WEIGHTS["high"]

    unset = SimpleNamespace(dag_id=DAG_ID, task_id=APPLY_POLICY, priority_weight=1)
    task_instance_mutation_hook(unset, SimpleNamespace(conf={"id": "p"}))
    assert unset.priority_weight == PRIORITY_WEIGHTS["normal"]

    other = SimpleNamespace(dag_id="backlog_sweep", task_id=APPLY_POLICY, priority_weight=1000)
    task_instance_mutation_hook(other, SimpleNamespace(conf={"priority": "low"}))
    assert other.priority_weight == 1000


def test_a_high_priority_proposal_queues_ahead_of_everything_submitted_in_the_last_day():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    queued_this_morning = run_after_for("normal", now - timedelta(hours=5))

    assert run_after_for("high", now) < queued_this_morning < run_after_for("normal", now)
    assert run_after_for("low", now) == run_after_for("normal", now)  # never held back, only weighed less
