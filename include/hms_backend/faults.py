"""Misbehaviour on demand and what each route went through, for tests and benchmarks.

Faults make the next calls of a route slow, answer them with anything (an error, or a 200 whose
body no HMS service would send), or hold the real answer after the handler applied its side effect,
as a network that loses answers would, until the hold is over or the faults are cleared. A rate
limit answers 429 to the calls beyond N in any second, as a service's gateway would. Stats count
per route the calls, the side effects really applied, the faults that answered instead of the
handler, the most calls in flight at once and the most received in one second. These prove a
budget from the outside: if Airflow's pool allows 4, max_in_flight never exceeds 4; if the rate
budget allows 20 a second, max_per_second never exceeds 20. They also list the calls whose answer
is held right now, by client address and Idempotency-Key: a test can kill a client that is
provably in the middle of a call.

Both are touched only from the event loop, one request step at a time, so they need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

UNTIL_CLEARED = -1
INJECTED_ERROR = '{"error":"injected fault"}'
NO_BODY_STATUSES = (204, 304)  # HTTP sends these without a body
RATE_LIMITED = "rate limit exceeded"

Clock = Callable[[], float]  # seconds, monotonic


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
    limit_per_second: int | None = None  # a rate limit: 429 beyond this many calls let through in a second
    retry_after_s: float | None = None  # what a rate limit's 429 tells the caller to wait
    scope: str | None = None  # only calls whose body names this policy scope

    @property
    def key(self) -> str:
        return route_key(self.method, self.route)

    @property
    def retry_after_header(self) -> str:
        """Retry-After in whole seconds, rounded up: HTTP has no fractions, and less would invite an early retry."""
        return str(math.ceil(self.retry_after_s or 0))

    @property
    def answer_body(self) -> bytes:
        """What a fault with a status sends."""
        if self.status in NO_BODY_STATUSES:
            return b""
        return (INJECTED_ERROR if self.body is None else self.body).encode()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SlidingSecond:
    """The times of the calls in the last second, to count them in the window (t - 1, t] ending now.

    Half-open: a call exactly one second ago has left the window. Only calls inside it are kept, so
    memory is bounded by the rate, not by the number of calls.
    """

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        while self._times and self._times[0] <= now - 1:
            self._times.popleft()
        return len(self._times)

    def add(self, now: float) -> int:
        """Count a call at now (not before the last one added); how many the window ending now holds."""
        self._times.append(now)
        return self.count(now)

    def clear(self) -> None:
        self._times.clear()


class FaultInjector:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._faults: dict[str, Fault] = {}
        self._rng = rng or random.Random()
        self._holds: set[asyncio.Future[None]] = set()
        # The calls each rate limit let through in the last second; a new fault starts afresh.
        self._let_through: dict[str, SlidingSecond] = {}

    def set(self, fault: Fault) -> None:
        """Put a fault on its route, replacing the one it had."""
        self._faults[fault.key] = fault
        self._let_through.pop(fault.key, None)

    def clear(self) -> None:
        """No more faults; the answers held so far go out now."""
        self._faults.clear()
        self._let_through.clear()
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

    def scoped(self, key: str) -> bool:
        """Whether the route's fault hits only the calls for one policy scope (the body says which)."""
        fault = self._faults.get(key)
        return fault is not None and fault.scope is not None

    def draw(self, key: str, *, scope: str | None = None) -> Fault | None:
        """The fault this call of the route gets, if any; it counts against the fault's times."""
        fault = self._faults.get(key)
        if fault is None or (fault.scope is not None and fault.scope != scope) or self._rng.random() >= fault.rate:
            return None
        if fault.times != UNTIL_CLEARED:
            fault.times -= 1
            if fault.times == 0:
                del self._faults[key]
        return fault

    def lets_through(self, fault: Fault, arrived: float) -> bool:
        """Whether a rate-limited fault lets a call that arrived then through, counting it if so.

        Only calls let through count towards the limit: a client that keeps to it is never refused,
        however many refused calls others make.
        """
        if fault.limit_per_second is None:
            return True
        window = self._let_through.setdefault(fault.key, SlidingSecond())
        if window.count(arrived) >= fault.limit_per_second:
            return False
        window.add(arrived)
        return True


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
    max_per_second: int = 0  # the most calls received in any window (t - 1 s, t]
    rate_limited: int = 0  # 429s a rate limit answered instead of the handler
    # The calls whose answer a fault holds right now: {"client": "host:port", "idempotency_key": ...}.
    held: list[dict[str, str | None]] = field(default_factory=list)


class RouteStats:
    def __init__(self, keys: Iterable[str], clock: Clock = time.monotonic) -> None:
        self._routes = {key: RouteCounters() for key in keys}
        self._arrivals = {key: SlidingSecond() for key in self._routes}
        self._clock = clock

    def __contains__(self, key: str) -> bool:
        return key in self._routes

    @contextmanager
    def call(self, key: str) -> Generator[float, None, None]:
        """Count a call of the route on arrival, and keep it in flight until the block ends; yields when it arrived."""
        arrived = self._clock()
        counters = self._routes[key]
        counters.calls += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        counters.max_per_second = max(counters.max_per_second, self._arrivals[key].add(arrived))
        try:
            yield arrived
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

    def count_rate_limited(self, key: str) -> None:
        self._routes[key].rate_limited += 1

    def reset(self) -> None:
        """Start counting afresh; calls in flight right now stay in flight, calls before now leave every window."""
        for counters in self._routes.values():
            counters.calls = counters.side_effects = counters.faults_served = 0
            counters.max_per_second = counters.rate_limited = 0
            counters.max_in_flight = counters.in_flight
        for arrivals in self._arrivals.values():
            arrivals.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {key: asdict(counters) for key, counters in sorted(self._routes.items())}
