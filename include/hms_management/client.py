"""The agents' clients, each logged in through `hms_management.airflow_login`:

- `ManagementClient`: the HMS Management API (`/management` on the api-server);
- `AirflowClient`: proposals through Airflow's REST API (`/api/v2`), on Airflow's official client
  (`apache-airflow-client`).

    with AirflowClient("http://127.0.0.1:8080", "agent", password) as airflow:
        airflow.submit({"id": "p-1", "rule": {...}})      # ApiError on 400 (invalid) and 409 (duplicate)
        run = airflow.wait("p-1")                         # until success or failed
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models import DAGRunResponse, TriggerDAGRunPostBody

from hms_management.airflow_login import AirflowLogin, ApiError, bearer
from hms_management.domain.outcome import OUTCOMES
from hms_management.domain.proposal import DAG_ID, run_id_for

TERMINAL_STATES = ("success", "failed")
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """A raw answer of Airflow's REST API, for callers that read its status code themselves."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> Answer:
        if self.status_code >= 400:
            raise ApiError(self.status_code, response_body(self))
        return self


@dataclass
class Run:
    run_id: str
    state: str
    note: str | None
    conf: dict[str, Any]

    @classmethod
    def of(cls, run: DAGRunResponse) -> Run:
        return cls(run.dag_run_id, str(getattr(run.state, "value", run.state)), run.note, run.conf or {})


class AirflowClient:
    """Proposals as DAG runs through Airflow's REST API, as one user. The typed calls raise ApiError
    when Airflow refuses; when it does not answer, the official client's transport raises urllib3's
    errors (`urllib3.exceptions.HTTPError`)."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self._login = AirflowLogin(base_url, username, password, timeout=timeout)
        self._timeout = timeout
        self.api = ApiClient(Configuration(host=self._login.base_url))
        self.dag_runs = DagRunApi(self.api)

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.rest_client.pool_manager.clear()  # the official client has no close(): free its sockets

    def token(self) -> str:
        return self._login.token()

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A method of the official client as this user, e.g. `call(self.dag_runs.get_dag_runs, DAG_ID)`;
        ApiError when Airflow refuses it."""
        try:
            return self._login.authorized(
                lambda token: method(*args, **kwargs, _headers=bearer(token), _request_timeout=self._timeout))
        except ApiException as err:
            raise ApiError(err.status or 0, _parsed(err.body)) from err

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Answer:
        """Any call of the REST API, through the official client's transport; the raw answer."""
        url = f"{self._login.base_url}{path}" + (f"?{urlencode(params, doseq=True)}" if params else "")
        headers = {"Content-Type": "application/json"} if json is not None else {}
        answer = self._login.authorized(lambda token: self.api.rest_client.request(
            method, url, headers={**headers, **bearer(token)}, body=json, _request_timeout=self._timeout))
        return Answer(answer.status, answer.read())

    # -- proposals ---------------------------------------------------------------------------

    def trigger(self, proposal: Any, *, run_id: str | None = None) -> Answer:
        """POST the proposal as a run's conf; the raw answer (200, 400, 409) for the caller to read."""
        body = TriggerDAGRunPostBody(logical_date=None, conf=proposal, **({"dag_run_id": run_id} if run_id else {}))
        answer = self._login.authorized(lambda token: self.dag_runs.trigger_dag_run_without_preload_content(
            DAG_ID, body, _headers=bearer(token), _request_timeout=self._timeout))
        return Answer(answer.status, answer.data)

    def submit(self, proposal: dict[str, Any]) -> Run:
        """Start the proposal's run; ApiError on 400 (invalid) and 409 (its run exists)."""
        body = TriggerDAGRunPostBody(dag_run_id=run_id_for(proposal["id"]), logical_date=None, conf=proposal)
        return Run.of(self.call(self.dag_runs.trigger_dag_run, DAG_ID, body))

    def run(self, proposal_id: str) -> Run:
        return Run.of(self.call(self.dag_runs.get_dag_run, DAG_ID, run_id_for(proposal_id)))

    def wait(self, proposal_id: str, *, timeout: float = 120.0) -> Run:
        """Poll until the run is terminal (its note is written in the same transaction as its state)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(proposal_id)
            if run.state in TERMINAL_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run.run_id} still {run.state} after {timeout:.0f} s")
            time.sleep(0.5)


def response_body(response: httpx.Response | Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _parsed(body: Any) -> Any:
    """An error answer's body as JSON when it is JSON."""
    try:
        return json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return body


class ManagementClient:
    """The HMS Management API (`/management` on the api-server): the seed's contract for agents.

        with ManagementClient("http://127.0.0.1:8080", "agent", password) as hms:
            hms.submit({"id": "p-1", "rule": {...}}, wait=30)   # {"status": "completed", ...}
            hms.status("p-1")                                   # steps, tries, governance decision
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 90.0) -> None:
        self._login = AirflowLogin(base_url, username, password, timeout=timeout)
        self._http = httpx.Client(base_url=self._login.base_url, timeout=timeout)

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any call of the api-server as this user (httpx's arguments); the raw answer."""
        headers = kwargs.pop("headers", None) or {}  # a resend after a new token keeps them
        return self._login.authorized(
            lambda token: self._http.request(method, path, headers={**headers, **bearer(token)}, **kwargs))

    def post(self, body: Any, *, wait: float = 0, content_type: str = "application/json") -> httpx.Response:
        """The raw answer of POST /management/proposals, for callers that read codes themselves."""
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        params = {"wait": wait} if wait else None
        return self.request("POST", "/management/proposals", content=content, params=params,
                            headers={"Content-Type": content_type})

    def submit(self, proposal: dict[str, Any], *, wait: float = 0) -> dict[str, Any]:
        """Submit (or find) a proposal; with `wait`, its final status if it ends in time."""
        response = self.post(proposal, wait=wait)
        if response.status_code not in (200, 202):
            raise ApiError(response.status_code, response_body(response))
        return response.json()

    def status(self, proposal_id: str, *, wait: float = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        response = self.request("GET", f"/management/proposals/{proposal_id}", params=params)
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
        response = self.request("GET", "/management/proposals", params=params)
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return response.json()

    def counts(self) -> dict[str, int]:
        """How many proposals are in each status."""
        response = self.request("GET", "/management/counts")
        if response.status_code != 200:
            raise ApiError(response.status_code, response_body(response))
        return response.json()["counts"]

    def decide(self, proposal_id: str, *, approved: bool, reason: str) -> httpx.Response:
        """A reviewer's decision on a proposal awaiting review; the raw answer (200, 403, 404, 409)."""
        return self.request("POST", f"/management/proposals/{proposal_id}/decision",
                            json={"approved": approved, "reason": reason})

    def revoke(self, proposal_id: str, *, reason: str) -> httpx.Response:
        """A reviewer's revocation of a proposal that has not ended; the raw answer (200, 403, 404, 409)."""
        return self.request("POST", f"/management/proposals/{proposal_id}/revoke", json={"reason": reason})
