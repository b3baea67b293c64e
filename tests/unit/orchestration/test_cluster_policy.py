"""The priority policy: a proposal's priority becomes its tasks' weight; other DAGs are untouched."""

from __future__ import annotations

from types import SimpleNamespace

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


def test_priority_classes_are_ordered():
    assert PRIORITY_WEIGHTS["low"] < PRIORITY_WEIGHTS["normal"] < PRIORITY_WEIGHTS["high"]
