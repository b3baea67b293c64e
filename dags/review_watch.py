"""
# Review watch

One watch for every proposal in human review. A proposal that governance sends to a reviewer is
*parked*: its run `proposal__<id>` ends with the gate's decision `review`, holding nothing. This DAG
waits in the triggerer (`watch_reviews`, *deferred*), asking the governance service once per
`[hms_management] review_watch_poll_seconds` for decisions taken since it last looked — one request
for all of them — and wakes when reviewers have decided or a review deadline or reminder falls due.
It then:

- **resumes** each parked proposal whose review was decided, from its gate (the same run, its
  gate's try number one higher): the gate reads the decision and the proposal goes on or is denied;
- **times out** reviews older than `review_timeout_seconds` (from when governance put them in
  review): their runs are resumed and the gate records `review_timeout`;
- **reminds** the officers (notification kind `review_reminder`) of a review
  `review_reminder_seconds` before it times out.

Runs follow one another (`@continuous`), each at most `review_watch_cycle_seconds` long; where the
watch stands is kept in the Variable `hms_review_watch`, so decisions taken while the stack was down
are picked up when it is back.

## What healthy looks like
One run *running* with `watch_reviews` *deferred*, and a short green history whose notes say
`Review watch: resumed N decided, M timed out; reminded K`.

## Triage
- **Red runs one after another**: read `watch_reviews`' log. "refused … 401/403": the `airflow_api`
  connection or its user (role `user`) is wrong. A governance error: the service is down; nothing is
  lost, the next run picks up from the same cursor.
- **A decided proposal not resumed**: check that its run `proposal__<id>` is green with the note
  `IN REVIEW` and that the decision in its gate's XCom `decision` is the one decided.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag

from hms_management.orchestration.review_watch import REVIEW_WATCH_DAG_ID, WATCH_REVIEWS, WatchReviewsOperator


@dag(
    dag_id=REVIEW_WATCH_DAG_ID,
    schedule="@continuous",
    # Without a start date, Airflow 3.3's continuous timetable gives the second run the first's
    # logical date and never creates it ("run already exists"): any date in the past will do.
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    max_active_runs=1,  # one watch at a time (@continuous requires it)
    catchup=False,
    is_paused_upon_creation=False,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
    tags=["hms", "proposals", "review"],
)
def review_watch():
    WatchReviewsOperator(task_id=WATCH_REVIEWS)


review_watch()
