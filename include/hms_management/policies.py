"""Cluster policy (entry point `airflow.policy`): a proposal's `priority` becomes its tasks' weight.

Priority is per proposal, but `priority_weight` is per task in the DAG file; the scheduler calls
this hook as it creates a run's task instances, with the run at hand, so each run gets its own.
Within a priority, a later step weighs more: a proposal under way finishes before a new one takes
its first step, so a burst delivers outcomes all along instead of all of them at its end.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

from hms_management.proposal import DAG_ID
from hms_management.workflow import TASK_ORDER

# Far apart (more than the steps' spread), so that under a full pool a high-priority proposal's
# next step goes first.
PRIORITY_WEIGHTS = {"low": 1, "normal": 10, "high": 100}


def weight_of(priority: str, task_id: str) -> int | None:
    base = PRIORITY_WEIGHTS.get(priority)
    if base is None:
        return None
    return base + (TASK_ORDER.index(task_id) if task_id in TASK_ORDER else 0)


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    if dag_run is None or task_instance.dag_id != DAG_ID:
        return
    conf = dag_run.conf if isinstance(dag_run.conf, dict) else {}
    weight = weight_of(conf.get("priority", "normal"), task_instance.task_id)
    if weight is not None:
        task_instance.priority_weight = weight
