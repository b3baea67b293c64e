"""Bodies of the backlog sweep's tasks: settings, connections, XComs and the re-drive cursor around
the sweep's parts (`runner`).

Each part returns what it did as its XCom, also when it fails (a failed task's return value is not
stored, so it is pushed before failing): the summary reads both, whatever happened.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy.exc import SQLAlchemyError

from hms_management.domain.services import AUDIT, BACKLOG, GOVERNANCE, ServiceError
from hms_management.orchestration import deadlines
from hms_management.orchestration.airflow_api import AirflowRuns
from hms_management.orchestration.config import settings
from hms_management.orchestration.hook import HmsHook
from hms_management.sweep.adapters import HttpAuditLog, HttpBacklog, SweepRuns
from hms_management.sweep.plan import REDRIVE, START_QUEUED, summarize
from hms_management.sweep.runner import redrive_failed_runs, take_backlog

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)
RETURN_KEY = "return_value"
# Where the last sweep stopped examining failed runs (an ISO 8601 end date): the next starts there.
REDRIVE_CURSOR = "hms_redrive_examined_until"


def start_queued_proposals(context: Context) -> dict[str, Any]:
    with AirflowRuns.from_connection() as api:
        intake = take_backlog(HttpBacklog(HmsHook(BACKLOG)), SweepRuns(api),
                              batch_size=settings().backlog_sweep_batch_size)
    return _result(context, intake.as_dict(), intake.error)


def redrive_transient_failures(context: Context) -> dict[str, Any]:
    config = settings()
    window_start = datetime.now(UTC) - timedelta(hours=config.backlog_redrive_window_hours)
    cursor = Variable.get(REDRIVE_CURSOR, default=None)
    since = max(window_start, datetime.fromisoformat(cursor)) if cursor else window_start
    with AirflowRuns.from_connection() as api:
        result = redrive_failed_runs(SweepRuns(api), HttpAuditLog(HmsHook(AUDIT)), limit=config.backlog_redrive_limit,
                                     per_sweep=config.backlog_redrives_per_sweep, ended_after=since,
                                     sweep_run_id=context["dag_run"].run_id)
    if result.examined_until and result.examined_until != since.isoformat():
        Variable.set(REDRIVE_CURSOR, result.examined_until)
    return _result(context, result.as_dict(), result.error)


def summarize_sweep(context: Context) -> dict[str, Any]:
    ti = context["ti"]
    overdue, due_soon = deadlines_now()
    summary = summarize(ti.xcom_pull(task_ids=START_QUEUED), ti.xcom_pull(task_ids=REDRIVE), overdue=overdue,
                        reviews_due_soon=due_soon)
    log.info("%s", summary.headline)
    lists = {"started": summary.started, "already running": summary.already_running, "id conflicts": summary.conflicts,
             "past their deadline": summary.overdue, "reviews about to time out": summary.reviews_due_soon,
             "re-driven": list(summary.redriven), "re-drive limit reached": summary.redrive_limit_reached}
    for label, ids in lists.items():
        if ids:
            log.info("%s: %s", label, ", ".join(ids))
    for label, reasons in (("rejected", summary.rejected), ("left for the next sweep", summary.left)):
        for proposal_id, reason in reasons.items():
            log.info("%s %s: %s", label, proposal_id, reason)
    _write_run_note(context, summary.headline)
    if not summary.complete:
        ti.xcom_push(key=RETURN_KEY, value=summary.as_dict())
        raise AirflowFailException(summary.headline)
    return summary.as_dict()


def deadlines_now() -> tuple[list[str], list[str]]:
    """The proposals past their deadline and the reviews about to time out, for the summary; a
    summary without them is still a summary (logged, never a failed sweep)."""
    config, now = settings(), datetime.now(UTC)
    try:
        overdue = sorted(deadlines.overdue(config, now=now))
        due_soon = deadlines.open_reviews(HmsHook(GOVERNANCE), created_after=(now - config.review_timeout).isoformat(),
                                          created_before=deadlines.reminder_cutoff(config, now=now))
    except (SQLAlchemyError, ServiceError) as err:
        log.warning("could not count the deadlines (%s)", err)
        return [], []
    return overdue, [review["proposal_id"] for review in due_soon]


def _result(context: Context, result: dict[str, Any], error: str | None) -> dict[str, Any]:
    if error:
        context["ti"].xcom_push(key=RETURN_KEY, value=result)
        raise AirflowFailException(error)
    return result


def _write_run_note(context: Context, headline: str) -> None:
    """The headline as the sweep run's note, where analysts look first. A task cannot set its run's
    note through the Task SDK, so it goes through the REST API as the sweep's user; the summary
    stays in this task's log and XCom if that fails."""
    run = context["dag_run"]
    try:
        with AirflowRuns.from_connection() as api:
            api.set_note(run.dag_id, run.run_id, headline)
    except Exception as err:  # a note is a convenience: never fail a sweep over it
        log.warning("could not write the run note (%s); the summary is in this log and the XCom", err)
