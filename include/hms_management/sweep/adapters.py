"""The services a sweep talks to: the HMS backlog and audit log over HTTP, Airflow's REST API for runs."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from hms_management.domain.proposal import Proposal
from hms_management.domain.services import AUDIT, BACKLOG, REQUEST_TIMEOUT_SECONDS, is_transient
from hms_management.domain.steps import ERROR_KEY, RECORD_AUDIT
from hms_management.sweep.plan import AIRFLOW_API_CONN_ID, REDRIVEN_ACTION, SWEEPER_USER, SweepError

if TYPE_CHECKING:
    from hms_management.client import AirflowClient, Run


class HttpSession(Protocol):
    def request(self, method: str, url: str, **kwargs: Any) -> Any: ...


class HmsService:
    """An HMS service over a requests session that carries the connection's token."""

    name = "HMS service"

    def __init__(self, session: HttpSession, base_url: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.session, self.base_url, self.timeout = session, base_url.rstrip("/"), timeout

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        import requests

        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise SweepError(f"the {self.name} did not answer {method} {path}: {type(err).__name__}: {err}") from err
        if response.status_code not in ok:
            kind = "is unavailable" if is_transient(response.status_code) else "refused the call"
            raise SweepError(
                f"the {self.name} {kind}: {method} {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response


class HttpBacklog(HmsService):
    name = "HMS backlog service"

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """Pending proposals, oldest first."""
        return self.call("GET", BACKLOG.endpoint, params={"status": "pending", "limit": limit}).json()["items"]

    def mark_taken(self, proposal_id: str, run_id: str) -> str:
        return self._settle(proposal_id, "taken", {"run_id": run_id})

    def mark_rejected(self, proposal_id: str, reason: str) -> str:
        return self._settle(proposal_id, "rejected", {"reason": reason[:2000]})

    def _settle(self, proposal_id: str, status: str, body: dict[str, Any]) -> str:
        """The entry's status afterwards. Marking is idempotent in the service itself (a repeat
        answers the entry as it is), so it needs no Idempotency-Key; 409 means it was settled the
        other way meanwhile, 404 that it is gone."""
        path = f"{BACKLOG.endpoint}/{path_segment(proposal_id)}/{status}"
        response = self.call("POST", path, ok=(200, 404, 409), json=body)
        if response.status_code == 404:
            return "gone"
        return response.json()["status"]


def path_segment(value: str) -> str:
    """`value` as one URL path segment: slashes encoded, and dots too, since clients drop `.` and
    `..` segments from a URL before sending it."""
    return quote(value, safe="").replace(".", "%2E")


class HttpAuditLog(HmsService):
    name = "HMS audit service"

    def redrives(self, proposal_id: str) -> list[dict[str, Any]]:
        items = self.call("GET", AUDIT.endpoint, params={"proposalId": proposal_id}).json()["items"]
        return [item for item in items if item.get("action") == REDRIVEN_ACTION]

    def record(self, entry: dict[str, Any], *, key: str) -> None:
        self.call("POST", AUDIT.endpoint, json=entry, headers={"Idempotency-Key": key})


StartAnswer = Literal["started", "exists", "refused"]


class ProposalRuns:
    """Proposal runs through Airflow's REST API, as the sweep's own user.

    Triggers go through the admission check like any other, so a run the sweep starts is exactly a
    run an agent would have started.
    """

    def __init__(self, client: AirflowClient) -> None:
        self.client = client

    def start(self, proposal: Proposal) -> tuple[StartAnswer, str | None]:
        with _airflow_errors(f"trigger {proposal.run_id}"):
            response = self.client.trigger(proposal.as_conf(), run_id=proposal.run_id)
        if response.status_code == 200:
            return "started", None
        if response.status_code == 409:
            return "exists", None
        if response.status_code == 400:
            return "refused", _detail(response)
        raise SweepError(_api_failure(f"trigger {proposal.run_id}", response.status_code, _detail(response)))

    def failed_runs(self, *, ended_after: str) -> list[Run]:
        with _airflow_errors("list failed proposal runs"):
            return self.client.failed_runs(ended_after=ended_after)

    def outcome(self, proposal_id: str) -> dict[str, Any] | None:
        """The outcome the run's audit step returned (None if it returned none)."""
        with _airflow_errors(f"read the outcome of {proposal_id}"):
            return self.client.step_result(proposal_id, RECORD_AUDIT)

    def audit_step_error(self, proposal_id: str) -> dict[str, Any] | None:
        """Why the run's audit step itself failed, when it did."""
        with _airflow_errors(f"read the audit step's error of {proposal_id}"):
            return self.client.step_result(proposal_id, RECORD_AUDIT, ERROR_KEY)

    def rerun_from(self, proposal_id: str, step: str) -> list[str]:
        with _airflow_errors(f"clear {proposal_id} from {step}"):
            return self.client.rerun_from_step(proposal_id, step)


@contextmanager
def _airflow_errors(what: str) -> Generator[None, None, None]:
    """Airflow's API errors as SweepErrors that say what the sweep was doing."""
    import httpx

    from hms_management.client import ApiError

    try:
        yield
    except ApiError as err:
        raise SweepError(_api_failure(what, err.status, err.body)) from err
    except httpx.HTTPError as err:
        raise SweepError(f"Airflow's REST API did not answer ({what}): {type(err).__name__}: {err}") from err


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body) if isinstance(body, dict) else body)[:1000]


def _api_failure(what: str, status: int, detail: Any) -> str:
    if status in (401, 403):
        return (f"Airflow's REST API refused to {what} with {status}: check the {AIRFLOW_API_CONN_ID} connection "
                f"(user {SWEEPER_USER}, role user) — {detail}")
    return f"Airflow's REST API answered {status} when asked to {what}: {detail}"
