"""Refuse a bad proposal at Airflow's door: before a run exists, with a 400 that names the field.

Airflow validates each Param on its own and keeps unknown conf keys silently. This root middleware
of the api-server checks `POST /api/v2/dags/proposal_orchestration/dagRuns` bodies with the same
proposal model as the DAG's first task, and fixes the run id to `proposal__<id>` so that a second
submission of a proposal meets the first run (409) instead of starting another.

It only judges callers allowed to trigger the DAG; anyone else reaches Airflow's own 401/403. Once
Airflow has created the run, the proposal's record is admitted (`proposals.admit`), as for a
proposal submitted through /management.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hms_management.domain.priority import run_after_for
from hms_management.domain.proposal import DAG_ID, InvalidProposal, JsonBodyError, load_json, parse_proposal, run_id_for
from hms_management.orchestration.config import deployment

log = logging.getLogger(__name__)
TRIGGER_PATH = f"/api/v2/dags/{DAG_ID}/dagRuns"
MAX_BODY_BYTES = 1024 * 1024


def admission_errors(body: dict[str, Any]) -> list[dict[str, str]]:
    """What is wrong with a trigger body for the proposal DAG; empty when it may start a run."""
    conf = body.get("conf")
    if conf is None:
        return [{"field": "conf", "reason": "is required: the conf of a run is its proposal"}]
    try:
        proposal = parse_proposal(conf, deployment())
    except InvalidProposal as err:
        return [{"field": f"conf.{e['field']}", "reason": e["reason"]} for e in err.errors]
    run_id = body.get("dag_run_id")
    if run_id is not None and run_id != proposal.run_id:
        return [{"field": "dag_run_id", "reason": f"must be {proposal.run_id!r}: one run per proposal"}]
    return []


def refusal(errors: list[dict[str, str]], what: str = "proposal") -> dict[str, Any]:
    """The body of a 400: one line for people, and each field with its reason for programs."""
    return {"detail": f"Invalid {what}: " + "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            "errors": errors}


def admitted_body(body: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The body Airflow gets: the run id derived from the proposal id when the caller left it out,
    and a high-priority proposal dated ahead of the queue (queued runs start by `run_after`)."""
    admitted = {**body, "dag_run_id": run_id_for(body["conf"]["id"])}
    priority = body["conf"].get("priority", "normal")
    if priority != "normal" and body.get("run_after") is None:
        admitted["run_after"] = run_after_for(priority, now).isoformat()
    return admitted


class ProposalAdmissionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == TRIGGER_PATH):
            await self.app(scope, receive, send)
            return
        user = await _trigger_user(scope)
        if user is None:
            await self.app(scope, receive, send)
            return

        if not is_json(dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")):
            # FastAPI would read a body without a content type as JSON.
            await _answer(send, 415, {"detail": "Content-Type must be application/json"})
            return
        raw = await read_body(receive, MAX_BODY_BYTES)
        if raw is None:
            await _answer(send, 413, {"detail": f"request body is larger than {MAX_BODY_BYTES} bytes"})
            return
        try:
            body = load_json(raw)
        except JsonBodyError as err:  # NaN, Infinity or deep nesting would reach the database
            await _answer(send, 400, refusal([{"field": "(body)", "reason": str(err)}]))
            return
        if not isinstance(body, dict):  # not ours to judge: Airflow answers 422 as usual
            await self.app(scope, _replay(raw), send)
            return

        errors = admission_errors(body)
        if errors:
            await _answer(send, 400, refusal(errors))
            return

        now = datetime.now(UTC)
        raw = json.dumps(admitted_body(body, now=now)).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        answered: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
            await send(message)

        await self.app({**scope, "headers": headers}, _replay(raw), watch)
        if answered == [200]:  # the run exists now: its record follows
            await _admit(parse_proposal(body["conf"]), user.get_name(), now)


async def _admit(proposal: Any, user_name: str, now: datetime) -> None:
    """The record of a proposal whose run Airflow has just created. The answer is sent already: if
    the record cannot be written now, the run's listener or first step writes it."""
    from anyio import to_thread

    from hms_management.api.proposals import admit

    try:
        await to_thread.run_sync(functools.partial(admit, proposal, user_name, now=now))
    except Exception:
        log.exception("could not admit the record of %s; its run will write it", proposal.id)


async def _trigger_user(scope: Scope) -> Any | None:
    """The caller, if they may trigger the DAG (anyone else gets Airflow's own 401/403)."""
    from starlette.requests import HTTPConnection

    from hms_management.api.auth import may, user_of

    user = await user_of(HTTPConnection(scope))
    return user if user is not None and may(user, "POST") else None


def is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `limit` (never held in memory beyond it)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(raw: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return receive


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
    })
    await send({"type": "http.response.body", "body": payload})
