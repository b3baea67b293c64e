"""Rate budgets: calls per second per HMS service, one bucket for the whole deployment (design.md §10).

Pools bound the calls in flight; a budget bounds the calls per second. Every worker on every
machine reserves its calls in the same row of the Management Layer's database, with the generic
cell rate algorithm (GCRA): the row keeps the theoretical arrival time (`tat`) of the next call at
an even pace, and one atomic statement hands out the next slots and moves it on. A slot is a time:
the caller sends at it (or later only by re-reserving). `burst` calls may go at once after a quiet
spell; a 429 with Retry-After (`hold`) moves every caller's next slot past the hold.

Slots are spaced a little wider than 1/per_second (SPACING): a call leaves its process a few
milliseconds after its slot, and a service counts arrivals. With every gap 2 % wider, five calls at
5/s span 1.02 s, so arrivals jittered by up to 20 ms still never put six in one second.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

SPACING = 1.02

# One statement: lock the service's row, take `n` slots from the earliest allowed (not before now,
# not before tat minus the burst's tolerance, not before a 429's hold), move tat past them, and
# count a wait when the first slot is not now. Slot i of n: max(s0, T0 + i*gap - tau), where T0 is
# the later of tat and s0 (GCRA's recurrence, unrolled).
RESERVE = text("""
WITH locked AS (
    SELECT service, tat, held_until, per_second, burst FROM rate_budgets WHERE service = :service FOR UPDATE
), plan AS (
    SELECT service, clock_timestamp() AS now, tat, held_until,
           make_interval(secs => :spacing / per_second) AS gap,
           make_interval(secs => :spacing * (burst - 1) / per_second) AS tau
    FROM locked
), first AS (
    SELECT *, GREATEST(now, COALESCE(tat, now) - tau, COALESCE(held_until, now)) AS s0 FROM plan
), moved AS (
    UPDATE rate_budgets r SET tat = GREATEST(COALESCE(f.tat, f.s0), f.s0) + f.gap * :n,
                              waits = r.waits + CASE WHEN f.s0 > f.now THEN 1 ELSE 0 END
    FROM first f WHERE r.service = f.service
    RETURNING f.s0, GREATEST(COALESCE(f.tat, f.s0), f.s0) AS t0, f.gap, f.tau, f.now
)
SELECT GREATEST(s0, t0 + gap * i - tau) AS slot, now FROM moved, generate_series(0, :n - 1) AS i ORDER BY i
""")


ASYNCHRONOUS_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


HOLD = text("""
WITH held AS (
    SELECT service, GREATEST(COALESCE(held_until, clock_timestamp()),
                             clock_timestamp() + make_interval(secs => :seconds)) AS until,
           make_interval(secs => :spacing * (burst - 1) / per_second) AS tau
    FROM rate_budgets WHERE service = :service FOR UPDATE
)
UPDATE rate_budgets r SET throttled = r.throttled + 1, held_until = h.until,
                          tat = GREATEST(COALESCE(r.tat, h.until), h.until + h.tau)
FROM held h WHERE r.service = h.service
""")


class BudgetError(ValueError):
    """A budget that cannot be: the message names the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Budget:
    service: str
    per_second: float
    burst: int
    tokens: float  # calls that may go at once right now (0 … burst)
    held_until: datetime | None  # a 429 holds every caller back until then
    waits: int  # reservations that had to wait, since the budget was made
    throttled: int  # 429s answered by the service
    updated_at: datetime
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for key in ("held_until", "updated_at"):
            found[key] = found[key].isoformat() if found[key] else None
        return found


@dataclass(frozen=True)
class Reservation:
    """Slots reserved for calls, and the database's clock when they were: waits are their differences."""

    slots: list[datetime]
    now: datetime


def checked(per_second: Any, burst: Any) -> tuple[float, int]:
    """A budget's two numbers, or a BudgetError naming the field."""
    if isinstance(per_second, bool) or not isinstance(per_second, int | float):
        raise BudgetError("per_second", "must be a number of calls per second")
    if not per_second > 0 or per_second == float("inf"):
        raise BudgetError("per_second", "must be a finite number above 0")
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise BudgetError("burst", "must be a whole number of calls")
    if burst < 1:
        raise BudgetError("burst", "must be at least 1 (calls that may go at once)")
    return float(per_second), burst


