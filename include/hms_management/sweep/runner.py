"""A sweep's two parts over the adapters: queued proposals become runs; transient failures are re-driven."""

from __future__ import annotations

import logging
from datetime import datetime

from hms_management.sweep.adapters import HttpAuditLog, HttpBacklog, SweepRuns
from hms_management.sweep.plan import (
    LEFT_WHEN_STOPPED,
    FailedRun,
    Intake,
    Redrives,
    SweepError,
    failure_of,
    redrive_entry,
    redrive_key,
    redrive_step,
    redrives_before,
    split_batch,
)

log = logging.getLogger(__name__)


def take_backlog(backlog: HttpBacklog, runs: SweepRuns, *, batch_size: int) -> Intake:
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
            _reject(backlog, intake, proposal_id, reason, redact=batch.redact.get(proposal_id))
        for proposal in batch.valid:
            answer, detail = runs.start(proposal)
            if answer in ("refused", "conflict"):  # the admission check knows a rule this sweep does not
                _reject(backlog, intake, proposal.id, detail or "refused by Airflow")
                if answer == "conflict" and proposal.id in intake.rejected:
                    intake.conflicts.append(proposal.id)
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


def _reject(backlog: HttpBacklog, intake: Intake, proposal_id: str, reason: str,
            redact: list[str] | None = None) -> None:
    status = backlog.mark_rejected(proposal_id, reason, redact=redact)
    if status == "rejected":
        intake.rejected[proposal_id] = reason
        log.warning("rejected %s: %s", proposal_id, reason)
    else:  # taken by someone else meanwhile, or an id the backlog's own routes cannot address
        intake.left[proposal_id] = f"invalid ({reason}), but the backlog could not mark it rejected: entry {status}"
        log.error("%s is invalid but could not be marked rejected (entry %s): %s", proposal_id, status, reason)


def redrive_failed_runs(
    runs: SweepRuns, audit: HttpAuditLog, *, limit: int, per_sweep: int, ended_after: datetime, sweep_run_id: str
) -> Redrives:
    """Re-run the failed steps of runs that failed on a transient error since `ended_after`, oldest
    first, at most `limit` times per proposal and `per_sweep` re-drives in this sweep. The failures
    it examined end at `examined_until`: the next sweep starts there, so old failures (refusals,
    proposals at their limit) are read once, not by every sweep."""
    result = Redrives(examined_until=ended_after.isoformat())
    page_size = max(per_sweep, 1)
    while len(result.redriven) < per_sweep:
        try:
            failed = runs.failed_runs(ended_after=datetime.fromisoformat(result.examined_until), limit=page_size)
        except SweepError as err:
            result.error = f"{err}. Failed runs after {result.examined_until} wait for the next sweep"
            return result
        for run in failed:
            if len(result.redriven) >= per_sweep:
                result.more_failures = True
                return result
            try:
                _examine(run, runs, audit, result, limit=limit, sweep_run_id=sweep_run_id)
            except SweepError as err:
                result.left = {r.proposal_id: LEFT_WHEN_STOPPED for r in failed[failed.index(run):]}
                result.error = f"{err}. {len(result.left)} failed run(s) left for the next sweep"
                return result
            result.examined_until = run.end_date
        if len(failed) < page_size:
            return result
    result.more_failures = True
    return result


def _examine(run: FailedRun, runs: SweepRuns, audit: HttpAuditLog, result: Redrives, *, limit: int,
             sweep_run_id: str) -> None:
    proposal_id = run.proposal_id
    outcome = runs.outcome(proposal_id)
    failure = failure_of(run, outcome, runs.audit_step_error(proposal_id) if outcome is None else None)
    step = redrive_step(failure)
    if step is None:
        result.not_transient += 1
        return
    used = redrives_before(audit.redrives(proposal_id), failure)
    if used >= limit:
        result.limit_reached.append(proposal_id)
        log.warning("%s failed at %s again after %d re-drive(s): left to a human (%s)",
                    run.run_id, step, used, failure.reason)
        return
    # Recorded first: a crash before the clear leaves a record the next sweep recognises (same
    # failure, same Idempotency-Key) and completes, instead of an unrecorded re-drive.
    audit.record(redrive_entry(failure, step, attempt=used + 1, limit=limit, sweep_run_id=sweep_run_id),
                 key=redrive_key(failure))
    cleared = runs.rerun_from(proposal_id, step)
    result.redriven[proposal_id] = step
    log.info("re-driving %s from %s (re-drive %d of %d; cleared %s): %s",
             run.run_id, step, used + 1, limit, ", ".join(cleared), failure.reason)
