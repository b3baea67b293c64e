"""Proposal runs through Airflow's REST API, with the official client (`apache-airflow-client`).

Tasks cannot touch the metadata database in Airflow 3; the backlog sweep and the review watcher
start, read and resume proposal runs through the REST API instead, as the Management Layer's own
user (connection `airflow_api`, role `user`, logged in by `hms_management.airflow_login`). A trigger
through the API passes the same admission check as an agent's, so a run the sweep starts is exactly
a run an agent would have started.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models import (
    ClearTaskInstancesBody,
    ClearTaskInstancesBodyTaskIdsInner,
    DAGRunPatchBody,
    DAGRunResponse,
    TriggerDAGRunPostBody,
)

from hms_management.airflow_login import AirflowLogin, ApiError, bearer
from hms_management.domain.proposal import DAG_ID, Proposal, run_id_for

# The Management Layer's user for Airflow's REST API (the sweep and the review watcher).
AIRFLOW_API_CONN_ID = "airflow_api"
AUTOMATION_USER = "backlog_sweeper"
# While hundreds of fresh runs start on two cores the api-server is slow rather than down (seen
# here): a generous timeout, since a sweep or a watch that stops over a slow answer only leaves work.
TIMEOUT_SECONDS = 30.0

Started = Literal["started", "exists", "refused"]
T = TypeVar("T")


class AirflowApiError(Exception):
    """Airflow's REST API refused or did not answer; the message says what was being done."""

    def __init__(self, message: str, *, status: int = 0, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message


class AirflowRuns:
    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self._login = AirflowLogin(base_url, username, password, timeout=timeout)
        self._timeout = timeout
        self._client = ApiClient(Configuration(host=self._login.base_url))
        self.dag_runs = DagRunApi(self._client)
        self.task_instances = TaskInstanceApi(self._client)

    @classmethod
    def from_connection(cls) -> AirflowRuns:
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(AIRFLOW_API_CONN_ID)
        return cls(f"{connection.schema or 'http'}://{connection.host}:{connection.port}", connection.login or "",
                   connection.password or "")

    def close(self) -> None:
        self._client.rest_client.pool_manager.clear()  # the client has no close(): free its sockets

    def __enter__(self) -> AirflowRuns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls ---------------------------------------------------------------------------

    def start(self, proposal: Proposal, *, run_after: datetime | None = None) -> tuple[Started, str | None]:
        """Trigger the proposal's run: started, exists (409), or refused by the admission check (400)."""
        body = TriggerDAGRunPostBody(dag_run_id=proposal.run_id, logical_date=None, conf=proposal.as_conf(),
                                     run_after=run_after)
        try:
            self._call(f"trigger {proposal.run_id}", self.dag_runs.trigger_dag_run, DAG_ID, body)
        except AirflowApiError as err:
            if err.status == 409:
                return "exists", None
            if err.status == 400:
                return "refused", err.detail
            raise
        return "started", None

    def run(self, proposal_id: str) -> DAGRunResponse | None:
        try:
            return self._call(f"read {run_id_for(proposal_id)}", self.dag_runs.get_dag_run, DAG_ID,
                              run_id_for(proposal_id))
        except AirflowApiError as err:
            if err.status == 404:
                return None
            raise

    def failed_runs(self, *, ended_after: datetime, limit: int) -> list[DAGRunResponse]:
        """The oldest `limit` failed proposal runs that ended after `ended_after`, oldest first."""
        page = self._call("list failed proposal runs", self.dag_runs.get_dag_runs, DAG_ID, state=["failed"],
                          end_date_gt=ended_after, order_by=["end_date"], limit=limit)
        return list(page.dag_runs)

    def rerun_from(self, proposal_id: str, task_id: str) -> list[str]:
        """Clear the proposal's run from `task_id` on (that step and every step after it): the
        scheduler runs them again and the run's state follows. Returns the cleared task ids."""
        body = ClearTaskInstancesBody(
            dag_run_id=run_id_for(proposal_id), task_ids=[ClearTaskInstancesBodyTaskIdsInner(task_id)],
            include_downstream=True, only_failed=False, reset_dag_runs=True, dry_run=False)
        cleared = self._call(f"clear {proposal_id} from {task_id}", self.task_instances.post_clear_task_instances,
                             DAG_ID, body)
        return sorted({ti.task_id for ti in cleared.task_instances})

    def set_note(self, dag_id: str, run_id: str, note: str) -> None:
        """A run's note (at most 1,000 characters), where analysts read a run at a glance."""
        self._call(f"write the note of {run_id}", self.dag_runs.patch_dag_run, dag_id, run_id,
                   DAGRunPatchBody(note=note[:1000]), update_mask=["note"])

    # -- transport -----------------------------------------------------------------------------

    def _call(self, what: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call as the Management Layer's user (a token that expired is fetched again once)."""
        try:
            return self._login.authorized(
                lambda token: method(*args, **kwargs, _headers=bearer(token), _request_timeout=self._timeout))
        except ApiError as err:  # the login itself was refused
            raise AirflowApiError(_refusal("log in", err.status, err.body), status=err.status) from err
        except ApiException as err:
            raise AirflowApiError(_refusal(what, err.status or 0, err.body), status=err.status or 0,
                                  detail=_detail(err.body)) from err
        except Exception as err:  # connection errors and timeouts (urllib3's, or httpx's when logging in)
            raise AirflowApiError(f"Airflow's REST API did not answer ({what}): {type(err).__name__}: {err}") from err


def run_state(run: DAGRunResponse) -> str:
    """A run's state as a plain string (queued, running, success, failed)."""
    return str(getattr(run.state, "value", run.state))


def _detail(body: Any) -> str:
    """What an error answer says: its `detail` when it is JSON that has one."""
    try:
        parsed = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        parsed = body
    return str(parsed.get("detail", parsed) if isinstance(parsed, dict) else parsed)[:1000]


def _refusal(what: str, status: int, body: Any) -> str:
    detail = _detail(body)
    if status in (401, 403):
        return (f"Airflow's REST API refused to {what} with {status}: check the {AIRFLOW_API_CONN_ID} connection "
                f"(user {AUTOMATION_USER}, role user) — {detail}")
    return f"Airflow's REST API answered {status} when asked to {what}: {detail}"
