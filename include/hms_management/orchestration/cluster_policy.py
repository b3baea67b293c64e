"""Cluster policy (entry point `airflow.policy`): a proposal's `priority` becomes its tasks' weight.

Priority is per proposal, but `priority_weight` is per task in the DAG file; the scheduler calls
this hook as it creates a run's task instances, with the run at hand, so each run gets its own.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

from hms_management.domain.priority import PRIORITY_WEIGHTS
from hms_management.domain.proposal import DAG_ID


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    if dag_run is None or task_instance.dag_id != DAG_ID:
        return
    conf = dag_run.conf if isinstance(dag_run.conf, dict) else {}
    weight = PRIORITY_WEIGHTS.get(conf.get("priority", "normal"))
    if weight is not None:
        task_instance.priority_weight = weight
