"""A small typed client of Airflow's REST API for proposals: what agents, operators and tests use.

    client = AirflowClient("http://127.0.0.1:8080", "agent", password)
    client.submit({"id": "p-1", "rule": {...}})        # 200 queued, 409 duplicate, 400 invalid
    run = client.wait("p-1")                           # until success or failed
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from hms_management.proposal import DAG_ID, run_id_for

TERMINAL_STATES = ("success", "failed")


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body
        super().__init__(f"{status}: {body}")


@dataclass
class Run:
    run_id: str
    state: str
    note: str | None
    queued_at: str | None
    start_date: str | None
    end_date: str | None
    conf: dict[str, Any]

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Run:
        return cls(body["dag_run_id"], body["state"], body.get("note"), body.get("queued_at"),
                   body.get("start_date"), body.get("end_date"), body.get("conf") or {})


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    # -- auth --------------------------------------------------------------------------------

    def token(self, *, refresh: bool = False) -> str:
        if self._token is None or refresh:
            response = self._http.post("/auth/token", json=self._credentials)
            if response.status_code != 201:
                raise ApiError(response.status_code, _body(response))
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; a token that expired is fetched again once."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(refresh=attempt == 2)}", **kwargs.pop("headers", {})}
            response = self._http.request(method, path, headers=headers, **kwargs)
            if response.status_code != 401:
                return response
        return response

    # -- proposals ---------------------------------------------------------------------------

    def trigger(self, proposal: Any, *, run_id: str | None = None) -> httpx.Response:
        """POST the proposal as a run's conf; the raw answer (200, 400, 409) for the caller to read."""
        body: dict[str, Any] = {"logical_date": None, "conf": proposal}
        if run_id is not None:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json=body)

    def submit(self, proposal: dict[str, Any]) -> Run:
        response = self.trigger(proposal, run_id=run_id_for(proposal["id"]))
        if response.status_code != 200:
            raise ApiError(response.status_code, _body(response))
        return Run.from_api(response.json())

    def run(self, proposal_id: str) -> Run:
        response = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id_for(proposal_id)}")
        if response.status_code != 200:
            raise ApiError(response.status_code, _body(response))
        return Run.from_api(response.json())

    def task_instances(self, proposal_id: str) -> dict[str, dict[str, Any]]:
        response = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id_for(proposal_id)}/taskInstances")
        if response.status_code != 200:
            raise ApiError(response.status_code, _body(response))
        return {ti["task_id"]: ti for ti in response.json()["task_instances"]}

    def wait(self, proposal_id: str, *, timeout: float = 120.0, poll: float = 0.5) -> Run:
        """Poll until the run is terminal (its note is written in the same transaction as its state)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(proposal_id)
            if run.state in TERMINAL_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run.run_id} still {run.state} after {timeout:.0f} s")
            time.sleep(poll)

    def count_runs(self) -> int:
        response = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 1})
        return response.json()["total_entries"]

    def pool(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/pools/{name}").json()


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
