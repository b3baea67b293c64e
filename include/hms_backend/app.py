"""The reference HMS backend's HTTP API: governance (with checks, revocations and suspensions),
policy (per scope), notifications, audit and backlog.

Every route answers JSON; every error is {"error": message, ...}. What each call goes through
before its handler (stats, auth, faults, idempotency) lives in routing.py; handlers only validate
and write through Storage, telling it how the route answers the write (an answer rule), so that
the answer can be kept with the side effect for an Idempotency-Key.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hms_backend import cursors, governance
from hms_backend.faults import Fault, FaultInjector, RouteStats, route_key
from hms_backend.idempotency import Answer
from hms_backend.routing import (
    ApiError,
    Backend,
    KeyedLocks,
    PublicRoute,
    QueryRoute,
    ServiceRoute,
    backend_of,
    respond,
)
from hms_backend.schemas import (
    AuditEntry,
    BacklogProposal,
    FaultSpec,
    Notification,
    PolicyProposal,
    RejectedMark,
    ReviewDecision,
    Revocation,
    StepCheck,
    Suspension,
    TakenMark,
    ValidationRequest,
)
from hms_backend.settings import Settings
from hms_backend.storage import PENDING, REJECTED, TAKEN, AnswerRule, NoSuchRecord, Storage, Write, timestamp

MAX_BACKLOG_PAGE = 10_000
MAX_DECISIONS_PAGE = 1_000
DECISIONS_FEED_PAGE = 100

public = APIRouter(route_class=PublicRoute)
services = APIRouter(route_class=ServiceRoute)
questions = APIRouter(route_class=QueryRoute)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        routes = [
            route_key(method, route.path)
            for route in app.routes
            if isinstance(route, ServiceRoute)
            for method in route.methods
        ]
        with Storage.open(settings.database_path) as storage:
            app.state.backend = Backend(settings, storage, FaultInjector(), RouteStats(routes), KeyedLocks())
            yield

    app = FastAPI(
        title="HMS reference backend",
        summary="Governance, policy, notifications, audit and backlog for the HMS Management Layer.",
        lifespan=lifespan,
    )
    app.include_router(public)
    app.include_router(services)
    app.include_router(questions)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(NoSuchRecord, _no_such_record)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    return app


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error.response()


async def _no_such_record(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, NoSuchRecord)
    return JSONResponse({"error": str(error)}, 404)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return JSONResponse({"error": error.detail}, error.status_code, headers=error.headers)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    body_refused = any(e["loc"][:1] == ("body",) for e in error.errors())
    if body_refused and "json" not in request.headers.get("content-type", ""):
        # FastAPI reads a body as JSON only when it says so; `curl -d` alone sends a form.
        problems.append("send the body as JSON, with Content-Type: application/json")
    return JSONResponse(
        {"error": "invalid request: " + "; ".join(problems), "detail": jsonable_encoder(error.errors())}, 422
    )


# Health and stats: open, for probes and for benchmarks reading the budget a pool kept.


@public.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@public.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    return {"routes": backend_of(request).stats.snapshot()}


@services.delete("/stats")
async def reset_stats(request: Request) -> dict[str, Any]:
    backend = backend_of(request)
    backend.stats.reset()
    return {"routes": backend.stats.snapshot()}


# Governance


@services.post("/gov/validate")
async def validate_proposal(body: ValidationRequest, request: Request) -> Response:
    proposal = body.proposal.as_sent()
    verdict = governance.judge(proposal)
    written = backend_of(request).storage.record_decision(
        proposal=proposal, status=verdict.status, reason=verdict.reason, answer=_verdict_answer
    )
    return respond(request, written)


def _verdict_answer(write: Write) -> Answer:
    decision = write.record
    # created_at: when the proposal entered review, for a watcher that times reviews out.
    answer = {key: decision[key] for key in ("decision_id", "reason", "created_at")}
    if decision["status"] == governance.DENIED:
        return Answer.json({"error": decision["reason"], **answer}, 400)
    if decision["status"] == governance.REVIEW:
        return Answer.json({"status": decision["status"], **answer}, 202)
    return Answer.json({"status": decision["status"], **answer}, 200)


@services.get("/gov/decisions")
async def list_decisions(
    request: Request,
    status: governance.DecisionStatus | None = None,
    proposal_id: Annotated[str | None, Query(alias="proposalId")] = None,
    created_after: Annotated[str | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[str | None, Query(alias="createdBefore")] = None,
    decided_since: Annotated[str | None, Query(alias="decidedSince")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_DECISIONS_PAGE)] = None,
) -> dict[str, Any]:
    """A listing by status, proposal and creation window, {"items"}; or the feed of reviewers' decisions
    and revocations.

    decidedSince asks for the feed, {"items", "next"} (an empty one: from the start); so does limit
    without any listing filter. Without parameters, the listing of every decision, as ever.
    """
    filters = {
        "status": status,
        "proposalId": proposal_id,
        "createdAfter": created_after,
        "createdBefore": created_before,
    }
    filtered = [name for name, value in filters.items() if value is not None]
    if decided_since is not None and filtered:
        raise ApiError(400, f"decidedSince asks for the feed of reviewers' decisions; drop {', '.join(filtered)}")
    storage = backend_of(request).storage
    if decided_since is not None or (limit is not None and not filtered):
        return _decided_reviews(storage, decided_since, limit or DECISIONS_FEED_PAGE)
    items = storage.decisions(
        status=status,
        proposal_id=proposal_id,
        created_after=_stored_timestamp("createdAfter", created_after),
        created_before=_stored_timestamp("createdBefore", created_before),
        limit=limit,
    )
    return {"items": items}


def _decided_reviews(storage: Storage, decided_since: str | None, limit: int) -> dict[str, Any]:
    try:
        after_seq = cursors.decode(decided_since or "")
    except cursors.InvalidCursor:
        raise ApiError(
            400, "decidedSince is not a cursor of this feed: pass the next of an earlier answer, or none to start"
        ) from None
    items, last_seq = storage.decided_reviews(after_seq=after_seq, limit=limit)
    # No news: the cursor comes back as it was given, so a watcher may keep it as it is.
    return {"items": items, "next": cursors.encode(last_seq) if items or not decided_since else decided_since}


def _stored_timestamp(name: str, value: str | None) -> str | None:
    """An ISO-8601 query parameter as timestamps are stored (UTC, milliseconds), to compare as text."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        hint = " (a + in a query string reads as a space: send %2B, or Z for UTC)" if " " in value else ""
        raise ApiError(400, f"{name} must be an ISO-8601 timestamp with a time zone, got {value!r}{hint}") from None
    if moment.tzinfo is None:
        raise ApiError(400, f"{name} needs a time zone, e.g. {value}Z, got {value!r}")
    # Milliseconds truncated, as stored; truncation keeps both the exclusive and the inclusive bound exact.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@services.get("/gov/decisions/{decision_id}")
