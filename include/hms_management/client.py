"""A small typed client of Airflow's REST API for proposals: what agents, operators and tests use.

    client = AirflowClient("http://127.0.0.1:8080", "agent", password)
    client.submit({"id": "p-1", "rule": {...}})        # 200 queued, 409 duplicate, 400 invalid
    run = client.wait("p-1")                           # until success or failed
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from hms_management.domain.outcome import OUTCOMES
from hms_management.domain.proposal import DAG_ID, run_id_for

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
                raise ApiError(response.status_code, response_body(response))
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; a token that expired is fetched again once."""
        extra_headers = kwargs.pop("headers", None) or {}  # kept for the retry after a token refresh
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(refresh=attempt == 2)}", **extra_headers}
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
            raise ApiError(response.status_code, response_body(response))
        return Run.from_api(response.json())

    def run(self, proposal_id: str) -> Run:
        response = self.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id_for(proposal_id)}")
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return Run.from_api(response.json())

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


def response_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


class ManagementClient:
    """The HMS Management API (`/management` on the api-server): the seed's contract for agents.

        with ManagementClient("http://127.0.0.1:8080", "agent", password) as hms:
            hms.submit({"id": "p-1", "rule": {...}}, wait=30)   # {"status": "completed", ...}
            hms.status("p-1")                                   # steps, tries, governance decision
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 90.0) -> None:
        self._airflow = AirflowClient(base_url, username, password, timeout=timeout)

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._airflow.close()

    def token(self, *, refresh: bool = False) -> str:
        return self._airflow.token(refresh=refresh)

    def post(self, body: Any, *, wait: float = 0, content_type: str = "application/json") -> httpx.Response:
        """The raw answer of POST /management/proposals, for callers that read codes themselves."""
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        params = {"wait": wait} if wait else None
        return self._airflow.request("POST", "/management/proposals", content=content, params=params,
                                     headers={"Content-Type": content_type})

    def submit(self, proposal: dict[str, Any], *, wait: float = 0) -> dict[str, Any]:
        """Submit (or find) a proposal; with `wait`, its final status if it ends in time."""
        response = self.post(proposal, wait=wait)
        if response.status_code not in (200, 202):
            raise ApiError(response.status_code, response_body(response))
        return response.json()

    def status(self, proposal_id: str, *, wait: float = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        response = self._airflow.request("GET", f"/management/proposals/{proposal_id}", params=params)
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return response.json()

    def wait(self, proposal_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Until the proposal ends, holding one request at a time open on the server (no busy polling)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(proposal_id, wait=min(60.0, max(1.0, deadline - time.monotonic())))
            if status["status"] in OUTCOMES or time.monotonic() >= deadline:
                return status

    def list(self, *, status: str | None = None, submitter: str | None = None, text: str | None = None,
             limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        params = {k: v for k, v in {"status": status, "submitter": submitter, "q": text, "limit": limit,
                                    "cursor": cursor}.items() if v is not None}
        response = self._airflow.request("GET", "/management/proposals", params=params)
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return response.json()

    def counts(self) -> dict[str, int]:
        """How many proposals are in each status."""
        response = self._airflow.request("GET", "/management/counts")
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return response.json()["counts"]

    def decide(self, proposal_id: str, *, approved: bool, reason: str) -> httpx.Response:
        """A reviewer's decision on a proposal awaiting review; the raw answer (200, 403, 404, 409)."""
        return self._airflow.request("POST", f"/management/proposals/{proposal_id}/decision",
                                     json={"approved": approved, "reason": reason})

    def revoke(self, proposal_id: str, *, reason: str) -> httpx.Response:
        """A reviewer's revocation of a proposal that has not ended; the raw answer (200, 403, 404, 409)."""
        return self._airflow.request("POST", f"/management/proposals/{proposal_id}/revoke", json={"reason": reason})
