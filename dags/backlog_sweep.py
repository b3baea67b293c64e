"""
# Backlog sweep

Every 15 minutes (`[hms_management] backlog_sweep_schedule`) the sweep drains the HMS backlog into
proposal runs and re-drives proposal runs that failed on a passing outage:

- **start_queued_proposals** — takes the oldest pending proposals from the backlog (at most
  `backlog_sweep_batch_size`), rejects the invalid ones in the backlog with the reason, starts run
  `proposal__<id>` for each valid one through Airflow's REST API (as user `backlog_sweeper`; an
  existing run counts as started) and marks it *taken* only once its run exists.
- **redrive_transient_failures** — for proposal runs that failed on a 5xx, 429, timeout or lost
  connection in the last `backlog_redrive_window_hours`, clears the failed step and the steps after
  it, at most `backlog_redrive_limit` times per proposal; each re-drive is an audit record
  (`proposal.redriven`). Denials and refusals (4xx, invalid input) are never re-driven.
- **summarize_sweep** — the summary: the **run note**, the first log line of this task and its
  XCom (`counts` and the proposal ids behind each number).

## What healthy looks like
Green runs with notes like `Sweep: started 12, already running 0, rejected 0, re-driven 0, left
for the next sweep 0`. A sweep with nothing to do takes a few seconds (about 3 s here); one that
started many runs ends later, as its summary waits for the executor behind those runs' tasks. One
sweep runs at a time; a sweep triggered while one runs waits its turn (and would start nothing
twice anyway).

## Triage
- **Red `start_queued_proposals`**, "the HMS backlog service is unavailable": nothing was lost —
  proposals stay *pending* and the next sweep takes them. Check the backlog service.
- **"Airflow's REST API refused … 401/403"**: the `airflow_api` connection or the
  `backlog_sweeper` user (role `user`) is wrong.
- **`rejected` > 0**: the backlog entries say why (`GET /backlog/proposals?status=rejected`); the
  submitter fixes the proposal and queues it again.
- **`more proposals are queued beyond this sweep's batch`** in every note: the backlog grows faster
  than sweeps drain it — raise the batch size or sweep more often.
- **"reached the re-drive limit and need a human"**: those runs failed transiently
  `backlog_redrive_limit` times; once the service is healthy, *Clear* the failed task of the run
  (`proposal__<id>`) by hand — every call carries an Idempotency-Key, so nothing is applied twice.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Context, TriggerRule, dag, task

from hms_management.domain.services import BACKLOG
from hms_management.orchestration.config import settings
from hms_management.sweep.plan import REDRIVE, START_QUEUED, SUMMARIZE, SWEEP_DAG_ID, sweep_schedule

SWEEP_TASK_SETTINGS = {
    # The next sweep is the retry: every step is idempotent and a failed sweep leaves its work pending.
    "retries": 0,
    "execution_timeout": timedelta(minutes=30),
    # The next free executor slot goes to the sweep's summary before the tasks of the runs it has
    # just started (proposal weights are 1-100), so the sweep ends while those runs are busy.
    "priority_weight": 1000,
    "weight_rule": "absolute",
}


@dag(
    dag_id=SWEEP_DAG_ID,
    schedule=sweep_schedule(settings().backlog_sweep_schedule),
    catchup=False,
    is_paused_upon_creation=False,
    # One sweep at a time; a second one waits. Steps are idempotent, so even two at once would
    # start no proposal twice.
    max_active_runs=1,
    default_args=SWEEP_TASK_SETTINGS,
    doc_md=__doc__,
    tags=["hms", "backlog", "proposals"],
)
def backlog_sweep():
    @task(task_id=START_QUEUED, pool=BACKLOG.pool, multiple_outputs=False)
    def start_queued_proposals(**context: Context) -> dict:
        """Pending proposals → runs (marked taken once their run exists); invalid ones → rejected."""
        from hms_management.sweep import tasks as sweep_tasks

        return sweep_tasks.start_queued_proposals(context)

    @task(task_id=REDRIVE, multiple_outputs=False)
    def redrive_transient_failures(**context: Context) -> dict:
        """Re-run the failed steps of runs that failed on a transient error, a bounded number of times."""
        from hms_management.sweep import tasks as sweep_tasks

        return sweep_tasks.redrive_transient_failures(context)

    @task(task_id=SUMMARIZE, trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
    def summarize_sweep(**context: Context) -> dict:
        """The sweep's summary in the run note, the log and the XCom; fails if a part failed."""
        from hms_management.sweep import tasks as sweep_tasks

        return sweep_tasks.summarize_sweep(context)

    [start_queued_proposals(), redrive_transient_failures()] >> summarize_sweep()


backlog_sweep()
