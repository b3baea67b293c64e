"""The reference HMS backend's HTTP API: governance, policy, notifications, audit and backlog.

Every route answers JSON; every error is {"error": message, ...}. What each call goes through
before its handler (stats, auth, faults, idempotency) lives in routing.py; handlers only validate,
write through Storage and count the side effects they really applied.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hms_backend import governance
from hms_backend.faults import Fault, FaultInjector, RouteStats, route_key
from hms_backend.routing import (
    ApiError,
    Backend,
    KeyedLocks,
    PublicRoute,
    ServiceRoute,
    backend_of,
    record_side_effect,
)
from hms_backend.schemas import (
    AuditEntry,
    BacklogProposal,
    FaultSpec,
    Notification,
    PolicyProposal,
    RejectedMark,
    ReviewDecision,
    TakenMark,
    ValidationRequest,
)
from hms_backend.settings import Settings
from hms_backend.storage import PENDING, REJECTED, TAKEN, Storage

MAX_BACKLOG_PAGE = 10_000

public = APIRouter(route_class=PublicRoute)
services = APIRouter(route_class=ServiceRoute)


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
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    return app


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error.response()


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
async def validate_proposal(body: ValidationRequest, request: Request) -> JSONResponse:
    proposal = body.proposal.as_sent()
    verdict = governance.judge(proposal)
    decision = backend_of(request).storage.record_decision(
        proposal=proposal, status=verdict.status, reason=verdict.reason
    )
    record_side_effect(request)
    answer = {"decision_id": decision["decision_id"], "reason": verdict.reason}
    if verdict.status == governance.DENIED:
        return JSONResponse({"error": verdict.reason, **answer}, 400)
    if verdict.status == governance.REVIEW:
        return JSONResponse({"status": verdict.status, **answer}, 202)
    return JSONResponse({"status": verdict.status, **answer}, 200)


@services.get("/gov/decisions")
async def list_decisions(
    request: Request,
    status: Literal["approved", "denied", "review"] | None = None,
    proposal_id: Annotated[str | None, Query(alias="proposalId")] = None,
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.decisions(status=status, proposal_id=proposal_id)}


@services.get("/gov/decisions/{decision_id}")
async def get_decision(decision_id: str, request: Request) -> dict[str, Any]:
    decision = backend_of(request).storage.decision(decision_id)
    if decision is None:
        raise ApiError(404, f"no decision {decision_id}")
    return decision


@services.post("/gov/decisions/{decision_id}")
async def review_decision(decision_id: str, body: ReviewDecision, request: Request) -> dict[str, Any]:
    verdict = governance.reviewed(approved=body.approved, reviewer=body.reviewer, reason=body.reason)
    write = backend_of(request).storage.settle_review(
        decision_id, status=verdict.status, reason=verdict.reason, reviewer=body.reviewer
    )
    if write is None:
        raise ApiError(404, f"no decision {decision_id}")
    if not write.applied:
        current = write.record["status"]
        raise ApiError(409, f"decision {decision_id} is already {current}", status=current, decision_id=decision_id)
    record_side_effect(request)
    return write.record


# Policy


@services.post("/svc/policy")
async def apply_policy(body: PolicyProposal, request: Request) -> dict[str, Any]:
    policy = backend_of(request).storage.apply_policy(body.as_sent())
    record_side_effect(request)
    return policy


@services.get("/svc/policy/{proposal_id}")
async def policy_versions(proposal_id: str, request: Request) -> dict[str, Any]:
    versions = backend_of(request).storage.policy_versions(proposal_id)
    if not versions:
        raise ApiError(404, f"no policy applied for proposal {proposal_id}")
    return {"proposal_id": proposal_id, "versions": versions}


# Notifications and audit


@services.post("/notifications")
async def send_notification(body: Notification, request: Request) -> dict[str, Any]:
    notification = backend_of(request).storage.record_notification(body.as_sent())
    record_side_effect(request)
    return notification


@services.get("/notifications")
async def list_notifications(
    request: Request, proposal_id: Annotated[str | None, Query(alias="proposalId")] = None
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.notifications(proposal_id=proposal_id)}


@services.post("/audit/log")
async def append_audit(body: AuditEntry, request: Request) -> dict[str, Any]:
    recorded = backend_of(request).storage.append_audit(body.as_sent())
    record_side_effect(request)
    return recorded


@services.get("/audit/log")
async def audit_log(
    request: Request, proposal_id: Annotated[str | None, Query(alias="proposalId")] = None
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.audit_entries(proposal_id=proposal_id)}


# Backlog


@services.post("/backlog/proposals")
async def queue_proposal(body: BacklogProposal, request: Request) -> JSONResponse:
    write = backend_of(request).storage.queue_proposal(body.as_sent())
    if write.applied:
        record_side_effect(request)
    entry = write.record
    answer = {"id": entry["id"], "status": entry["status"], "queued_at": entry["queued_at"]}
    # Taken: the proposal has its run already; nothing was queued.
    return JSONResponse(answer, 202 if entry["status"] == PENDING else 200)


@services.get("/backlog/proposals")
async def list_backlog(
    request: Request,
    status: Literal["pending", "taken", "rejected"] = PENDING,
    limit: Annotated[int, Query(ge=1, le=MAX_BACKLOG_PAGE)] = 100,
) -> dict[str, Any]:
    return {"items": backend_of(request).storage.backlog(status=status, limit=limit)}


@services.post("/backlog/proposals/{proposal_id}/taken")
async def mark_taken(proposal_id: str, request: Request, body: TakenMark | None = None) -> dict[str, Any]:
    return _settle_backlog_entry(request, proposal_id, TAKEN, run_id=body.run_id if body else None)


@services.post("/backlog/proposals/{proposal_id}/rejected")
async def mark_rejected(proposal_id: str, body: RejectedMark, request: Request) -> dict[str, Any]:
    return _settle_backlog_entry(request, proposal_id, REJECTED, reason=body.reason)


def _settle_backlog_entry(
    request: Request, proposal_id: str, status: str, *, reason: str | None = None, run_id: str | None = None
) -> dict[str, Any]:
    write = backend_of(request).storage.settle_backlog_entry(proposal_id, status=status, reason=reason, run_id=run_id)
    if write is None:
        raise ApiError(404, f"no backlog entry {proposal_id}")
    current = write.record["status"]
    if current != status:
        raise ApiError(409, f"backlog entry {proposal_id} is already {current}", status=current, id=proposal_id)
    if write.applied:
        record_side_effect(request)
    return write.record


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
