"""Airflow's REST API as the tests and the benchmark look at a live stack: counts, task instances,
pools. Dev tooling, not the agents' client (`hms_management.client`)."""

from __future__ import annotations

from typing import Any

from hms_management.client import AirflowClient, ApiError, response_body
from hms_management.domain.proposal import DAG_ID, run_id_for


class StackProbe(AirflowClient):
    def task_instances(self, proposal_id: str) -> dict[str, dict[str, Any]]:
        response = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id_for(proposal_id)}/taskInstances")
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return {ti["task_id"]: ti for ti in response.json()["task_instances"]}

    def count_runs(self, *, states: tuple[str, ...] = ()) -> int:
        """How many proposal runs exist (in any of `states`, when given)."""
        params: dict[str, Any] = {"limit": 1}
        if states:
            params["state"] = list(states)
        response = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params=params)
        return response.json()["total_entries"]

    def pool(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/pools/{name}").json()
