"""The backlog sweep: queued proposals become runs, transient failures are re-driven, nothing is lost.

A sweep
1. reads the oldest pending proposals from the HMS backlog, at most `batch_size`;
2. marks each invalid one rejected, with the proposal model's reason, and never starts it;
3. starts run `proposal__<id>` for each valid one through Airflow's REST API (409: the run exists,
   which counts as started) and only then marks it taken. A crash between the two leaves the
   proposal pending; the next sweep meets the existing run (409) and marks it taken then;
4. re-runs the failed steps of proposal runs that failed on a transient error, at most `limit`
   times per proposal. Each re-drive is written to the audit log before the run is cleared, under
   an Idempotency-Key naming the failure it re-drives, so a crash between the two neither loses
   the record nor writes it twice, and the records are what the limit counts.

Plain functions and small adapters over HTTP clients, so that the unit tests drive them with fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from hms_management.proposal import RUN_ID_PREFIX, InvalidProposal, Proposal, parse_proposal
from hms_management.services import AUDIT, BACKLOG, REQUEST_TIMEOUT_SECONDS, idempotency_key, is_transient
from hms_management.workflow import (
    APPLY_POLICY,
    ERROR_KEY,
    FAILED,
    GOVERNANCE_GATE,
    NOTIFY_OFFICERS,
    RECORD_AUDIT,
)

if TYPE_CHECKING:
    from hms_management.client import AirflowClient, Run

log = logging.getLogger(__name__)

SWEEP_DAG_ID = "backlog_sweep"
# Task ids of the sweep, in the order an analyst reads them.
START_QUEUED = "start_queued_proposals"
REDRIVE = "redrive_transient_failures"
SUMMARIZE = "summarize_sweep"

# The sweep calls Airflow's REST API as a user of its own, through this connection.
AIRFLOW_API_CONN_ID = "airflow_api"
SWEEPER_USER = "backlog_sweeper"

# Settings in airflow.cfg [hms_management], with the defaults used when a key is absent.
SCHEDULE_KEY = "backlog_sweep_schedule"
DEFAULT_SCHEDULE = "*/15 * * * *"
BATCH_SIZE_KEY = "backlog_sweep_batch_size"
REDRIVE_LIMIT_KEY = "backlog_redrive_limit"
REDRIVE_WINDOW_KEY = "backlog_redrive_window_hours"

REDRIVEN_ACTION = "proposal.redriven"  # the audit action of a re-drive; the limit counts these records
# Steps a re-drive may run again (only after a transient failure: the gate's refusal of invalid
# input is not one, since invalid input stays invalid).
REDRIVABLE_STEPS = (GOVERNANCE_GATE, APPLY_POLICY, NOTIFY_OFFICERS, RECORD_AUDIT)
LEFT_WHEN_STOPPED = "the sweep stopped before it (see the error)"


@dataclass(frozen=True)
class SweepSettings:
    batch_size: int = 100
    redrive_limit: int = 3
    redrive_window: timedelta = timedelta(hours=24)


def sweep_schedule(value: str | None) -> str | None:
    """The DAG's schedule from the configured value: a cron expression, or `none` for manual sweeps."""
    value = (value or "").strip()
    return None if value.lower() in ("", "none") else value


class SweepError(Exception):
    """The sweep cannot go on; the message says which service and what it answered."""


# -- what a sweep decides: pure functions over plain data -----------------------------------------


@dataclass(frozen=True)
class Batch:
    """This sweep's share of the backlog, split by the proposal model."""

    valid: list[Proposal]
    invalid: dict[str, str]  # backlog id → why it is rejected
    more_pending: bool  # the backlog holds more than one batch: the rest waits for the next sweep

    @property
    def ids(self) -> list[str]:
        return [*self.invalid, *(p.id for p in self.valid)]


def split_batch(entries: list[dict[str, Any]], batch_size: int) -> Batch:
    """Validate the oldest `batch_size` backlog entries (the caller asks for one more, to know if
    more are waiting). An id seen twice is one proposal."""
    valid: list[Proposal] = []
    invalid: dict[str, str] = {}
    seen: set[str] = set()
    for entry in entries[:batch_size]:
        if entry["id"] in seen:
            continue
        seen.add(entry["id"])
        try:
            valid.append(parse_proposal(entry["proposal"]))
        except InvalidProposal as err:
            invalid[entry["id"]] = str(err)
    return Batch(valid, invalid, more_pending=len(entries) > batch_size)


@dataclass(frozen=True)
class Failure:
    """A failed proposal run as the re-drive sees it."""

    proposal_id: str
    run_id: str
    ended_at: str  # identifies this failure: a re-driven run that fails again ends anew
    step: str | None  # the step it failed at
    reason: str
    transient: bool


def proposal_id_of(run: Run) -> str:
    return (run.conf or {}).get("id") or run.run_id.removeprefix(RUN_ID_PREFIX)


