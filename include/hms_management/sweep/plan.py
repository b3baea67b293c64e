"""The backlog sweep's decisions: queued proposals become runs, transient failures are re-driven, nothing is lost.

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

What a sweep decides and what it did, as plain functions over plain data; `adapters` talks to the
services and `runner` runs the two parts over them, so that the unit tests drive them with fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from hms_management.domain.outcome import FAILED
from hms_management.domain.proposal import (
    InvalidProposal,
    Proposal,
    credential_paths,
    parse_proposal,
    proposal_id_of,
)
from hms_management.domain.services import idempotency_key
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT

log = logging.getLogger(__name__)

SWEEP_DAG_ID = "backlog_sweep"
# Task ids of the sweep, in the order an analyst reads them.
START_QUEUED = "start_queued_proposals"
REDRIVE = "redrive_transient_failures"
SUMMARIZE = "summarize_sweep"

REDRIVEN_ACTION = "proposal.redriven"  # the audit action of a re-drive; the limit counts these records
# Steps a re-drive may run again (only after a transient failure: the gate's refusal of invalid
# input is not one, since invalid input stays invalid).
REDRIVABLE_STEPS = (GOVERNANCE_GATE, APPLY_POLICY, NOTIFY_OFFICERS, RECORD_AUDIT)
LEFT_WHEN_STOPPED = "the sweep stopped before it (see the error)"


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
    # backlog id → where its entry holds credential-like keys: their values are not kept when rejected
    redact: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [*self.invalid, *(p.id for p in self.valid)]


def split_batch(entries: list[dict[str, Any]], batch_size: int) -> Batch:
    """Validate the oldest `batch_size` backlog entries (the caller asks for one more, to know if
    more are waiting). An id seen twice is one proposal."""
    valid: list[Proposal] = []
    invalid: dict[str, str] = {}
    redact: dict[str, list[str]] = {}
    seen: set[str] = set()
    for entry in entries[:batch_size]:
        if entry["id"] in seen:
            continue
        seen.add(entry["id"])
        try:
            valid.append(parse_proposal(entry["proposal"]))
        except InvalidProposal as err:
            invalid[entry["id"]] = str(err)
            if leaked := credential_paths(entry["proposal"]):
                redact[entry["id"]] = leaked
    return Batch(valid, invalid, more_pending=len(entries) > batch_size, redact=redact)


@dataclass(frozen=True)
class Failure:
    """A failed proposal run as the re-drive sees it."""

    proposal_id: str
    run_id: str
    ended_at: str  # identifies this failure: a re-driven run that fails again ends anew
    step: str | None  # the step it failed at
    reason: str
    transient: bool


@dataclass(frozen=True)
class FailedRun:
    """A failed proposal run as Airflow lists it."""

    run_id: str
    conf: dict[str, Any]
    end_date: str  # ISO 8601

    @property
    def proposal_id(self) -> str:
        return proposal_id_of(self.run_id)


def failure_of(run: FailedRun, outcome: dict[str, Any] | None, audit_error: dict[str, Any] | None) -> Failure:
    """Why a run failed, from the outcome its audit step returned, or, when the audit step itself
    failed and returned nothing, from the error it left."""
    base = {"proposal_id": run.proposal_id, "run_id": run.run_id, "ended_at": run.end_date}
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
    # rejected because the id already has a run with other content (also in `rejected`)
    conflicts: list[str] = field(default_factory=list)
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
    # Failures up to here are examined: the next sweep starts after it (ISO 8601 end date).
    examined_until: str | None = None
    more_failures: bool = False  # this sweep's re-drive cap was reached; the rest waits
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
    conflicts: list[str]
    redriven: dict[str, str]
    left: dict[str, str]
    more_pending: bool
    redrive_limit_reached: list[str]
    more_failures: bool
    failures: dict[str, str]  # task id → why that part of the sweep failed
    overdue: list[str] = field(default_factory=list)  # proposals past their deadline now
    reviews_due_soon: list[str] = field(default_factory=list)  # reviews within the reminder time of timing out

    @property
    def counts(self) -> dict[str, int]:
        return {
            "started": len(self.started),
            "already_running": len(self.already_running),
            "rejected": len(self.rejected),
            "conflicts": len(self.conflicts),
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
            f"started {c['started']}, already running {c['already_running']}, rejected {c['rejected']} "
            f"({c['conflicts']} id conflict{'' if c['conflicts'] == 1 else 's'}), "
            f"re-driven {c['redriven']}, left for the next sweep {c['left_for_next_sweep']}"
        )
        if self.more_pending:
            line += "; more proposals are queued beyond this sweep's batch"
        if self.more_failures:
            line += "; more failed runs wait for the next sweep's re-drives"
        if self.overdue:
            line += f"; {len(self.overdue)} proposal(s) past their deadline"
        if self.reviews_due_soon:
            line += f"; {len(self.reviews_due_soon)} review(s) about to time out"
        if self.redrive_limit_reached:
            line += f"; {len(self.redrive_limit_reached)} failed run(s) reached the re-drive limit and need a human"
        for part, error in self.failures.items():
            line += f"; FAILED {part}: {error}"
        return ("Sweep: " if self.complete else "Sweep INCOMPLETE: ") + line

    def as_dict(self) -> dict[str, Any]:
        return {"headline": self.headline, "counts": self.counts, **asdict(self)}


def summarize(intake: dict[str, Any] | None, redrives: dict[str, Any] | None, *,
              overdue: list[str] | None = None, reviews_due_soon: list[str] | None = None) -> SweepSummary:
    """One summary from what both parts returned (a part that returned nothing failed outright), and
    the deadlines the officers are told about."""
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
        conflicts=intake.get("conflicts", []),
        redriven=redrives.get("redriven", {}),
        left={**intake.get("left", {}), **redrives.get("left", {})},
        more_pending=bool(intake.get("more_pending")),
        redrive_limit_reached=redrives.get("limit_reached", []),
        more_failures=bool(redrives.get("more_failures")),
        failures=failures,
        overdue=overdue or [],
        reviews_due_soon=reviews_due_soon or [],
    )