async def get_decision(decision_id: str, request: Request) -> dict[str, Any]:
    decision = backend_of(request).storage.decision(decision_id)
    if decision is None:
        raise ApiError(404, f"no decision {decision_id}")
    return decision


@services.post("/gov/decisions/{decision_id}")
async def review_decision(decision_id: str, body: ReviewDecision, request: Request) -> Response:
    verdict = governance.reviewed(approved=body.approved, reviewer=body.reviewer, reason=body.reason)
    written = backend_of(request).storage.settle_review(
        decision_id, status=verdict.status, reason=verdict.reason, reviewer=body.reviewer, answer=_review_answer
    )
    return respond(request, written)


def _review_answer(write: Write) -> Answer:
    decision = write.record
    if not write.applied:
        current, decision_id = decision["status"], decision["decision_id"]
        raise ApiError(409, f"decision {decision_id} is already {current}", status=current, decision_id=decision_id)
    return Answer.json(decision)


@services.post("/gov/decisions/{decision_id}/revoke")
async def revoke_decision(decision_id: str, body: Revocation, request: Request) -> Response:
    """Stop a proposal that governance approved, or that waits for a reviewer, before its next step."""
    written = backend_of(request).storage.revoke_decision(
        decision_id, reason=body.reason, by=body.by, answer=_revocation_answer
    )
    return respond(request, written)


def _revocation_answer(write: Write) -> Answer:
    decision = write.record
    if not write.applied:
        current, decision_id = decision["status"], decision["decision_id"]
        if current in governance.REVOCABLE:
            # Left as it was though revocable: its proposal's workflow has recorded its end.
            message = (
                f"proposal {decision['proposal_id']} has already ended: an applied policy is changed by a new"
                " proposal, not by a revocation"
            )
        else:
            message = f"decision {decision_id} is already {current}: there is nothing to revoke"
        raise ApiError(409, message, status=current, decision_id=decision_id)
    return Answer.json(decision)


@questions.post("/gov/check")
async def check_step(body: StepCheck, request: Request) -> dict[str, Any]:
    """Whether a proposal may take a step now: asked right before each call with a side effect.

    Whatever governance says is a 200 (the caller goes on only on approved); 404 and 409 mean the
    question named the wrong decision.
    """
    found = backend_of(request).storage.decision_for_step(body.decision_id, service=body.service)
    if found is None:
        raise ApiError(404, f"no decision {body.decision_id}")
    decision, suspension = found
    if decision["proposal_id"] != body.proposal_id:
        owner = decision["proposal_id"]
        raise ApiError(
            409,
            f"decision {body.decision_id} belongs to proposal {owner}, not {body.proposal_id}",
            decision_id=body.decision_id,
            proposal_id=owner,
        )
    return {**governance.step_check(decision, suspension), "checked_at": timestamp()}


# The kill switch: while a service is suspended, every check before a step that calls it says so.


@services.put("/gov/suspensions/{service}")
async def suspend_service(service: str, body: Suspension, request: Request) -> Response:
    storage = backend_of(request).storage
    return respond(request, storage.suspend(_suspendable(service), reason=body.reason, by=body.by))


@services.delete("/gov/suspensions/{service}")
async def lift_suspension(service: str, request: Request) -> Response:
    return respond(request, backend_of(request).storage.lift_suspension(_suspendable(service)))