def failure_of(run: Run, outcome: dict[str, Any] | None, audit_error: dict[str, Any] | None) -> Failure:
    """Why a run failed, from the outcome its audit step returned, or, when the audit step itself
    failed and returned nothing, from the error it left."""
    base = {"proposal_id": proposal_id_of(run), "run_id": run.run_id, "ended_at": run.end_date or ""}
    if outcome is not None:
        if outcome.get("outcome") != FAILED:  # settled fine, then something else failed the run
            return Failure(**base, step=None, reason=f"outcome {outcome.get('outcome')}", transient=False)
        return Failure(**base, step=outcome.get("failed_step"), reason=outcome.get("reason") or "",
                       transient=bool(outcome.get("transient")))
    if audit_error is not None:
        return Failure(**base, step=RECORD_AUDIT, reason=audit_error.get("error") or "",
                       transient=bool(audit_error.get("transient")))
    return Failure(**base, step=None, reason="no outcome recorded (see record_audit's log)", transient=False)


def redrive_step(failure: Failure) -> str | None:
    """The step to run again, or None: only transient failures of HMS steps are re-driven, never a
    denial (a denied run succeeds) and never invalid input."""
    return failure.step if failure.transient and failure.step in REDRIVABLE_STEPS else None


def redrives_before(records: Iterable[dict[str, Any]], failure: Failure) -> int:
    """Re-drives this proposal had for earlier failures. A record for this very failure means a
    sweep wrote it and stopped before clearing the run: that re-drive is still to be done."""
    return sum(
        1 for r in records if r.get("action") == REDRIVEN_ACTION and r.get("failureEndedAt") != failure.ended_at
    )


def redrive_entry(failure: Failure, step: str, *, attempt: int, limit: int, sweep_run_id: str) -> dict[str, Any]:
    """The audit record of one re-drive (POST /audit/log)."""
    return {
        "proposalId": failure.proposal_id,
        "action": REDRIVEN_ACTION,
        "outcome": "redriven",
        "reason": f"re-running {step} after a transient failure: {failure.reason}"[:1000],
        "runId": failure.run_id,
        "failedStep": step,
        "failureEndedAt": failure.ended_at,
        "attempt": attempt,
        "limit": limit,
        "sweepRunId": sweep_run_id,
    }


def redrive_key(failure: Failure) -> str:
    return idempotency_key(failure.proposal_id, f"{REDRIVEN_ACTION}@{failure.ended_at}")


# -- what a sweep did ---------------------------------------------------------------------------