def committed(path: Path) -> dict[str, tuple[float, int]]:
    """The budgets committed in config/budgets.json: service → (per_second, burst)."""
    found = {}
    for service, budget in json.loads(path.read_text()).items():
        try:
            found[service] = checked(budget.get("per_second"), budget.get("burst"))
        except BudgetError as err:
            raise BudgetError(f"{path.name}: {service}.{err.field}", err.reason) from None
    return found


class Budgets:
    """The rate budgets of one deployment."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def seed(self, budgets: dict[str, tuple[float, int]], *, by: str) -> list[str]:
        """Make the budgets a deployment does not have yet (a budget changed since stays as it is);
        the services made now."""
        made = []
        with self.engine.begin() as db:
            for service, (per_second, burst) in budgets.items():
                if db.execute(text("INSERT INTO rate_budgets (service, per_second, burst, updated_at, updated_by) "
                                   "VALUES (:service, :per_second, :burst, clock_timestamp(), :by) "
                                   "ON CONFLICT (service) DO NOTHING RETURNING service"),
                              {"service": service, "per_second": per_second, "burst": burst, "by": by}).first():
                    made.append(service)
        return made

    def set(self, service: str, per_second: Any, burst: Any, *, by: str) -> Budget | None:
        """Change a service's budget at once, for every caller; None for a service without one."""
        per_second, burst = checked(per_second, burst)
        with self.engine.begin() as db:
            changed = db.execute(text("UPDATE rate_budgets SET per_second = :per_second, burst = :burst, "
                                      "updated_at = clock_timestamp(), updated_by = :by WHERE service = :service "
                                      "RETURNING service"),
                                 {"service": service, "per_second": per_second, "burst": burst, "by": by}).first()
        return self.get(service) if changed else None

    def get(self, service: str) -> Budget | None:
        return next((budget for budget in self.all() if budget.service == service), None)

    def all(self) -> list[Budget]:
        with self.engine.connect() as db:
            rows = db.execute(text(
                "SELECT *, clock_timestamp() AS now FROM rate_budgets ORDER BY service")).mappings().all()
        return [Budget(row["service"], row["per_second"], row["burst"], _tokens(row), row["held_until"],
                       row["waits"], row["throttled"], row["updated_at"], row["updated_by"]) for row in rows]

    def reserve(self, service: str, n: int = 1) -> Reservation | None:
        """The next `n` slots of the service's budget (None: the service has no budget)."""
        with self.engine.begin() as db:
            # A reservation need not wait for its commit to reach the disk: a crash of the database
            # can lose only its last few, and lets at most that many calls go early once after it.
            db.execute(ASYNCHRONOUS_COMMIT)
            rows = db.execute(RESERVE, {"service": service, "n": n, "spacing": SPACING}).all()
        return Reservation([row.slot for row in rows], rows[0].now) if rows else None

    def now(self) -> datetime:
        """The database's clock, which slots are in: a slot's wait is measured against it."""
        with self.engine.connect() as db:
            return db.execute(text("SELECT clock_timestamp()")).scalar_one()

    def hold(self, service: str, seconds: float) -> None:
        """The service answered 429 with Retry-After: no caller's slot comes before then, and after it
        calls resume at the budget's pace without a burst (a burst is what the service just refused)."""
        with self.engine.begin() as db:
            db.execute(HOLD, {"service": service, "seconds": seconds, "spacing": SPACING})


def _tokens(row: Any) -> float:
    """Calls that may go at once now: the burst, less what the pace has not yet earned back."""
    if row["tat"] is None:
        return float(row["burst"])
    gap = timedelta(seconds=SPACING / row["per_second"])
    behind = (row["tat"] - row["now"]) / gap  # calls already reserved ahead of now
    return max(0.0, min(float(row["burst"]), row["burst"] - behind))
