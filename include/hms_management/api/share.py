"""The agents' share of the api-server: `/management`'s database work runs in a thread budget of its own.

The api-server serves `/management` and the Airflow UI from one process. On the thread pool they
share, fifty agents polling and submitting can hold every thread, and the UI's requests wait for one.
With a budget of its own (`[hms_management] management_concurrency`), the crowd queues here,
awaiting, holding no thread and at most that many database connections. Measured (README
"Reliability"): an analyst's runs list under 2,000 agents' requests, p95 4.8 s → 2.9 s; the rest
of its wait is the one api-server process itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from anyio import CapacityLimiter, to_thread

from hms_management.orchestration.config import settings

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def _budget() -> CapacityLimiter:
    return CapacityLimiter(settings().management_concurrency)


async def in_agents_share(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` in a worker thread, once the agents' budget has room."""
    return await to_thread.run_sync(functools.partial(work, *args, **kwargs), limiter=_budget())