@dataclass
class Intake:
    """What start_queued_proposals did with its batch."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    left: dict[str, str] = field(default_factory=dict)  # still pending in the backlog, and why
    more_pending: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Redrives:
    """What redrive_transient_failures did with the failed runs."""

    redriven: dict[str, str] = field(default_factory=dict)  # proposal id → step run again
    limit_reached: list[str] = field(default_factory=list)  # failed for good: for a human
    not_transient: int = 0  # failed runs no re-drive would help
    left: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepSummary:
    """The sweep as an analyst reads it: one headline, then the proposals behind each number."""

    started: list[str]
    already_running: list[str]
    rejected: dict[str, str]
    redriven: dict[str, str]
    left: dict[str, str]
    more_pending: bool
    redrive_limit_reached: list[str]
    failures: dict[str, str]  # task id → why that part of the sweep failed

    @property
    def counts(self) -> dict[str, int]:
        return {
            "started": len(self.started),
            "already_running": len(self.already_running),
            "rejected": len(self.rejected),
            "redriven": len(self.redriven),
            "left_for_next_sweep": len(self.left),
        }

    @property
    def complete(self) -> bool:
        return not self.failures

    @property
    def headline(self) -> str:
        c = self.counts
        line = (
            f"started {c['started']}, already running {c['already_running']}, rejected {c['rejected']}, "
            f"re-driven {c['redriven']}, left for the next sweep {c['left_for_next_sweep']}"
        )
        if self.more_pending:
            line += "; more proposals are queued beyond this sweep's batch"
        if self.redrive_limit_reached:
            line += f"; {len(self.redrive_limit_reached)} failed run(s) reached the re-drive limit and need a human"
        for part, error in self.failures.items():
            line += f"; FAILED {part}: {error}"
        return ("Sweep: " if self.complete else "Sweep INCOMPLETE: ") + line

    def as_dict(self) -> dict[str, Any]:
        return {"headline": self.headline, "counts": self.counts, **asdict(self)}


def summarize(intake: dict[str, Any] | None, redrives: dict[str, Any] | None) -> SweepSummary:
    """One summary from what both parts returned; a part that returned nothing failed outright."""
    failures: dict[str, str] = {}
    for part, result in ((START_QUEUED, intake), (REDRIVE, redrives)):
        if result is None:
            failures[part] = "did not finish (see its log)"
        elif result.get("error"):
            failures[part] = result["error"]
    intake, redrives = intake or {}, redrives or {}
    return SweepSummary(
        started=intake.get("started", []),
        already_running=intake.get("already_running", []),
        rejected=intake.get("rejected", {}),
        redriven=redrives.get("redriven", {}),
        left={**intake.get("left", {}), **redrives.get("left", {})},
        more_pending=bool(intake.get("more_pending")),
        redrive_limit_reached=redrives.get("limit_reached", []),
        failures=failures,
    )


# -- the services a sweep talks to ---------------------------------------------------------------


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


# -- a sweep ----------------------------------------------------------------------------------


def take_backlog(backlog: HttpBacklog, runs: ProposalRuns, *, batch_size: int) -> Intake:
    """Turn the oldest pending proposals into runs (see the module's docstring for the order)."""
    try:
        entries = backlog.pending(limit=batch_size + 1)
    except SweepError as err:
        return Intake(error=f"{err}. Nothing was started or marked: every queued proposal stays pending "
                            f"for the next sweep")
    batch = split_batch(entries, batch_size)
    intake = Intake(more_pending=batch.more_pending)
    log.info("%d pending proposal(s) to take (%d invalid)%s", len(batch.ids), len(batch.invalid),
             "; more wait beyond this batch" if batch.more_pending else "")
    try:
        for proposal_id, reason in batch.invalid.items():
            _reject(backlog, intake, proposal_id, reason)
        for proposal in batch.valid:
            answer, detail = runs.start(proposal)
            if answer == "refused":  # the admission check knows a rule this sweep does not
                _reject(backlog, intake, proposal.id, detail or "refused by Airflow")
                continue
            # The run exists now; only now may the backlog let go of the proposal.
            status = backlog.mark_taken(proposal.id, proposal.run_id)
            if status != "taken":
                log.warning("%s has run %s, but its backlog entry is %s", proposal.id, proposal.run_id, status)
            (intake.started if answer == "started" else intake.already_running).append(proposal.id)
            log.info("%s %s", "started" if answer == "started" else "already running:", proposal.run_id)
    except SweepError as err:
        settled = {*intake.started, *intake.already_running, *intake.rejected, *intake.left}
        intake.left.update({pid: LEFT_WHEN_STOPPED for pid in batch.ids if pid not in settled})
        intake.error = f"{err}. {len(intake.left)} proposal(s) stay pending for the next sweep"
    return intake


def _reject(backlog: HttpBacklog, intake: Intake, proposal_id: str, reason: str) -> None:
    status = backlog.mark_rejected(proposal_id, reason)
    if status == "rejected":
        intake.rejected[proposal_id] = reason
        log.warning("rejected %s: %s", proposal_id, reason)
    else:  # taken by someone else meanwhile, or an id the backlog's own routes cannot address
        intake.left[proposal_id] = f"invalid ({reason}), but the backlog could not mark it rejected: entry {status}"
        log.error("%s is invalid but could not be marked rejected (entry %s): %s", proposal_id, status, reason)


def redrive_failed_runs(
    runs: ProposalRuns, audit: HttpAuditLog, *, limit: int, ended_after: str, sweep_run_id: str
) -> Redrives:
    """Re-run the failed steps of runs that failed on a transient error, at most `limit` times each."""
    result = Redrives()
    try:
        failed = runs.failed_runs(ended_after=ended_after)
    except SweepError as err:
        result.error = f"{err}. No failed run was re-driven"
        return result
    log.info("%d failed proposal run(s) ended since %s", len(failed), ended_after)
    for position, run in enumerate(failed):
        try:
            proposal_id = proposal_id_of(run)
            outcome = runs.outcome(proposal_id)
            failure = failure_of(run, outcome, runs.audit_step_error(proposal_id) if outcome is None else None)
            step = redrive_step(failure)
            if step is None:
                result.not_transient += 1
                continue
            used = redrives_before(audit.redrives(proposal_id), failure)
            if used >= limit:
                result.limit_reached.append(proposal_id)
                log.warning("%s failed at %s again after %d re-drive(s): left to a human (%s)",
                            run.run_id, step, used, failure.reason)
                continue
            # Recorded first: a crash before the clear leaves a record the next sweep recognises
            # (same failure, same Idempotency-Key) and completes, instead of an unrecorded re-drive.
            audit.record(redrive_entry(failure, step, attempt=used + 1, limit=limit, sweep_run_id=sweep_run_id),
                         key=redrive_key(failure))
            cleared = runs.rerun_from(proposal_id, step)
            result.redriven[proposal_id] = step
            log.info("re-driving %s from %s (re-drive %d of %d; cleared %s): %s",
                     run.run_id, step, used + 1, limit, ", ".join(cleared), failure.reason)
        except SweepError as err:
            result.left = {proposal_id_of(r): LEFT_WHEN_STOPPED for r in failed[position:]}
            result.error = f"{err}. {len(result.left)} failed run(s) left for the next sweep"
            break
    return result
