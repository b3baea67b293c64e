"""The services a sweep talks to, over the one HMS transport and Airflow's official client: the HMS
backlog and audit log (`HmsHook`), and proposal runs (`AirflowRuns`, with what their records say).
Every failure becomes a SweepError that says which service and what it answered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from hms_management.domain.outcome import QUEUED
from hms_management.domain.proposal import Proposal, same_proposal
from hms_management.domain.services import AUDIT, BACKLOG, ServiceError, TransientServiceError
from hms_management.domain.steps import RECORD_AUDIT
from hms_management.orchestration.airflow_api import AirflowApiError, AirflowRuns
from hms_management.orchestration.hook import HmsHook
from hms_management.orchestration.records import records
from hms_management.sweep.plan import REDRIVEN_ACTION, FailedRun, SweepError

T = TypeVar("T")
StartAnswer = Literal["started", "exists", "conflict", "refused"]


def _hms(name: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ServiceError as err:
        kind = "is unavailable" if isinstance(err, TransientServiceError) else "refused the call"
        raise SweepError(f"the {name} {kind}: {err}") from err


class HttpBacklog:
    name = "HMS backlog service"

    def __init__(self, hook: HmsHook) -> None:
        self.hook = hook

    def pending(self, limit: int) -> list[dict[str, Any]]:
        """Pending proposals, oldest first."""
        return _hms(self.name, lambda: self.hook.get(BACKLOG.endpoint, status="pending", limit=limit))["items"]

    def mark_taken(self, proposal_id: str, run_id: str) -> str:
        return self._settle(proposal_id, "taken", {"run_id": run_id})

    def mark_rejected(self, proposal_id: str, reason: str, *, redact: list[str] | None = None) -> str:
        """Rejected with the reason; the values at `redact` (credential-like keys) are not kept."""
        return self._settle(proposal_id, "rejected", {"reason": reason[:2000], "redact": redact or []})

    def _settle(self, proposal_id: str, status: str, body: dict[str, Any]) -> str:
        """The entry's status afterwards. Marking is idempotent in the service itself (a repeat
        answers the entry as it is), so it needs no Idempotency-Key; 409 means it was settled the
        other way meanwhile, 404 that it is gone."""
        endpoint = f"{BACKLOG.endpoint}/{path_segment(proposal_id)}/{status}"
        answer = _hms(self.name, lambda: self.hook.call("POST", endpoint, body=body, ok=(200, 404, 409)))
        return "gone" if answer.status == 404 else answer.body["status"]


def path_segment(value: str) -> str:
    """`value` as one URL path segment: slashes encoded, and dots too, since clients drop `.` and
    `..` segments from a URL before sending it."""
    return quote(value, safe="").replace(".", "%2E")


class HttpAuditLog:
    name = "HMS audit service"

    def __init__(self, hook: HmsHook) -> None:
        self.hook = hook

    def redrives(self, proposal_id: str) -> list[dict[str, Any]]:
        items = _hms(self.name, lambda: self.hook.get(AUDIT.endpoint, proposalId=proposal_id))["items"]
        return [item for item in items if item.get("action") == REDRIVEN_ACTION]

    def record(self, entry: dict[str, Any], *, key: str) -> None:
        _hms(self.name, lambda: self.hook.post(entry, idempotency_key=key))


class SweepRuns:
    """Proposal runs as a sweep sees them, through Airflow's REST API."""

    def __init__(self, api: AirflowRuns) -> None:
        self.api = api

    def start(self, proposal: Proposal) -> tuple[StartAnswer, str | None]:
        """Start the proposal's run. An existing run is this proposal only with the same content:
        another proposal under the same id is a conflict, never silently "taken"."""
        answer, detail = self._airflow(lambda: self.api.start(proposal))
        if answer != "exists":
            return answer, detail
        run = self._airflow(lambda: self.api.run(proposal.id))
        if run is not None and same_proposal(run.conf, proposal):
            return "exists", None
        return "conflict", (f"conflict: run {proposal.run_id} already exists with other content; "
                            "queue the proposal again under a new id")

    def failed_runs(self, *, ended_after: datetime, limit: int) -> list[FailedRun]:
        runs = self._airflow(lambda: self.api.failed_runs(ended_after=ended_after, limit=limit))
        return [FailedRun(run.dag_run_id, run.conf or {}, run.end_date.isoformat()) for run in runs]

    def outcome(self, proposal_id: str) -> dict[str, Any] | None:
        """The outcome the run's audit step recorded (None if it recorded none), from its record."""
        record = records().get(proposal_id)
        return record.outcome if record is not None else None

    def audit_step_error(self, proposal_id: str) -> dict[str, Any] | None:
        """Why the run's audit step itself failed, when it did, from its record."""
        record = records().get(proposal_id)
        entry = (record.steps.get(RECORD_AUDIT) or {}) if record is not None else {}
        return entry if entry.get("error") else None

    def rerun_from(self, proposal_id: str, step: str) -> list[str]:
        cleared = self._airflow(lambda: self.api.rerun_from(proposal_id, step))
        # Queued again, as Airflow now says: the desk shows it at once, not at the run's next start.
        records().change(proposal_id, run_state=QUEUED, queued_at=datetime.now(UTC))
        return cleared

    @staticmethod
    def _airflow(call: Callable[[], T]) -> T:
        try:
            return call()
        except AirflowApiError as err:
            raise SweepError(str(err)) from err
