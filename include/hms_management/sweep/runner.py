"""A sweep's two parts over the adapters: queued proposals become runs; transient failures are re-driven."""

from __future__ import annotations

import logging

from hms_management.sweep.adapters import HttpAuditLog, HttpBacklog, ProposalRuns
from hms_management.sweep.plan import (
    LEFT_WHEN_STOPPED,
    Intake,
    Redrives,
    SweepError,
    failure_of,
    proposal_id_of,
    redrive_entry,
    redrive_key,
    redrive_step,
    redrives_before,
    split_batch,
)

log = logging.getLogger(__name__)


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
