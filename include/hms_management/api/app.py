"""The HMS Management API, served by Airflow's api-server at /management.

The contract HMS agents were written against — `POST /management/proposals {id, rule}` →
`{"status": "completed"}` — on top of Airflow runs, guarded by Airflow's own tokens and roles:
role `user` may submit, `viewer` may read, the users named in `[hms_management] reviewers` may
decide reviews (never their own proposals). A bad body never starts a run or reaches a service.
It also serves the analysts' desk (`desk`: the Proposals view and a run's Proposal tab in the UI).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError

from hms_management.api import desk, metrics
from hms_management.api import proposals as proposal_runs
from hms_management.api.admission import MAX_BODY_BYTES, is_json, read_body, refusal
from hms_management.api.auth import is_admin, may, user_of
from hms_management.api.changes import changes_of
from hms_management.api.docs import add_docs
from hms_management.api.proposals import Filters, ProposalConflict
from hms_management.api.reviews import ReviewRefused, decide, revoke
from hms_management.api.share import in_agents_share
from hms_management.domain.outcome import STATUSES
from hms_management.domain.proposal import (
    DAG_ID,
    ID_PATTERN,
    MAX_ID_LENGTH,
    InvalidProposal,
    JsonBodyError,
    Proposal,
    load_json,
    parse_proposal,
)
from hms_management.domain.services import ServiceError
from hms_management.orchestration.config import deployment
from hms_management.orchestration.records import budgets
from hms_management.records.budgets import BudgetError
from hms_management.records.store import ProposalRecord, decode_cursor

BodyModel = TypeVar("BodyModel", bound=BaseModel)
MAX_WAIT_SECONDS = 60.0
MAX_PAGE = 200
# Waiting requests sleep between looks at the database, longer as they wait: they hold no
# api-server worker (async) and cost one indexed read per look.
FIRST_LOOK_AFTER, LONGEST_LOOK_INTERVAL = 0.25, 2.0

EXAMPLE = {
    "id": "foia-backlog-2026-11",
    "rule": {"queue": "foia", "strategy": "oldest-first", "max_age_days": 20},
    "title": "Optimise the FOIA backlog",
    "submitted_by": "hms-a2a",
    "day": "Tue",
}


class Links(BaseModel):
    ui: str = Field(description="The run in the Airflow UI")
    status: str = Field(description="This proposal in this API")


class StepState(BaseModel):
    task_id: str
    state: str | None
    tries: int
    start_date: datetime | None
    end_date: datetime | None


class TargetState(BaseModel):
    step: str = Field(description="apply_policy (a policy scope) or notify_officers (an officer group)")
    target: str = Field(description="The scope or the group")
    state: str | None = Field(None, description="applied, failed, waiting (for its rate-budget slot); "
                                                "none before its step ran")
    tries: int = 0
    result: dict[str, Any] | None = Field(None, description="What the service answered (policy id, versions …)")
    error: str | None = None


class ProposalStatus(BaseModel):
    """Where a proposal stands. `status` is one of: """ + ", ".join(STATUSES)

    id: str
    run_id: str
    status: str = Field(description="queued, running, awaiting_governance, completed, denied, review_timeout, failed")
    reason: str | None = Field(None, description="Why it ended as it did, or why it waits for a reviewer")
    failed_step: str | None = None
    title: str | None = None
    submitted_by: str | None = Field(None, description="Whom the proposal names, else the user that submitted it")
    priority: str | None = None
    impact: str | None = None
    submitted_at: datetime | None = None
    ended_at: datetime | None = None
    governance: dict[str, Any] | None = Field(
        None, description="The governance decision, once there is one; in review: decision_id, reason, "
                          "created_at (in review since) and deadline")
    rule: dict[str, Any] | str | None = Field(None, description="The rule to put live (on a proposal's own page)")
    steps: list[StepState] | None = None
    checks: list[dict[str, Any]] | None = Field(
        None, description="The decision log: governance's answer before each step (step, service, answer, when)")
    targets: list[TargetState] | None = Field(None, description="Each policy scope and officer group, with its "
                                                                "state, tries and result")
    target_count: int = Field(0, description="How many targets (scopes and groups) the proposal has")
    failed_targets: list[str] = Field(default_factory=list, description="The targets whose call failed")
    links: Links

    model_config = {"json_schema_extra": {"examples": [{
        "id": "foia-backlog-2026-11", "run_id": "proposal__foia-backlog-2026-11", "status": "completed",
        "reason": "policy applied and officers notified",
        "links": {"ui": "http://127.0.0.1:8080/dags/proposal_orchestration/runs/proposal__foia-backlog-2026-11",
                  "status": "/management/proposals/foia-backlog-2026-11"},
    }]}}


class ProposalPage(BaseModel):
    items: list[ProposalStatus]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last")


class Decision(BaseModel):
    """A reviewer's decision on a proposal awaiting review."""

    model_config = {"extra": "forbid"}

    approved: bool = Field(strict=True)
    reason: str = Field(min_length=1, max_length=1000, description="Why; kept in the audit record")


