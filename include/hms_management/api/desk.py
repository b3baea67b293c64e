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
from hms_management.api.proposals import Filters, ProposalView, decode_cursor, ui_link
from hms_management.api.reviews import may_review
from hms_management.domain.deadlines import deadline_mark
from hms_management.domain.outcome import AWAITING_GOVERNANCE, OUTCOMES, STATUSES
from hms_management.domain.proposal import DAG_ID, RUN_ID_PREFIX, proposal_id_of
from hms_management.domain.steps import TASK_ORDER
from hms_management.orchestration.config import settings

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
    "failed": "failed",
}

router = APIRouter(prefix="/desk", include_in_schema=False)
templates = Environment(loader=PackageLoader("hms_management.api", "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Viewer:
    """Who looks at the desk, and what they may do there."""

    name: str
    may_submit: bool
    may_review: bool  # named a reviewer and allowed to act on proposal runs; never on their own

    def may_decide(self, view: ProposalView, *, now: datetime) -> bool:
        return (self.may_review and view.status == AWAITING_GOVERNANCE and self.name not in view.submitters
                and not proposal_runs.review_deadline_passed(view, now=now))


def viewer_of(user: Any) -> Viewer:
    name = user.get_name()
    submit = may(user, "POST")
    return Viewer(name=name, may_submit=submit, may_review=submit and may_review(name))


@dataclass(frozen=True)
class Row:
    """One proposal as a row of the desk."""

    view: ProposalView
    mark: str | None
    may_decide: bool
    own: bool  # the viewer submitted it (four-eyes: someone else decides)
    ui_link: str
    age: str  # since it was submitted, or how long it took from submission to its outcome
    waited: str | None  # in review for
    deadline: datetime | None
    time_left: str | None  # until the review deadline
    rule: str


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def row_of(view: ProposalView, viewer: Viewer, *, now: datetime) -> Row:
    review = view.decision or {}
    deadline = _when(review.get("deadline")) if view.status == AWAITING_GOVERNANCE else None
    in_review_since = _when(review.get("created_at"))
    submitted = view.created_at or view.queued_at
    if view.terminal and view.end_date and submitted:
        age = f"took {span(view.end_date - submitted)}"
    else:
        age = f"{span(now - submitted)} ago" if submitted else ""
    rule = view.conf.get("rule")
    return Row(
        view=view,
        mark=deadline_mark(view.status, queued_at=view.queued_at, review_deadline=deadline, now=now,
                           settings=settings()),
        may_decide=viewer.may_decide(view, now=now),
        own=viewer.name in view.submitters,
        ui_link=ui_link(view.run_id),
        age=age,
        waited=span(now - in_review_since) if in_review_since and view.status == AWAITING_GOVERNANCE else None,
        deadline=deadline,
        time_left=span(deadline - now) if deadline and deadline > now else None,
        rule=json.dumps(rule, indent=1, sort_keys=True) if not isinstance(rule, str) else rule,
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
    counts, (views, next_cursor) = await asyncio.gather(
        run_in_threadpool(proposal_runs.counts, Filters(submitter=submitter, text=q)),
        run_in_threadpool(proposal_runs.list_page, filters, PAGE_SIZE, cursor or None, oldest_first=tab == REVIEWS))
    now = datetime.now(UTC)
    here = {"tab": tab if tab == REVIEWS else None, "status": status if tab == ALL else None,
            "submitter": submitter, "q": q}

    def link(**change: Any) -> str:
        query = {key: value for key, value in {**here, **change}.items() if value}
        return request.url.path + ("?" + urlencode(query) if query else "")

    return _page(
        "proposals.html", root=request.scope.get("root_path", ""), viewer=viewer, tab=tab, status=status,
        submitter=submitter, q=q, counts=counts, total=sum(counts.values()), statuses=STATUSES,
        rows=[row_of(view, viewer, now=now) for view in views], first_page=bool(cursor),
        next_link=link(cursor=next_cursor) if next_cursor else None, link=link,
        reminder=span(timedelta(seconds=settings().review_reminder_seconds)),
        overdue_after=span(timedelta(seconds=settings().proposal_deadline_seconds)),
    )


@router.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse)
async def run_view(request: Request, dag_id: Annotated[str, Path(max_length=250)],
                   run_id: Annotated[str, Path(max_length=250)]) -> HTMLResponse:
    """A run's Proposal tab: the proposal's facts, or a line saying the run is not a proposal."""
    viewer = await _signed_in(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    proposal_id = proposal_id_of(run_id) if dag_id == DAG_ID and run_id.startswith(RUN_ID_PREFIX) else None
    view = await run_in_threadpool(proposal_runs.get, proposal_id) if proposal_id else None
    now = datetime.now(UTC)
    return _page("run.html", root=request.scope.get("root_path", ""), viewer=viewer, dag_id=dag_id, run_id=run_id,
                 proposal_dag=DAG_ID, row=row_of(view, viewer, now=now) if view else None,
                 steps=sorted(view.steps, key=lambda s: TASK_ORDER.index(s.task_id)
                              if s.task_id in TASK_ORDER else len(TASK_ORDER)) if view else [],
                 terminal=OUTCOMES)
