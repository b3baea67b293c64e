"""What every call of an HMS route goes through before its handler, in this order.

1. stats: the call is counted on arrival and stays in flight until its answer goes out (a held one too);
2. auth: a valid bearer token, except on public routes (health, stats);
3. faults: a rate limit may refuse the call at once (429); an injected fault may delay the call,
   answer it instead of the handler, or hold the handler's answer for a while after the handler ran;
4. idempotency: a POST with an Idempotency-Key gets the first 2xx answer given for that key on
   that path, and the handler runs at most once to produce it. The answer is kept by the write
   that applies the side effect, in the same transaction (idempotency.py). A POST that only asks
   a question (QueryRoute) answers afresh every time.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from hms_backend.auth import InvalidToken, verify_authorization
from hms_backend.faults import RATE_LIMITED, Fault, FaultInjector, RouteStats, route_key
from hms_backend.idempotency import UnkeptAnswer, keyed_request
from hms_backend.settings import Settings
from hms_backend.storage import Answered, Storage

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH = 255

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An answer other than success: rendered as {"error": message, **details}."""

    def __init__(
        self, status_code: int, message: str, *, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers
        self.details = details

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message, **self.details}, self.status_code, headers=self.headers)


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds it or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: Counter[Hashable] = Counter()

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncGenerator[None, None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


@dataclass(frozen=True)
class Backend:
    """Everything a request may need, built once per app start."""

    settings: Settings
    storage: Storage
    faults: FaultInjector
    stats: RouteStats
    idempotency_locks: KeyedLocks


def backend_of(request: Request) -> Backend:
    return request.app.state.backend


def respond(request: Request, answered: Answered) -> Response:
    """Send what a write answered, counting its side effect if it applied one (not a replay, not a fault)."""
    if answered.applied:
        backend_of(request).stats.count_side_effect(route_key(request.method, request.scope["route"].path))
    return answered.answer.response()


class ServiceRoute(APIRoute):
    """A route of an HMS service: counted, token-guarded, open to faults, idempotent for POSTs."""

    requires_token = True
    keeps_answers = True

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()

        async def serve(request: Request) -> Response:
            backend = backend_of(request)
            key = route_key(request.method, self.path)
            with backend.stats.call(key) as arrived:
                if self.requires_token:
                    _authenticate(request, backend.settings.jwt_secret)
                fault = backend.faults.draw(key, scope=await _scope_of(request) if backend.faults.scoped(key) else None)
                if fault is not None:
                    # Refused at once, as a gateway in front of the service would: no latency, no handler.
                    if not backend.faults.lets_through(fault, arrived):
                        backend.stats.count_rate_limited(key)
                        return _rate_limited_answer(fault)
                    await asyncio.sleep(fault.latency_ms / 1000)
                    if fault.status is not None:
                        backend.stats.count_fault(key)
                        return _injected_answer(fault)
                idempotency_key = request.headers.get(IDEMPOTENCY_HEADER) if self.keeps_answers else None
                if request.method == "POST" and idempotency_key is not None:
                    response = await _answer_once(handle, request, idempotency_key, backend)
                else:
                    response = await handle(request)
                if fault is not None and fault.hold_answer_ms:
                    # The side effect is applied and its answer kept; only the sending waits, still
                    # in flight but outside the idempotency lock, so a retry of a client that gave up
                    # gets the kept answer at once.
                    client = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
                    with backend.stats.holding(key, client, idempotency_key):
                        await backend.faults.hold(fault)
                return response

        return serve


class PublicRoute(ServiceRoute):
    """A route anyone may call: health and stats, for probes and benchmark dashboards."""

    requires_token = False


class QueryRoute(ServiceRoute):
    """A POST that only asks a question (its body too rich for a query string) and changes nothing.

    An Idempotency-Key is ignored: a replay of an earlier answer would hide what changed since, such
    as a revocation or a suspension, and there is no side effect to guard.
    """

    keeps_answers = False


def _authenticate(request: Request, secret: str) -> None:
    try:
        verify_authorization(request.headers.get("Authorization"), secret)
    except InvalidToken as err:
        raise ApiError(401, str(err), headers={"WWW-Authenticate": "Bearer"}) from None


def _rate_limited_answer(fault: Fault) -> Response:
    return ApiError(
        429,
        RATE_LIMITED,
        headers={"Retry-After": fault.retry_after_header},
        retry_after_s=fault.retry_after_s,
        limit_per_second=fault.limit_per_second,
        route=fault.key,
    ).response()


def _injected_answer(fault: Fault) -> Response:
    # Sent as the fault says, byte for byte: a test may want a body no HMS service would send.
    return Response(fault.answer_body, fault.status, headers={"Content-Type": fault.content_type})


async def _answer_once(handle: Handler, request: Request, idempotency_key: str, backend: Backend) -> Response:
    if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ApiError(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    path = request.url.path
    # The lock makes a duplicate that arrives while the first is still being handled wait for
    # the first's answer instead of applying the side effect a second time.
    async with backend.idempotency_locks.hold((path, idempotency_key)):
        kept = backend.storage.kept_answer(path, idempotency_key)
        if kept is not None:
            return kept.response(headers={REPLAY_HEADER: "true"})
        with keyed_request(path, idempotency_key) as keyed:
            response = await handle(request)
        given = keyed.answer
        if 200 <= response.status_code < 300 and (
            given is None or (given.status_code, given.body) != (response.status_code, bytes(response.body))
        ):
            raise UnkeptAnswer(f"{path} answered {response.status_code} with an answer its write did not keep")
        return response


async def _scope_of(request: Request) -> str | None:
    """The policy scope a call's JSON body names (`default` when it names none), for a scoped fault."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    return body.get("scope") or "default" if isinstance(body, dict) else None
