"""The analysts' desk: the Proposals view and a run's Proposal tab, pages inside the Airflow UI.

Airflow shows them in an iframe (the plugin's `external_views`), served here under
/management/desk by the api-server itself, so the UI's own cookie is the login: no second one.
Pages are rendered on the server from the same reads as the JSON API (`proposals.list_page`,
`counts`, `get`); the only script (static/desk.js) sends reviewers' decisions to
`POST /management/proposals/{id}/decision` and opens a run's page in the whole window.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from hms_management.api import proposals as proposal_runs
from hms_management.api.auth import may, user_of
from hms_management.api.changes import changes_of
from hms_management.api.proposals import Filters, ui_link
from hms_management.api.reviews import may_review
from hms_management.domain.deadlines import deadline_mark
from hms_management.domain.outcome import AWAITING_GOVERNANCE, OUTCOMES, STATUSES
from hms_management.domain.proposal import DAG_ID, RUN_ID_PREFIX, proposal_id_of
from hms_management.domain.services import GOVERNANCE, SUSPENSIONS_ENDPOINT, ServiceError
from hms_management.domain.steps import APPLY_POLICY
from hms_management.orchestration.config import settings
from hms_management.orchestration.hook import HmsHook
from hms_management.orchestration.records import budgets
from hms_management.records.store import ProposalRecord, decode_cursor

PAGE_SIZE = 50
ALL, REVIEWS = "all", "reviews"
# What people read for each status; the colour of each is in static/desk.css.
STATUS_LABELS = {
    "queued": "queued",
    "running": "running",
    AWAITING_GOVERNANCE: "awaiting review",
    "completed": "completed",
    "denied": "denied",
    "review_timeout": "review timed out",
    "revoked": "revoked",
    "failed": "failed",
}
# Governance's suspensions are read at most this often per api-server process: the banner is a
# glance, and the kill switch itself acts in the workflow, not here.
SUSPENSIONS_MAX_AGE_SECONDS = 5.0

router = APIRouter(prefix="/desk", include_in_schema=False)
templates = Environment(loader=PackageLoader("hms_management.api", "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Viewer:
    """Who looks at the desk, and what they may do there."""

    name: str
    may_submit: bool
    may_review: bool  # named a reviewer and allowed to act on proposal runs; never on their own
    operates: bool = False  # may change Airflow's pools (role op or admin): sees the rate budgets

    def may_decide(self, record: ProposalRecord, *, now: datetime) -> bool:
        return (self.may_review and record.status == AWAITING_GOVERNANCE and self.name not in record.submitters
                and not proposal_runs.review_deadline_passed(record, now=now))

    def may_revoke(self, record: ProposalRecord) -> bool:
        """A reviewer may revoke governance's decision on someone else's proposal until it ends."""
        return (self.may_review and not record.terminal and self.name not in record.submitters
                and bool((record.decision or {}).get("decision_id")))


def viewer_of(user: Any) -> Viewer:
    from airflow.api_fastapi.app import get_auth_manager

    name = user.get_name()
    submit = may(user, "POST")
    return Viewer(name=name, may_submit=submit, may_review=submit and may_review(name),
                  operates=get_auth_manager().is_authorized_pool(method="PUT", user=user))


@dataclass(frozen=True)
class Row:
    """One proposal as a row of the desk."""

    record: ProposalRecord
    mark: str | None
    may_decide: bool
    may_revoke: bool
    own: bool  # the viewer submitted it (four-eyes: someone else decides)
    ui_link: str
    age: str  # since it was submitted, or how long it took from submission to its outcome
    waited: str | None  # in review for
    deadline: datetime | None
    time_left: str | None  # until the review deadline
    rule: str  # what the proposal would put live, as people read JSON (every scope's, for several)
    scopes: int  # policy scopes the proposal names
    groups: int  # officer groups it tells (0 before it names any: the default group)
    failed_targets: list[str]


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def row_of(record: ProposalRecord, viewer: Viewer, *, now: datetime) -> Row:
    review = record.decision or {}
    deadline = _when(review.get("deadline")) if record.status == AWAITING_GOVERNANCE else None
    in_review_since = _when(review.get("created_at"))
    if record.terminal and record.ended_at:
        age = f"took {span(record.ended_at - record.submitted_at)}"
    else:
        age = f"{span(now - record.submitted_at)} ago"
    rule = record.proposal.get("rule", record.proposal.get("targets"))
    targets = record.targets()
    return Row(
        record=record,
        mark=deadline_mark(record.status, queued_at=record.queued_at, review_deadline=deadline, now=now,
                           settings=settings()),
        may_decide=viewer.may_decide(record, now=now),
        may_revoke=viewer.may_revoke(record),
        own=viewer.name in record.submitters,
        ui_link=ui_link(record.run_id),
        age=age,
        waited=span(now - in_review_since) if in_review_since and record.status == AWAITING_GOVERNANCE else None,
        deadline=deadline,
        time_left=span(deadline - now) if deadline and deadline > now else None,
        rule=json.dumps(rule, indent=1, sort_keys=True) if not isinstance(rule, str) else rule,
        scopes=sum(1 for entry in targets if entry["step"] == APPLY_POLICY),
        groups=len(record.proposal.get("notify") or []),
        failed_targets=[entry["target"] for entry in targets if entry.get("state") == "failed"],
    )


def span(delta: timedelta) -> str:
    """A duration as people say it: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    seconds = max(int(delta.total_seconds()), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds} s"
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def _page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(labels=STATUS_LABELS, **context)
    # The pages show who may decide what: never from a cache.
    return HTMLResponse(html, status_code, headers={"Cache-Control": "no-store"})