class Revocation(BaseModel):
    """A reviewer's revocation of governance's decision on a proposal that has not ended."""

    model_config = {"extra": "forbid"}

    reason: str = Field(min_length=1, max_length=1000, description="Why; kept in the audit record")


def _authorized(method: str):
    """Airflow's token and roles: 401 without a valid token, 403 when the role may not `method`."""

    async def check(request: Request) -> Any:
        user = await user_of(request)
        if user is None:
            raise HTTPException(401, "a valid Airflow token is required (POST /auth/token)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not may(user, method):
            raise HTTPException(403, f"role may not {'submit' if method == 'POST' else 'read'} proposals")
        return user

    return Depends(check)


Caller = Annotated[Any, _authorized("POST")]
Reader = Annotated[Any, _authorized("GET")]


app = FastAPI(
    title="HMS Management API",
    version="1.0",
    description=(
        "Submit proposals and follow them. Authenticate with an Airflow token "
        "(`POST /auth/token` on the api-server) as `Authorization: Bearer <token>`: role `user` may "
        "submit, role `viewer` may read. Every proposal is the Airflow run `proposal__<id>` of DAG "
        f"`{DAG_ID}`."
    ),
    docs_url=None,  # docs.add_docs: Swagger UI from this server, not from a CDN
    redoc_url=None,
    openapi_url="/openapi.json",
)
add_docs(app, title="HMS Management API")
# The analysts' desk (pages of the Airflow UI, in its iframes) and its stylesheet, script and icons.
app.include_router(desk.router)
app.include_router(metrics.router)  # GET /management/metrics, for Prometheus
app.mount("/desk/static", StaticFiles(packages=[("hms_management.api", "static")]), name="desk-static")


@app.exception_handler(JsonBodyError)
async def _bad_json(request: Request, err: JsonBodyError) -> JSONResponse:
    return JSONResponse(refusal([{"field": "(body)", "reason": str(err)}]), 400)


def _status(record: ProposalRecord, *, details: bool) -> dict[str, Any]:
    targets = record.targets()
    body = ProposalStatus(
        id=record.id,
        run_id=record.run_id,
        status=record.status,
        reason=record.reason,
        failed_step=record.failed_step,
        title=record.title,
        submitted_by=record.submitted_by,
        priority=record.priority,
        impact=record.impact,
        submitted_at=record.submitted_at,
        ended_at=record.ended_at if record.terminal else None,
        governance=record.decision,
        rule=record.proposal.get("rule") if details else None,
        steps=_steps(record) if details else None,
        checks=record.checks if details else None,
        targets=[TargetState(**{key: entry.get(key) for key in TargetState.model_fields if key in entry})
                 for entry in targets] if details else None,
        target_count=len(targets),
        failed_targets=[entry["target"] for entry in targets if entry.get("state") == "failed"],
        links=Links(ui=proposal_runs.ui_link(record.run_id), status=f"/management/proposals/{record.id}"),
    )
    return body.model_dump(mode="json", exclude=None if details else {"steps", "rule", "checks", "targets"})


def _steps(record: ProposalRecord) -> list[StepState]:
    """Each step of the workflow as the record holds it; a step that has not run yet has no state."""
    return [StepState(task_id=task_id, state=entry.get("state"), tries=entry.get("tries", 0),
                      start_date=entry.get("started_at"), end_date=entry.get("ended_at"))
            for task_id, entry in record.shown_steps()]


async def _read_body(request: Request) -> bytes:
    if not is_json(request.headers.get("content-type", "")):
        raise _Refused(415, "Content-Type must be application/json")
    raw = await read_body(request.receive, MAX_BODY_BYTES)
    if raw is None:
        raise _Refused(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    return raw


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason


@app.exception_handler(_Refused)
async def _refused(request: Request, err: _Refused) -> JSONResponse:
    return JSONResponse({"detail": err.reason}, err.status)


class _Invalid(Exception):
    def __init__(self, errors: list[dict[str, str]], what: str):
        self.errors, self.what = errors, what


@app.exception_handler(_Invalid)
async def _invalid(request: Request, err: _Invalid) -> JSONResponse:
    return JSONResponse(refusal(err.errors, err.what), 400)


async def _wait_until_terminal(proposal_id: str, seconds: float) -> ProposalRecord | None:
    """The proposal once it ends, or as it stands when time runs out; None if it is unknown."""
    deadline, pause = time.monotonic() + seconds, FIRST_LOOK_AFTER
    while True:
        record = await in_agents_share(proposal_runs.get, proposal_id)
        remaining = deadline - time.monotonic()
        if record is None or record.terminal or remaining <= 0:
            return record
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 1.6, LONGEST_LOOK_INTERVAL)


WaitParam = Annotated[float, Query(
    ge=0, le=MAX_WAIT_SECONDS,
    description=f"Hold the answer up to this many seconds (at most {MAX_WAIT_SECONDS:.0f}) until the proposal "
    "ends: 200 with its final status, or 202 with the current one when time runs out.")]


@app.post(
    "/proposals",
    status_code=202,
    summary="Submit a proposal",
    responses={
        200: {"description": "Already submitted with the same content (or finished within `wait`): its status"},
        202: {"description": "Accepted: its run has started", "model": ProposalStatus},
        400: {"description": "Invalid proposal: each field with its reason; nothing started"},
        401: {"description": "No or bad token"},
        403: {"description": "The token's role may not submit (e.g. viewer)"},
        409: {"description": "The id is taken by a proposal with different content"},
        413: {"description": "Body larger than 1 MiB"},
        415: {"description": "Body is not application/json"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": Proposal.model_json_schema(),
        "examples": {
            "ordinary": {"summary": "Approved at once", "value": EXAMPLE},
            "high_impact": {"summary": "Waits for a human reviewer", "value": {**EXAMPLE, "id": "foia-2",
                                                                               "impact": "high"}},
            "weekend": {"summary": "Denied by governance", "value": {**EXAMPLE, "id": "foia-3", "day": "Sat"}},
        },
    }}}},
)
async def submit_proposal(request: Request, user: Caller, wait: WaitParam = 0) -> JSONResponse:
    try:
        proposal = parse_proposal(load_json(await _read_body(request)), deployment())
    except InvalidProposal as err:
        return JSONResponse(refusal(err.errors), 400)
    try:
        record, started = await in_agents_share(proposal_runs.start, proposal, user.get_name())
    except ProposalConflict:
        return JSONResponse({"detail": f"proposal {proposal.id!r} was already submitted with different content; "
                                       "use a new id for a new proposal", "run_id": proposal.run_id}, 409)
    if wait > 0:
        record = await _wait_until_terminal(proposal.id, wait)
        if record is None:
            return _gone(proposal.id)
    code = 200 if (record.terminal and wait > 0) or not started else 202
    return JSONResponse(_status(record, details=False), code)


