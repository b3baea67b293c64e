"""The agents' share of the api-server: `/management`'s database work runs in a thread budget of its own.

The api-server's processes serve `/management` and the Airflow UI alike. On the thread pool they
share, fifty agents polling and submitting can hold every thread, and every running thread takes
turns at the GIL from the UI's requests. With a budget of its own (`[hms_management]
management_concurrency`, per process), the crowd queues here, awaiting, holding no thread and at
most that many database connections, and the analysts' pages keep their turn (measured:
docs/reliability.md, "Load").
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
