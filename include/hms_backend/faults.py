"""Misbehaviour on demand and what each route went through, for tests and benchmarks.

Faults make the next calls of a route slow, answer them with anything (an error, or a 200 whose
body no HMS service would send), or hold the real answer after the handler applied its side effect,
as a network that loses answers would, until the hold is over or the faults are cleared. Stats count
per route the calls, the side effects really applied, the faults that answered instead of the
handler and the most calls in flight at once. The latter proves a concurrency budget from the
outside: if Airflow's pool allows 4, max_in_flight never exceeds 4. They also list the calls whose
answer is held right now, by client address and Idempotency-Key: a test can kill a client that is
provably in the middle of a call.

Both are touched only from the event loop, one request step at a time, so they need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

UNTIL_CLEARED = -1
INJECTED_ERROR = '{"error":"injected fault"}'
NO_BODY_STATUSES = (204, 304)  # HTTP sends these without a body


def route_key(method: str, route: str) -> str:
    """How faults and stats name a route: method and path template, e.g. `POST /svc/policy`."""
    return f"{method.upper()} {route}"


@dataclass
class Fault:
    route: str
    method: str
    status: int | None  # None: the handler answers, after latency_ms and then held for hold_answer_ms
    times: int  # calls left to hit; UNTIL_CLEARED for all of them
    latency_ms: int
    rate: float  # share of calls that get the fault, for error-rate benchmarks
    body: str | None = None  # sent as-is instead of INJECTED_ERROR
    content_type: str = "application/json"
    hold_answer_ms: int = 0  # until then, or until the faults are cleared

    @property
    def key(self) -> str:
        return route_key(self.method, self.route)

    @property
    def answer_body(self) -> bytes:
        """What a fault with a status sends."""
        if self.status in NO_BODY_STATUSES:
            return b""
        return (INJECTED_ERROR if self.body is None else self.body).encode()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._faults: dict[str, Fault] = {}
        self._rng = rng or random.Random()
        self._holds: set[asyncio.Future[None]] = set()

    def set(self, fault: Fault) -> None:
        """Put a fault on its route, replacing the one it had."""
        self._faults[fault.key] = fault

    def clear(self) -> None:
        """No more faults; the answers held so far go out now."""
        self._faults.clear()
        for hold in self._holds:
            # Each on its own loop's thread: a test client may serve requests from more than one.
            hold.get_loop().call_soon_threadsafe(_release, hold)

    async def hold(self, fault: Fault) -> None:
        """Wait out the fault's hold, or until the faults are cleared."""
        hold = asyncio.get_running_loop().create_future()
        self._holds.add(hold)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold, fault.hold_answer_ms / 1000)
        finally:
            self._holds.discard(hold)

    def faults(self) -> list[Fault]:
        return list(self._faults.values())

    def draw(self, key: str) -> Fault | None:
        """The fault this call of the route gets, if any; it counts against the fault's times."""
        fault = self._faults.get(key)
        if fault is None or self._rng.random() >= fault.rate:
            return None
        if fault.times != UNTIL_CLEARED:
            fault.times -= 1
            if fault.times == 0:
                del self._faults[key]
        return fault


def _release(hold: asyncio.Future[None]) -> None:
    if not hold.done():
        hold.set_result(None)


@dataclass
class RouteCounters:
    calls: int = 0
    side_effects: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    faults_served: int = 0
    # The calls whose answer a fault holds right now: {"client": "host:port", "idempotency_key": ...}.
    held: list[dict[str, str | None]] = field(default_factory=list)


class RouteStats:
    def __init__(self, keys: Iterable[str]) -> None:
        self._routes = {key: RouteCounters() for key in keys}

    def __contains__(self, key: str) -> bool:
        return key in self._routes

    @contextmanager
    def call(self, key: str) -> Generator[None, None, None]:
        """Count a call of the route and keep it in flight until the block ends."""
        counters = self._routes[key]
        counters.calls += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            yield
        finally:
            counters.in_flight -= 1

    @contextmanager
    def holding(self, key: str, client: str, idempotency_key: str | None) -> Generator[None, None, None]:
        """List a call as held, with who made it, until the block ends."""
        held = {"client": client, "idempotency_key": idempotency_key}
        self._routes[key].held.append(held)
        try:
            yield
        finally:
            self._routes[key].held.remove(held)

    def count_side_effect(self, key: str) -> None:
        self._routes[key].side_effects += 1

    def count_fault(self, key: str) -> None:
        self._routes[key].faults_served += 1

    def reset(self) -> None:
        """Start counting afresh; calls in flight right now stay in flight."""
        for counters in self._routes.values():
            counters.calls = counters.side_effects = counters.faults_served = 0
            counters.max_in_flight = counters.in_flight

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {key: asdict(counters) for key, counters in sorted(self._routes.items())}
