"""Rate budgets in a real PostgreSQL: one shared bucket per service hands out slots at the budget's
pace to every caller at once, lets a burst through after a quiet spell, and holds everyone back
after a 429. What a caller notices: when its call may go."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from hms_management.records.budgets import SPACING, BudgetError, Budgets, checked


@pytest.fixture
def budgets(proposal_records) -> Budgets:
    store = Budgets(proposal_records.engine)
    with store.engine.begin() as db:
        db.execute(text("TRUNCATE rate_budgets"))
    store.seed({"policy": (10.0, 3)}, by="test")
    return store


def gaps(slots) -> list[float]:
    return [(later - earlier).total_seconds() for earlier, later in zip(slots, slots[1:], strict=False)]


def test_a_burst_goes_at_once_then_calls_are_paced(budgets):
    first = [budgets.reserve("policy") for _ in range(6)]
    slots = [reservation.slots[0] for reservation in first]

    assert all(slot <= reservation.now for slot, reservation in zip(slots[:3], first[:3], strict=True))  # the burst
    assert (slots[3] - slots[0]).total_seconds() == pytest.approx(SPACING / 10, abs=0.002)  # paced from the first
    assert gaps(slots[3:]) == pytest.approx([SPACING / 10] * 2, abs=0.002)
    assert budgets.get("policy").waits == 3


def test_n_slots_at_once_follow_the_same_pace(budgets):
    reservation = budgets.reserve("policy", n=5)

    assert len(reservation.slots) == 5
    assert reservation.slots[:3] == [reservation.slots[0]] * 3
    assert gaps(reservation.slots[2:]) == pytest.approx([SPACING / 10] * 2, abs=0.002)


def test_callers_at_once_never_get_slots_closer_than_the_pace(budgets):
    found, lock = [], threading.Lock()

    def caller() -> None:
        for _ in range(10):
            slot = budgets.reserve("policy").slots[0]
            with lock:
                found.append(slot)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    slots = sorted(found)
    assert len(slots) == 80
    assert min(gaps(slots[3:])) >= SPACING / 10 - 1e-6  # after the burst of 3, never closer than the pace
    # In any one-second window: at most the budget's pace, and the burst once.
    assert max(sum(1 for s in slots if start <= s < start + timedelta(seconds=1)) for start in slots) <= 10 + 2


def test_a_429_holds_every_caller_back_for_its_retry_after(budgets):
    budgets.hold("policy", 3.0)

    reservation = budgets.reserve("policy")

    assert (reservation.slots[0] - reservation.now).total_seconds() == pytest.approx(3.0, abs=0.05)
    budget = budgets.get("policy")
    assert budget.throttled == 1 and budget.held_until is not None


def test_a_service_without_a_budget_is_not_held_back(budgets):
    assert budgets.reserve("backlog") is None


def test_a_budget_changed_at_run_time_applies_to_the_next_reservation_and_stays(budgets):
    changed = budgets.set("policy", 1, 1, by="admin")
    budgets.reserve("policy")
    second = budgets.reserve("policy")

    assert (changed.per_second, changed.burst, changed.updated_by) == (1.0, 1, "admin")
    assert (second.slots[0] - second.now).total_seconds() == pytest.approx(SPACING, abs=0.05)
    assert budgets.seed({"policy": (10.0, 3), "audit": (5.0, 1)}, by="set-up") == ["audit"]
    assert budgets.get("policy").per_second == 1.0  # the set-up makes budgets, never undoes a change


def test_tokens_left_are_the_burst_less_what_is_reserved_ahead(budgets):
    assert budgets.get("policy").tokens == 3.0
    for _ in range(5):
        budgets.reserve("policy")
    assert budgets.get("policy").tokens == 0.0


@pytest.mark.parametrize(("per_second", "burst", "field"), [
    (0, 1, "per_second"), (-2, 1, "per_second"), ("5", 1, "per_second"), (True, 1, "per_second"),
    (float("inf"), 1, "per_second"), (5, 0, "burst"), (5, 1.5, "burst"), (5, "3", "burst"), (5, None, "burst")])
def test_a_budget_that_cannot_be_is_refused_naming_the_field(per_second, burst, field):
    with pytest.raises(BudgetError) as refused:
        checked(per_second, burst)
    assert refused.value.field == field