def _gone(proposal_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"no proposal {proposal_id!r}"}, 404)


ProposalId = Annotated[str, Path(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description="The proposal's id")]


@app.get("/proposals/{proposal_id}", dependencies=[_authorized("GET")], response_model=ProposalStatus,
         summary="A proposal's status, steps and governance decision", responses={404: {"description": "Unknown id"}})
async def proposal_status(proposal_id: ProposalId, wait: WaitParam = 0) -> JSONResponse:
    record = await in_agents_share(proposal_runs.get, proposal_id)
    if record is not None and wait > 0:
        record = await _wait_until_terminal(proposal_id, wait)
    if record is None:
        return _gone(proposal_id)
    return JSONResponse(_status(record, details=True), 200)


StatusParam = Annotated[str | None, Query(description="One of: " + ", ".join(STATUSES))]
SubmitterParam = Annotated[str | None, Query(max_length=200, description="Whom the proposal names as submitted_by, "
                                                                         "or the user that submitted it")]
TextParam = Annotated[str | None, Query(alias="q", max_length=200, description="Text in the id or the title")]


@app.get("/proposals", dependencies=[_authorized("GET")], response_model=ProposalPage,
         summary="Proposals, newest first", responses={400: {"description": "Unknown status or a bad cursor"}})
async def list_proposals(
    status: StatusParam = None,
    submitter: SubmitterParam = None,
    text: TextParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> JSONResponse:
    if status is not None and status not in STATUSES:
        return JSONResponse({"detail": f"status must be one of {', '.join(STATUSES)}"}, 400)
    try:
        if cursor is not None:
            decode_cursor(cursor)
    except ValueError as err:
        return JSONResponse({"detail": f"cursor: {err}"}, 400)
    filters = Filters(status=status, submitter=submitter, text=text)
    found = await in_agents_share(proposal_runs.list_page, filters, limit, cursor)
    page = {"items": [_status(record, details=False) for record in found.records]}
    if found.next_cursor:
        page["next_cursor"] = found.next_cursor
    return JSONResponse(page, 200)


@app.get("/counts", dependencies=[_authorized("GET")], summary="How many proposals are in each status")
async def count_proposals(submitter: SubmitterParam = None, text: TextParam = None) -> JSONResponse:
    counts = await in_agents_share(proposal_runs.counts, Filters(submitter=submitter, text=text))
    return JSONResponse({"counts": counts, "total": sum(counts.values())}, 200)


class Me(BaseModel):
    user: str
    may_submit: bool = Field(description="May submit proposals (Airflow role user or above)")
    may_review: bool = Field(description="May decide reviews (named in [hms_management] reviewers), never on a "
                                         "proposal of their own")


@app.get("/me", response_model=Me, summary="Who the caller is and what they may do here",
         responses={401: {"description": "No or bad token"}})
async def me(request: Request) -> JSONResponse:
    user = await user_of(request)
    if user is None:
        raise HTTPException(401, "a valid Airflow token is required (POST /auth/token)",
                            headers={"WWW-Authenticate": "Bearer"})
    viewer = desk.viewer_of(user)
    return JSONResponse(Me(user=viewer.name, may_submit=viewer.may_submit, may_review=viewer.may_review).model_dump())


@app.post(
    "/proposals/{proposal_id}/decision",
    summary="Decide a proposal awaiting review (reviewers only)",
    responses={
        200: {"description": "Decided: the governance decision; the proposal resumes within seconds"},
        400: {"description": "The body is not {approved: bool, reason: str}"},
        403: {"description": "Not a reviewer, or the caller submitted the proposal (four-eyes rule)"},
        404: {"description": "Unknown id"},
        409: {"description": "Not awaiting review: decided already, timed out, or never in review"},
    },
)
async def decide_review(proposal_id: ProposalId, request: Request, user: Caller) -> JSONResponse:
    body = await _body_as(Decision, request, "decision")
    return await _reviewers_act(decide, proposal_id, approved=body.approved, reason=body.reason,
                                reviewer=user.get_name())


@app.post(
    "/proposals/{proposal_id}/revoke",
    summary="Revoke governance's decision on a proposal that has not ended (reviewers only)",
    responses={
        200: {"description": "Revoked: the proposal takes no further step; its outcome becomes `revoked`"},
        400: {"description": "The body is not {reason: str}"},
        403: {"description": "Not a reviewer, or the caller submitted the proposal (four-eyes rule)"},
        404: {"description": "Unknown id"},
        409: {"description": "Ended already (an applied policy is changed by a new proposal), revoked already, "
                             "or not decided by governance yet; nothing changed"},
    },
)
async def revoke_decision(proposal_id: ProposalId, request: Request, user: Caller) -> JSONResponse:
    body = await _body_as(Revocation, request, "revocation")
    return await _reviewers_act(revoke, proposal_id, reason=body.reason, reviewer=user.get_name())


async def _body_as(model: type[BodyModel], request: Request, what: str) -> BodyModel:
    """The request's JSON body as `model`, or a 400 ("Invalid <what>: …") naming each field and why."""
    try:
        return model.model_validate(load_json(await _read_body(request)))
    except ValidationError as err:
        raise _Invalid([{"field": ".".join(map(str, e["loc"])) or "(body)", "reason": e["msg"]}
                        for e in err.errors(include_url=False)], what) from None


async def _reviewers_act(act: Callable[..., tuple[ProposalRecord, dict[str, Any]]], proposal_id: str,
                         **details: Any) -> JSONResponse:
    """A reviewer's decision or revocation: the proposal as it stands and governance's record, or why not."""
    try:
        record, decision = await in_agents_share(act, proposal_id, **details)
    except ReviewRefused as err:
        return JSONResponse({"detail": str(err)}, err.status)
    return JSONResponse({**_status(record, details=False), "decision": decision}, 200)


class BudgetChange(BaseModel):
    """A service's new rate budget: calls per second, and how many may go at once after a quiet spell."""

    model_config = {"extra": "forbid"}

    per_second: Any = Field(description="Calls per second for the whole deployment (a number above 0)")
    burst: Any = Field(description="Calls that may go at once after a quiet spell (a whole number, at least 1)")


@app.get("/budgets", dependencies=[_authorized("GET")], responses={401: {"description": "No or bad token"}},
         summary="Each HMS service's rate budget, shared by every worker")
async def list_budgets() -> JSONResponse:
    found = await in_agents_share(lambda: budgets(pooled=True).all())
    return JSONResponse({"budgets": [budget.as_dict() for budget in found]}, 200)


@app.put(
    "/budgets/{service}",
    summary="Change a service's rate budget at once, for every worker (admins only)",
    responses={
        200: {"description": "The budget as it now stands; the next reservation of every caller uses it"},
        400: {"description": "per_second or burst is not a budget: the field and why"},
        401: {"description": "No or bad token"},
        403: {"description": "Not an admin"},
        404: {"description": "No budget for this service"},
    },
)
async def change_budget(service: Annotated[str, Path(max_length=64)], request: Request,
                        user: Reader) -> JSONResponse:
    if not is_admin(user):
        raise HTTPException(403, "only an Airflow admin may change a rate budget")
    body = await _body_as(BudgetChange, request, "rate budget")
    try:
        changed = await in_agents_share(lambda: budgets(pooled=True).set(
            service, body.per_second, body.burst, by=user.get_name()))
    except BudgetError as err:
        raise _Invalid([{"field": err.field, "reason": err.reason}], "rate budget") from None
    if changed is None:
        return JSONResponse({"detail": f"no rate budget for service {service!r}"}, 404)
    return JSONResponse(changed.as_dict(), 200)


@app.get("/proposals/{proposal_id}/changes", dependencies=[_authorized("GET")],
         summary="What the proposal would change: each scope's live rule beside the proposed one",
         responses={404: {"description": "Unknown id"}, 502: {"description": "The policy service did not answer"}})
async def proposal_changes(proposal_id: ProposalId) -> JSONResponse:
    record = await in_agents_share(proposal_runs.get, proposal_id)
    if record is None:
        return _gone(proposal_id)
    try:
        scopes = await in_agents_share(changes_of, record)
    except ServiceError as err:
        return JSONResponse({"detail": f"the policy service did not say what is live: {err}"}, 502)
    return JSONResponse({"id": proposal_id, "scopes": [scope.as_dict() for scope in scopes]}, 200)
