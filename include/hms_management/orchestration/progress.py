"""A proposal run's progress as its tasks read and write it: the proposal from the run's conf, and
the proposal's record (`records`), where each step leaves its state, its tries, its result or its
error, and the audit step finds what to settle the outcome from. Runs in task processes (workers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from hms_management.domain.outcome import FAILED, Outcome, settle
from hms_management.domain.proposal import InvalidProposal, Proposal, parse_proposal, proposal_id_of
from hms_management.domain.services import ServiceError, TransientServiceError
from hms_management.domain.steps import STEPS
from hms_management.orchestration.config import deployment
from hms_management.orchestration.records import records
from hms_management.records.store import Admission, ProposalRecord

if TYPE_CHECKING:
    from airflow.sdk import Context

SUCCESS, SKIPPED, UP_FOR_RETRY = "success", "skipped", "up_for_retry"
WAITING = "waiting"  # held back by governance (a suspended service), in the triggerer


def validate_run_conf(dag_run: Any) -> dict[str, Any]:
    """The run's proposal with defaults filled in, or a failure that names each bad field (the
    deployment's own rules included: its most targets, its officer groups)."""
    try:
        proposal = parse_proposal(dag_run.conf, deployment())
    except InvalidProposal as err:
        raise AirflowFailException(str(err)) from None
    if dag_run.run_id != proposal.run_id:
        raise AirflowFailException(f"run id {dag_run.run_id!r} must be {proposal.run_id!r}: one run per proposal")
    return proposal.as_conf()


def proposal_of(context: Context) -> Proposal | None:
    """The run's proposal, read from the run's conf (no round trip); None when the conf is not a
    valid proposal, which the governance gate has then failed on."""
    try:
        return parse_proposal(context["dag_run"].conf)
    except InvalidProposal:
        return None


def step_error(err: BaseException | str, *, transient: bool) -> dict[str, Any]:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return {"error": text[:1000], "transient": transient}


class Progress:
    """The proposal's record, as one task of its run reads and writes it."""

    def __init__(self, context: Context) -> None:
        self.run = context["dag_run"]
        self.ti = context["ti"]
        self.proposal_id = proposal_id_of(self.run.run_id)
        self._record: ProposalRecord | None = None
        self._checks: list[dict[str, Any]] = []

    def record(self) -> ProposalRecord:
        """The record as this task last read or wrote it (made from the run's conf if it has none)."""
        if self._record is None:
            self._record = records().get(self.proposal_id) or self.write()
        return self._record

    def note_check(self, entry: dict[str, Any]) -> None:
        """A governance check to write into the decision log with this task's next write."""
        self._checks.append(entry)

    def write(self, **facts: Any) -> ProposalRecord:
        """Merge facts into the record; a task at work means its run is running."""
        checks, self._checks = [*self._checks, *facts.pop("checks", [])], []
        if checks:
            facts["checks"] = checks
        self._record = records().change(self.proposal_id, admission=self._admission(), running=True, **facts)
        return self._record

    def step(self, task_id: str, state: str, **details: Any) -> dict[str, Any]:
        """One step's entry: its state, this try, when it ended, and what else the step says."""
        started = getattr(self.ti, "start_date", None)
        return {task_id: {"state": state, "tries": self.ti.try_number, "ended_at": _now().isoformat(),
                          "started_at": started.isoformat() if started else None, **details}}

    def succeeded(self, result: Any = None, *, targets: dict[str, Any] | None = None,
                  **facts: Any) -> ProposalRecord:
        """This step succeeded: its result (and each target's), written with any other facts."""
        details = {"result": result} if result is not None else {}
        steps = self.step(self.ti.task_id, SUCCESS, **details, **({"targets": targets} if targets else {}))
        return self.write(steps={**steps, **facts.pop("steps", {})}, **facts)

    def failed(self, err: ServiceError | AirflowFailException | str, *, check: dict[str, Any] | None = None,
               targets: dict[str, Any] | None = None) -> ProposalRecord:
        """This try failed: retried when the error may pass and tries are left, else for good."""
        transient = isinstance(err, TransientServiceError)
        retried = transient and self.ti.try_number <= (getattr(self.ti, "max_tries", 0) or 0)
        details = {**step_error(err, transient=transient), **({"targets": targets} if targets else {})}
        return self.write(steps=self.step(self.ti.task_id, UP_FOR_RETRY if retried else FAILED, **details),
                          checks=[check] if check else [])

    def _admission(self) -> Admission:
        return Admission.of(self.run.conf, run_id=self.run.run_id, triggered_by=self.run.triggering_user_name,
                            submitted_at=self.run.start_date or _now())


def outcome_of(record: ProposalRecord) -> Outcome:
    """Settle the outcome from what the steps left in the record: results, the decision, errors."""
    completed = {step for step in STEPS if (record.steps.get(step) or {}).get("state") == SUCCESS}
    errors = {step: entry for step, entry in record.steps.items() if entry.get("error")}
    return settle(completed_steps=completed, decision=record.decision, errors=errors)


def raise_failure(context: Context) -> None:
    """The failure flag: fails the run naming the step that failed, read from the record."""
    outcome = outcome_of(Progress(context).record())
    if outcome.outcome == FAILED:
        raise AirflowFailException(f"Proposal failed at {outcome.failed_step}: {outcome.reason}")
    raise AirflowFailException(f"Proposal {outcome.outcome}, but its audit record could not be written")


def _now() -> datetime:
    return datetime.now(UTC)
