"""The priority policy: priority classes never overlap, and later steps go first within one."""

from __future__ import annotations

from types import SimpleNamespace

from hms_management.policies import task_instance_mutation_hook, weight_of
from hms_management.proposal import DAG_ID
from hms_management.workflow import APPLY_POLICY, GOVERNANCE_GATE, RECORD_AUDIT, TASK_ORDER


def test_every_step_of_a_higher_priority_outweighs_every_step_of_a_lower_one():
    for lower, higher in (("low", "normal"), ("normal", "high")):
        assert max(weight_of(lower, t) for t in TASK_ORDER) < min(weight_of(higher, t) for t in TASK_ORDER)


def test_within_a_priority_a_proposal_under_way_goes_before_a_new_one():
    assert weight_of("normal", GOVERNANCE_GATE) < weight_of("normal", APPLY_POLICY) < weight_of("normal", RECORD_AUDIT)


def test_the_hook_weighs_proposal_tasks_by_the_runs_priority_and_leaves_other_dags_alone():
    ti = SimpleNamespace(dag_id=DAG_ID, task_id=APPLY_POLICY, priority_weight=1)
    task_instance_mutation_hook(ti, SimpleNamespace(conf={"id": "p", "priority": "high"}))
    assert ti.priority_weight == weight_of("high", APPLY_POLICY)

    other = SimpleNamespace(dag_id="backlog_sweep", task_id=APPLY_POLICY, priority_weight=1000)
    task_instance_mutation_hook(other, SimpleNamespace(conf={"priority": "low"}))
    assert other.priority_weight == 1000
