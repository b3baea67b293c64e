"""Cluster policy (entry point `airflow.policy`): what a proposal says about its own tasks.

- its `priority` becomes its tasks' weight (which step goes first when a pool is full);
- its targets become its HMS steps' pool slots: a step sends up to `max_parallel_calls` calls at
  once (one per policy scope, one per officer group), so it holds that many slots of its service's
  pool, and the pool still bounds the calls in flight.

Priority and targets are per proposal, but `priority_weight` and `pool_slots` are per task in the
DAG file; the scheduler calls this hook as it creates a run's task instances, with the run at hand,
so each run gets its own.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

from hms_management.domain.priority import PRIORITY_WEIGHTS
from hms_management.domain.proposal import DAG_ID
from hms_management.domain.steps import APPLY_POLICY, NOTIFY_OFFICERS


def parallel_calls(conf: dict[str, Any], task_id: str, most: int) -> int:
    """How many calls the step sends at once: one per target, at most `most`."""
    targets = {APPLY_POLICY: conf.get("targets"), NOTIFY_OFFICERS: conf.get("notify")}.get(task_id)
    return max(1, min(len(targets) if isinstance(targets, list) else 1, most))


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    if dag_run is None or task_instance.dag_id != DAG_ID:
        return
    conf = dag_run.conf if isinstance(dag_run.conf, dict) else {}
    weight = PRIORITY_WEIGHTS.get(conf.get("priority", "normal"))
    if weight is not None:
        task_instance.priority_weight = weight
    if task_instance.task_id in (APPLY_POLICY, NOTIFY_OFFICERS):
        from hms_management.orchestration.config import settings

        task_instance.pool_slots = parallel_calls(conf, task_instance.task_id, settings().max_parallel_calls)
