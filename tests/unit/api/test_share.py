"""The agents' share: no more `/management` database work at once than the setting allows, the rest waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from hms_management.api import share


@pytest.fixture
def budget_of(monkeypatch):
    def set_budget(n: int) -> None:
        monkeypatch.setenv("AIRFLOW__HMS_MANAGEMENT__MANAGEMENT_CONCURRENCY", str(n))
        share._budget.cache_clear()

    yield set_budget
    share._budget.cache_clear()


def test_twenty_requests_never_do_more_than_the_budgets_work_at_once_and_all_are_answered(budget_of):
    budget_of(3)
    lock, at_work, most = threading.Lock(), [0], [0]

    def read(n: int) -> int:
        with lock:
            at_work[0] += 1
            most[0] = max(most[0], at_work[0])
        time.sleep(0.02)
        with lock:
            at_work[0] -= 1
        return n

    async def crowd() -> list[int]:
        return await asyncio.gather(*(share.in_agents_share(read, n) for n in range(20)))

    assert asyncio.run(crowd()) == list(range(20))
    assert most[0] == 3
