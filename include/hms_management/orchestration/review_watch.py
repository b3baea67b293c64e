"""The review watcher (DAG `review_watch`): one wait for every proposal in human review.

A proposal in review is a finished, parked run (see `operators.GovernanceGateOperator`). The
watcher waits in the triggerer on `ReviewFeedTrigger`, one request to governance per poll however
many proposals wait, and, when reviewers have decided or a deadline falls due, resumes the parked
runs concerned from the gate (the gate then reads the decision, or finds the review timed out),
reminds the officers of reviews about to time out and of proposals past their deadline
(`deadlines`). Its cursors live in the Airflow Variable
`hms_review_watch`, so decisions taken while the stack was down are picked up when it is back.

Resuming is idempotent: only a run that is parked on that very decision is cleared, and the gate
asks governance again under the same Idempotency-Key, so a decision seen twice changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Variable

from hms_management.domain.governance import REVIEW, Decision, review_deadline
from hms_management.domain.outcome import QUEUED, is_parked
from hms_management.domain.services import DECISION_FEED, GOVERNANCE
from hms_management.domain.settings import Settings
from hms_management.domain.steps import GOVERNANCE_GATE
from hms_management.orchestration import deadlines
from hms_management.orchestration.airflow_api import AirflowRuns, run_state
from hms_management.orchestration.config import settings
from hms_management.orchestration.hook import HmsHook
from hms_management.orchestration.records import records
from hms_management.orchestration.triggers import ReviewFeedTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

REVIEW_WATCH_DAG_ID = "review_watch"
WATCH_REVIEWS = "watch_reviews"
WATCH_STATE = "hms_review_watch"
PAGE = 100  # decisions per look at the feed


@dataclass
class WatchState:
    """Where the watcher stands: the feed's cursor, and up to when (reviews created before it) it
    has handled timeouts and reminders."""

    decided: str | None = None
    expired_until: str | None = None
    reminded_until: str | None = None

    @classmethod
    def load(cls) -> WatchState:
        raw = Variable.get(WATCH_STATE, default=None)
        return cls(**json.loads(raw)) if raw else cls()

    def save(self) -> None:
        Variable.set(WATCH_STATE, json.dumps(asdict(self)))


@dataclass
class WatchReport:
    resumed: dict[str, str] = field(default_factory=dict)  # proposal id → the decision's status
    timed_out: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # proposals past their deadline (officers told once)

    @property
    def headline(self) -> str:
        return (f"Review watch: resumed {len(self.resumed)} decided, {len(self.timed_out)} timed out; "
                f"reminded {len(self.reminded)}; overdue proposals {len(self.overdue)}")


class WatchReviewsOperator(BaseOperator):
    """Wait (deferred) for reviewers' decisions and review deadlines; resume the parked proposals."""

    ui_color = "#e1bee7"

    def execute(self, context: Context) -> None:
        config, state = settings(), WatchState.load()
        due_at = next_due(HmsHook(GOVERNANCE), state, config, now=datetime.now(UTC))
        self.log.info("Watching decisions since %s; next deadline or reminder at %s", state.decided or "the start",
                      datetime.fromtimestamp(due_at, UTC).isoformat())
        self.defer(trigger=ReviewFeedTrigger(cursor=state.decided, due_at=due_at,
                                             poll_seconds=config.review_watch_poll_seconds),
                   method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        config, state, report = settings(), WatchState.load(), WatchReport()
        hook, now = HmsHook(GOVERNANCE), datetime.now(UTC)
        with AirflowRuns.from_connection() as runs:
            resume_decided(hook, runs, state, report)
            resume_expired(hook, runs, state, report, before=now - config.review_timeout)
            remind_due_soon(hook, runs, state, report, config, now=now)
            late = deadlines.overdue(config, now=now)
            deadlines.notify_overdue(deadlines.notifications_hook(), late, config)
            report.overdue = sorted(late)
            self.log.info("%s", report.headline)
            for proposal_id, status in report.resumed.items():
                self.log.info("resumed %s: %s", proposal_id, status)
            run = context["dag_run"]
            runs.set_note(run.dag_id, run.run_id, report.headline)
        return asdict(report)


def next_due(hook: HmsHook, state: WatchState, config: Settings, *, now: datetime) -> float:
    """When the next review deadline or reminder falls due (epoch seconds), at the latest one watch
    cycle from now. A review that starts later cannot fall due before now + its timeout."""
    timeout, early = config.review_timeout, timedelta(seconds=config.review_reminder_seconds)
    due = [now + timedelta(seconds=config.review_watch_cycle_seconds), now + min(timeout - early, timeout)]
    for cursor, offset in ((state.expired_until, timeout), (state.reminded_until, max(timeout - early, timedelta()))):
        oldest = hook.get(DECISION_FEED, status=REVIEW, createdAfter=cursor, limit=1)["items"]
        if oldest:
            due.append(datetime.fromisoformat(oldest[0]["created_at"]) + offset)
    # Never sooner than one poll from now: a reminder set longer than the review itself must not spin.
    return max(min(due), now + timedelta(seconds=config.review_watch_poll_seconds)).timestamp()


def parked_on(runs: AirflowRuns, proposal_id: str, decision_id: str) -> bool:
    """Whether the proposal's run is parked in review on this very decision: its run ended (as
    Airflow says, the truth of a run's state) with the gate's decision (as its record keeps it)."""
    record = records().get(proposal_id)
    if record is None or (record.decision or {}).get("decision_id") != decision_id:
        return False
    run = runs.run(proposal_id)
    return run is not None and is_parked(run_state(run), record.decision)


def resume_if_parked(runs: AirflowRuns, proposal_id: str, decision_id: str) -> bool:
    """Clear the proposal's run from the gate if it is parked on this decision; whether it was."""
    if not parked_on(runs, proposal_id, decision_id):
        return False
    runs.rerun_from(proposal_id, GOVERNANCE_GATE)
    # Queued again, as Airflow now says: the desk shows it at once, not at the run's next start.
    records().change(proposal_id, run_state=QUEUED, queued_at=datetime.now(UTC))
    return True


def resume_decided(hook: HmsHook, runs: AirflowRuns, state: WatchState, report: WatchReport) -> None:
    """Every decision reviewers took since the cursor, page by page, the cursor saved after each."""
    while True:
        page = hook.get(DECISION_FEED, decidedSince=state.decided, limit=PAGE)
        for item in page["items"]:
            if resume_if_parked(runs, item["proposal_id"], item["decision_id"]):
                report.resumed[item["proposal_id"]] = f"{item['status']} by {item.get('reviewer') or 'a reviewer'}"
        state.decided = page.get("next") or state.decided
        state.save()
        if len(page["items"]) < PAGE:
            return


def resume_expired(hook: HmsHook, runs: AirflowRuns, state: WatchState, report: WatchReport, *,
                   before: datetime) -> None:
    """Reviews still open past their deadline (created before `before`): the gate times them out."""
    for item in deadlines.open_reviews(hook, created_after=state.expired_until, created_before=before):
        if resume_if_parked(runs, item["proposal_id"], item["decision_id"]):
            report.timed_out.append(item["proposal_id"])
    state.expired_until = before.isoformat()
    state.save()


def remind_due_soon(hook: HmsHook, runs: AirflowRuns, state: WatchState, report: WatchReport, config: Settings, *,
                    now: datetime) -> None:
    """One officer notification per parked review that will time out within the reminder time."""
    before = deadlines.reminder_cutoff(config, now=now)
    notifications = deadlines.notifications_hook()
    for item in deadlines.open_reviews(hook, created_after=state.reminded_until, created_before=before):
        if not parked_on(runs, item["proposal_id"], item["decision_id"]):
            continue
        deadline = review_deadline(Decision(REVIEW, "", item["decision_id"], created_at=item["created_at"]),
                                   config.review_timeout)
        deadlines.remind(notifications, item, deadline)
        report.reminded.append(item["proposal_id"])
    state.reminded_until = before.isoformat()
    state.save()