async def _signed_in(request: Request) -> Viewer | HTMLResponse:
    """The viewer, or the page that says why there is none (401 not signed in, 403 no access)."""
    root = request.scope.get("root_path", "")
    user = await user_of(request)
    if user is None:
        from airflow.api_fastapi.app import get_auth_manager

        return _page("refused.html", 401, root=root, title="Sign in to Airflow first",
                     message="This page is part of the Airflow UI and uses its sign-in. Your Airflow session is "
                             "missing or has expired.",
                     login=get_auth_manager().get_url_login())
    if not may(user, "GET"):
        return _page("refused.html", 403, root=root, title="No access to proposals",
                     message=f"{user.get_name()!r} may not read runs of {DAG_ID}.", login=None)
    return viewer_of(user)


StatusFilter = Annotated[str | None, Query()]
Text = Annotated[str | None, Query(max_length=200)]


@router.get("", response_class=HTMLResponse)
async def proposals_view(request: Request, tab: str = ALL, status: StatusFilter = None, submitter: Text = None,
                         q: Text = None, cursor: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    viewer = await _signed_in(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    tab = REVIEWS if tab == REVIEWS else ALL
    status = AWAITING_GOVERNANCE if tab == REVIEWS else (status if status in STATUSES else None)
    submitter, q = (submitter or "").strip() or None, (q or "").strip() or None
    try:
        if cursor:
            decode_cursor(cursor)
    except ValueError:
        cursor = None  # a mangled link: start from the first page
    filters = Filters(status=status, submitter=submitter, text=q)
    # The counts and the page are two independent reads: side by side, the page waits for the slower.
    counts, page, suspended, rate_budgets = await asyncio.gather(
        run_in_threadpool(proposal_runs.counts, Filters(submitter=submitter, text=q)),
        run_in_threadpool(proposal_runs.list_page, filters, PAGE_SIZE, cursor or None, oldest_first=tab == REVIEWS),
        run_in_threadpool(suspensions),
        run_in_threadpool(budgets(pooled=True).all) if viewer.operates else asyncio.sleep(0, result=[]))
    now = datetime.now(UTC)
    here = {"tab": tab if tab == REVIEWS else None, "status": status if tab == ALL else None,
            "submitter": submitter, "q": q}

    def link(**change: Any) -> str:
        query = {key: value for key, value in {**here, **change}.items() if value}
        return request.url.path + ("?" + urlencode(query) if query else "")

    return _page(
        "proposals.html", root=request.scope.get("root_path", ""), viewer=viewer, tab=tab, status=status,
        submitter=submitter, q=q, counts=counts, total=sum(counts.values()), statuses=STATUSES,
        rows=[row_of(record, viewer, now=now) for record in page.records], first_page=bool(cursor),
        next_link=link(cursor=page.next_cursor) if page.next_cursor else None, link=link,
        reminder=span(timedelta(seconds=settings().review_reminder_seconds)),
        overdue_after=span(timedelta(seconds=settings().proposal_deadline_seconds)), suspended=suspended,
        budgets=rate_budgets,
    )


@router.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse)
async def run_view(request: Request, dag_id: Annotated[str, Path(max_length=250)],
                   run_id: Annotated[str, Path(max_length=250)]) -> HTMLResponse:
    """A run's Proposal tab: the proposal's facts, or a line saying the run is not a proposal."""
    viewer = await _signed_in(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    proposal_id = proposal_id_of(run_id) if dag_id == DAG_ID and run_id.startswith(RUN_ID_PREFIX) else None
    record = await run_in_threadpool(proposal_runs.get, proposal_id) if proposal_id else None
    now = datetime.now(UTC)
    changes, unknown = [], None
    if record is not None and not record.terminal:  # once it ended, what is live is what it put there
        try:
            changes = await run_in_threadpool(changes_of, record)
        except ServiceError as err:
            unknown = str(err)[:300]
    return _page("run.html", root=request.scope.get("root_path", ""), viewer=viewer, dag_id=dag_id, run_id=run_id,
                 proposal_dag=DAG_ID, row=row_of(record, viewer, now=now) if record else None,
                 steps=steps_of(record) if record else [], checks=checks_of(record) if record else [],
                 targets=record.targets() if record else [], changes=changes, changes_unknown=unknown,
                 terminal=OUTCOMES)


@dataclass(frozen=True)
class StepRow:
    task_id: str
    state: str | None
    tries: int
    ended_at: datetime | None
    waiting_for: str | None  # what holds the step back (a suspended service)


def steps_of(record: ProposalRecord) -> list[StepRow]:
    return [StepRow(task_id, entry.get("state"), entry.get("tries", 0), _when(entry.get("ended_at")),
                    entry.get("waiting_for") if entry.get("state") == "waiting" else None)
            for task_id, entry in record.shown_steps()]


@dataclass(frozen=True)
class CheckRow:
    """One entry of the decision log: governance's answer before a step."""

    step: str
    service: str
    answer: str
    detail: str  # a revocation's or suspension's who and why, an error
    checked_at: datetime | None


def checks_of(record: ProposalRecord) -> list[CheckRow]:
    rows = []
    for entry in record.checks:
        who = f"by {entry['by']}" + (f" at {entry['at']}" if entry.get("at") else "") if entry.get("by") else ""
        detail = " — ".join(part for part in (who, entry.get("reason") or "") if part)
        rows.append(CheckRow(entry.get("step", "?"), entry.get("service", "?"), entry.get("answer", "?"), detail,
                             _when(entry.get("checked_at"))))
    return rows


@dataclass(frozen=True)
class Suspensions:
    """Governance's suspensions (the kill switch), as the desk's banner shows them."""

    items: list[dict[str, Any]]
    unknown: str | None = None  # why they could not be read: the banner says so rather than nothing


_suspensions_read: tuple[float, Suspensions] | None = None


def suspensions() -> Suspensions:
    """The active suspensions, read from governance at most every SUSPENSIONS_MAX_AGE_SECONDS."""
    global _suspensions_read
    if _suspensions_read is not None and time.monotonic() - _suspensions_read[0] < SUSPENSIONS_MAX_AGE_SECONDS:
        return _suspensions_read[1]
    try:
        found = Suspensions(HmsHook(GOVERNANCE).get(SUSPENSIONS_ENDPOINT).get("items") or [])
    except ServiceError as err:
        found = Suspensions([], unknown=str(err)[:300])
    _suspensions_read = (time.monotonic(), found)
    return found
