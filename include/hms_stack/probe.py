"""Airflow's REST API as the tests and the benchmark look at a live stack: counts, task instances,
pools. Dev tooling, not the agents' client (`hms_management.client`)."""

from __future__ import annotations

from typing import Any

from airflow_client.client.api.pool_api import PoolApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi

from hms_management.client import AirflowClient
from hms_management.domain.proposal import DAG_ID, run_id_for


class StackProbe(AirflowClient):
    def task_instances(self, proposal_id: str) -> dict[str, dict[str, Any]]:
        """The proposal run's task instances by task id, as the REST API shows them (JSON values)."""
        page = self.call(TaskInstanceApi(self.api).get_task_instances, DAG_ID, run_id_for(proposal_id))
        return {ti.task_id: ti.model_dump(mode="json", by_alias=True) for ti in page.task_instances}

    def count_runs(self, *, states: tuple[str, ...] = ()) -> int:
        """How many proposal runs exist (in any of `states`, when given)."""
        return self.call(self.dag_runs.get_dag_runs, DAG_ID, limit=1, state=list(states) or None).total_entries

    def pool(self, name: str) -> dict[str, Any]:
        return self.call(PoolApi(self.api).get_pool, name).model_dump(mode="json", by_alias=True)
