"""A caller's share of an HMS service's rate budget (design.md §10), as `HmsHook` spends it.

Before each call the caller reserves a slot in the service's shared bucket (`records.budgets`). A
slot due within `[hms_management] budget_wait_seconds` is waited for here; a later one is too long
to sleep in a worker slot: a task is told (`WaitLonger`) and gives its slot back until just before
its slot (a reschedule, which uses no retry), keeping the reservation in its record. A caller that
is not a task (the sweep, the api-server) waits it out.

A 429 with Retry-After holds back every caller of the service for that long (the bucket's hold),
and the call is sent again at its next slot, up to THROTTLED_AGAIN times before it counts as the
service's failure (retried by Airflow like any 429).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from hms_management.orchestration.config import settings
from hms_management.orchestration.records import budgets

# A 429 without a Retry-After holds the service's callers this long.
DEFAULT_RETRY_AFTER_SECONDS = 1.0
THROTTLED_AGAIN = 5
# A call this late keeps its slot: a second's calls then fit design.md §10's 5 % to spare.
LATE = timedelta(seconds=0.05)
# A task gives its worker slot back for at least this long, or sleeps instead: a shorter reschedule
# saves no slot time (a task start takes longer), and one due at once meets an Airflow 3.3.2 race in
# which the scheduler runs it again as a new try (DagRun.schedule_tis reads a stale state), using a retry.
AWAY_AT_LEAST = 0.5


class WaitLonger(Exception):  # noqa: N818 (a signal to the task, not an error)
    """The reserved slot is further off than a task should sleep: give the worker slot back until then."""

    def __init__(self, service: str, slot: datetime, seconds: float) -> None:
        super().__init__(f"the rate budget of {service} has a slot for this call at {slot.isoformat()}, "
                         f"in {seconds:.1f} s")
        self.service, self.slot, self.seconds = service, slot, seconds


class RateBudget:
    """One caller's reservations in one service's budget."""

    def __init__(self, service: str, *, reserved: datetime | None = None, may_wait_longer: bool = False,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.service = service
        self.reserved = reserved  # a slot kept from an earlier try, or reserved with others (`reserve_for`)
        self.may_wait_longer = may_wait_longer  # raise WaitLonger instead of sleeping a long wait
        self.clock = clock  # the database's clock without asking it (`reserve_for`), else asked

    def take(self) -> None:
        """Return when this call may go: at its slot (slept for, if short), or raise WaitLonger."""
        if not settings().rate_budgets:  # switched off to measure what the limiter costs
            return
        store = budgets()
        if self.reserved is not None:
            slot, now = self.reserved, (self.clock or store.now)()
            self.reserved = None
            if slot < now - LATE:  # back too late: a late call could crowd the calls due after it
                self.take()
                return
        else:
            reservation = store.reserve(self.service)
            if reservation is None:  # the service has no budget
                return
            slot, now = reservation.slots[0], reservation.now
        wait = (slot - now).total_seconds()
        if wait > settings().budget_wait_seconds + AWAY_AT_LEAST and self.may_wait_longer:
            raise WaitLonger(self.service, slot, wait)
        if wait > 0:
            time.sleep(wait)

    @classmethod
    def reserve_for(cls, service: str, targets: list[str], *, may_wait_longer: bool = False) -> dict[str, RateBudget]:
        """One budget per target, their slots reserved together: one statement for a step's calls
        instead of one each (design.md §11's fan-out)."""
        reservation = budgets().reserve(service, len(targets)) if settings().rate_budgets and targets else None
        if reservation is None:  # switched off, or the service has no budget: each call goes at once
            return {target: cls(service, may_wait_longer=may_wait_longer) for target in targets}
        started, now = time.monotonic(), reservation.now

        def clock() -> datetime:  # the database's clock, carried forward by this process's
            return now + timedelta(seconds=time.monotonic() - started)

        return {target: cls(service, reserved=slot, may_wait_longer=may_wait_longer, clock=clock)
                for target, slot in zip(targets, reservation.slots, strict=True)}

    def throttled(self, retry_after: float | None) -> None:
        """The service answered 429: hold every caller back for Retry-After (or a second)."""
        if not settings().rate_budgets:
            return
        budgets().hold(self.service, retry_after or DEFAULT_RETRY_AFTER_SECONDS)
