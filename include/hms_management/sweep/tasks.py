"""Bodies of the backlog sweep's tasks: settings, connections and XComs around hms_management.sweep.plan.

Each part returns what it did as its XCom, also when it fails (a failed task's return value is not
stored, so it is pushed before failing): the summary reads both, whatever happened.
"""

from __future__ import annotations

import logging
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from hms_management.client import AirflowClient
from hms_management.domain.services import AUDIT, BACKLOG, CONFIG_SECTION, Service
from hms_management.sweep.adapters import HttpAuditLog, HttpBacklog, ProposalRuns
from hms_management.sweep.plan import (
    AIRFLOW_API_CONN_ID,
    BATCH_SIZE_KEY,
    REDRIVE,
    REDRIVE_LIMIT_KEY,
    REDRIVE_WINDOW_KEY,
    START_QUEUED,
    SweepSettings,
    summarize,
)
from hms_management.sweep.runner import redrive_failed_runs, take_backlog

if TYPE_CHECKING:
    from airflow.sdk import Context
    from requests import Session

log = logging.getLogger(__name__)
RETURN_KEY = "return_value"


def sweep_settings() -> SweepSettings:
    """Read at run time, so a change in airflow.cfg needs no re-parse of the DAG."""
    default = SweepSettings()
    hours = conf.getfloat(CONFIG_SECTION, REDRIVE_WINDOW_KEY, fallback=default.redrive_window.total_seconds() / 3600)
    return SweepSettings(
        batch_size=conf.getint(CONFIG_SECTION, BATCH_SIZE_KEY, fallback=default.batch_size),
        redrive_limit=conf.getint(CONFIG_SECTION, REDRIVE_LIMIT_KEY, fallback=default.redrive_limit),
        redrive_window=timedelta(hours=hours),
    )


def airflow_client() -> AirflowClient:
    """Airflow's REST API as the sweep's own user; the client fetches its JWT from /auth/token.

    With the client's own timeout (30 s), not the HMS services' 10 s: while hundreds of fresh runs
    start on two cores the api-server is slow rather than down (seen here), and a sweep that stops
    over a slow answer only leaves work for the next one.
    """
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(AIRFLOW_API_CONN_ID)
    base_url = f"{connection.schema or 'http'}://{connection.host}:{connection.port}"
    return AirflowClient(base_url, connection.login, connection.password)


def hms_session(service: Service) -> tuple[Session, str]:
    """One session per task for an HMS service (one connection look-up, kept-alive sockets), with
    the connection's token as its header; every call passes the request timeout itself."""
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id=service.conn_id)
    session = hook.get_conn()
    return session, hook.base_url


def start_queued_proposals(context: Context) -> dict[str, Any]:
    backlog = HttpBacklog(*hms_session(BACKLOG))
    with closing(airflow_client()) as client:
        intake = take_backlog(backlog, ProposalRuns(client), batch_size=sweep_settings().batch_size)
    return _result(context, intake.as_dict(), intake.error)


def redrive_transient_failures(context: Context) -> dict[str, Any]:
    settings = sweep_settings()
    audit = HttpAuditLog(*hms_session(AUDIT))
    since = (datetime.now(UTC) - settings.redrive_window).isoformat()
    with closing(airflow_client()) as client:
        result = redrive_failed_runs(ProposalRuns(client), audit, limit=settings.redrive_limit, ended_after=since,
                                     sweep_run_id=context["dag_run"].run_id)
    return _result(context, result.as_dict(), result.error)


def summarize_sweep(context: Context) -> dict[str, Any]:
    ti = context["ti"]
    summary = summarize(ti.xcom_pull(task_ids=START_QUEUED), ti.xcom_pull(task_ids=REDRIVE))
    log.info("%s", summary.headline)
    lists = {"started": summary.started, "already running": summary.already_running,
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
        with closing(airflow_client()) as client:
            client.set_run_note(run.dag_id, run.run_id, headline)
    except Exception as err:  # a note is a convenience: never fail a sweep over it
        log.warning("could not write the run note (%s); the summary is in this log and the XCom", err)