@services.get("/gov/suspensions")
async def list_suspensions(request: Request) -> dict[str, Any]:
    return {"items": backend_of(request).storage.suspensions()}


def _suspendable(service: str) -> str:
    if service not in governance.SUSPENDABLE:
        names = ", ".join(governance.SUSPENDABLE)
        raise ApiError(400, f"no service {service!r} to suspend: it is one of {names}", service=service)
    return service


# Policy


@services.post("/svc/policy")
async def apply_policy(body: PolicyProposal, request: Request) -> Response:
    return respond(request, backend_of(request).storage.apply_policy(body.as_sent(), scope=body.scope))


# Before /svc/policy/{proposal_id}: the first route that matches answers, and scopes hold slashes.
@services.get("/svc/policy/scopes/{scope:path}")
async def live_rule(scope: str, request: Request) -> dict[str, Any]:
    rule = backend_of(request).storage.live_rule(scope)
    if rule is None:
        raise ApiError(404, f"no live rule for scope {scope}")
    return rule


@services.get("/svc/policy/{proposal_id}")
async def policy_versions(proposal_id: str, request: Request) -> dict[str, Any]:
    versions = backend_of(request).storage.policy_versions(proposal_id)
    if not versions:
        raise ApiError(404, f"no policy applied for proposal {proposal_id}")
    return {"proposal_id": proposal_id, "versions": versions}


# Notifications and audit


@services.post("/notifications")
async def send_notification(body: Notification, request: Request) -> Response:
    return respond(request, backend_of(request).storage.record_notification(body.as_sent()))


@services.get("/notifications")
async def list_notifications(
    request: Request,
    proposal_id: Annotated[str | None, Query(alias="proposalId")] = None,
    group: str | None = None,
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.notifications(proposal_id=proposal_id, group=group)}


@services.post("/audit/log")
async def append_audit(body: AuditEntry, request: Request) -> Response:
    return respond(request, backend_of(request).storage.append_audit(body.as_sent()))


@services.get("/audit/log")
async def audit_log(
    request: Request, proposal_id: Annotated[str | None, Query(alias="proposalId")] = None
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.audit_entries(proposal_id=proposal_id)}


# Backlog


@services.post("/backlog/proposals")
async def queue_proposal(body: BacklogProposal, request: Request) -> Response:
    return respond(request, backend_of(request).storage.queue_proposal(body.as_sent(), answer=_queued_answer))


def _queued_answer(write: Write) -> Answer:
    entry = write.record
    answer = {"id": entry["id"], "status": entry["status"], "queued_at": entry["queued_at"]}
    # Taken: the proposal has its run already; nothing was queued.
    return Answer.json(answer, 202 if entry["status"] == PENDING else 200)


@services.get("/backlog/proposals")
async def list_backlog(
    request: Request,
    status: Literal["pending", "taken", "rejected"] = PENDING,
    limit: Annotated[int, Query(ge=1, le=MAX_BACKLOG_PAGE)] = 100,
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.backlog(status=status, limit=limit)}


@services.post("/backlog/proposals/{proposal_id}/taken")
async def mark_taken(proposal_id: str, request: Request, body: TakenMark | None = None) -> Response:
    written = backend_of(request).storage.settle_backlog_entry(
        proposal_id, status=TAKEN, run_id=body.run_id if body else None, answer=_settled_answer(TAKEN)
    )
    return respond(request, written)


@services.post("/backlog/proposals/{proposal_id}/rejected")
async def mark_rejected(proposal_id: str, body: RejectedMark, request: Request) -> Response:
    written = backend_of(request).storage.settle_backlog_entry(
        proposal_id, status=REJECTED, reason=body.reason, redact=body.redact, answer=_settled_answer(REJECTED)
    )
    return respond(request, written)


def _settled_answer(status: str) -> AnswerRule:
    """Settling again as it was settled is a repeat (200); taken vs rejected is a contradiction (409)."""

    def answer(write: Write) -> Answer:
        entry = write.record
        if entry["status"] != status:
            current, proposal_id = entry["status"], entry["id"]
            raise ApiError(409, f"backlog entry {proposal_id} is already {current}", status=current, id=proposal_id)
        return Answer.json(entry)

    return answer


# Fault injection


@services.put("/admin/faults")
async def inject_fault(spec: FaultSpec, request: Request) -> dict[str, Any]:
    backend = backend_of(request)
    fault = Fault(**spec.model_dump())
    if fault.key not in backend.stats or fault.route.startswith("/admin/"):
        # A typo would otherwise be a fault that never fires, and a fault on the fault routes one
        # that cannot be cleared.
        raise ApiError(400, f"no route {fault.key} to inject a fault into")
    backend.faults.set(fault)
    return {"faults": [f.as_dict() for f in backend.faults.faults()]}


@services.get("/admin/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    return {"faults": [f.as_dict() for f in backend_of(request).faults.faults()]}


@services.delete("/admin/faults")
async def clear_faults(request: Request) -> dict[str, Any]:
    backend_of(request).faults.clear()
    return {"faults": []}
