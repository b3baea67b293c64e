"""The operators' figures in a real PostgreSQL: proposals by status as /management/counts has them,
each step's end, each proposal's end and each revocation counted once however often a scrape reads
its record, two scrapes at once never counting twice, and the tallies catching up in batches."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from hms_management.domain.metrics import ENDED, FAILURES, RETRIES, REVOCATIONS, STEP_BUCKET, STEP_COUNT, STEP_SUM
from hms_management.domain.outcome import STATUSES
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from hms_management.records.metrics import LAG, Metrics
from hms_management.records.store import Admission, Filters

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
APPROVED = {"status": "approved", "decision_id": "d-1", "reason": "fine"}


@pytest.fixture
def metrics(proposal_records) -> Metrics:
    with proposal_records.engine.begin() as db:
        db.execute(text("TRUNCATE metrics_tallies, metrics_marks"))
        db.execute(text("UPDATE metrics_cursor SET updated_at = NULL, advanced_at = NULL"))
    return Metrics(proposal_records.engine)


def step(state: str = "success", *, tries: int = 1, seconds: float = 1.5, at: datetime = T0) -> dict:
    return {"state": state, "tries": tries, "started_at": at.isoformat(),
            "ended_at": (at + timedelta(seconds=seconds)).isoformat()}


def admit(records, proposal_id: str) -> None:
    records.admit(Admission.of({"id": proposal_id, "rule": {"queue": "foia"}}, run_id=f"proposal__{proposal_id}",
                               triggered_by="agent", submitted_at=T0))


def complete(records, proposal_id: str, *, policy: dict | None = None, ended: datetime = T0) -> None:
    admit(records, proposal_id)
    records.change(proposal_id, run_state="running", decision=APPROVED,
                   steps={GOVERNANCE_GATE: step(seconds=0.2), APPLY_POLICY: policy or step(seconds=0.7),
                          NOTIFY_OFFICERS: step(seconds=3)})
    records.change(proposal_id, outcome={"outcome": "completed", "reason": "policy applied"},
                   steps={RECORD_AUDIT: step(seconds=0.4)})
    records.change(proposal_id, run_state="success", ended_at=ended)


def tally(figures, name: str, label: str = "", bucket: str = "") -> float:
    return figures.tallies.get(name, {}).get((label, bucket), 0.0)


def test_proposals_by_status_are_the_counts_of_management_counts(proposal_records, metrics):
    complete(proposal_records, "p-1")
    admit(proposal_records, "p-2")
    admit(proposal_records, "p-3")
    proposal_records.change("p-3", run_state="failed", ended_at=T0)

    figures = metrics.figures()

    assert figures.counts == proposal_records.counts(Filters())
    assert set(figures.counts) == set(STATUSES)
    assert (figures.counts["completed"], figures.counts["queued"], figures.counts["failed"]) == (1, 1, 1)


def test_each_step_that_ended_is_timed_once_and_each_end_counted_once(proposal_records, metrics):
    complete(proposal_records, "p-1", policy=step(tries=3, seconds=0.7))
    complete(proposal_records, "p-2")

    first = metrics.figures()
    again = metrics.figures()  # every record is read again (changed within LAG): nothing added

    for figures in (first, again):
        assert tally(figures, ENDED, "completed") == 2
        assert tally(figures, STEP_COUNT, NOTIFY_OFFICERS) == 2
        assert tally(figures, STEP_SUM, NOTIFY_OFFICERS) == pytest.approx(6.0)
        assert tally(figures, STEP_BUCKET, NOTIFY_OFFICERS, "5.0") == 2  # 3 s: in the bucket up to 5 s
        assert tally(figures, STEP_BUCKET, APPLY_POLICY, "1.0") == 2
        assert tally(figures, RETRIES, APPLY_POLICY) == 2  # tries 2 and 3 followed a failed try
        assert tally(figures, FAILURES, APPLY_POLICY) == 0
    assert first.advanced == again.advanced == 2


def test_a_failed_step_and_its_proposals_end_count_once(proposal_records, metrics):
    admit(proposal_records, "p-1")
    proposal_records.change("p-1", run_state="running", decision=APPROVED,
                            steps={GOVERNANCE_GATE: step(), NOTIFY_OFFICERS: step("up_for_retry", tries=1)})
    metrics.figures()
    proposal_records.change("p-1", steps={NOTIFY_OFFICERS: step("failed", tries=4, seconds=10)})
    proposal_records.change("p-1", outcome={"outcome": "failed", "reason": "503", "failed_step": NOTIFY_OFFICERS},
                            steps={RECORD_AUDIT: step()})
    proposal_records.change("p-1", run_state="failed", ended_at=T0)

    figures = metrics.figures()

    assert tally(figures, FAILURES, NOTIFY_OFFICERS) == 1
    assert tally(figures, RETRIES, NOTIFY_OFFICERS) == 3
    assert tally(figures, STEP_COUNT, NOTIFY_OFFICERS) == 1  # the try that ended it; not the one up for retry
    assert tally(figures, ENDED, "failed") == 1 and tally(figures, ENDED, "completed") == 0


def test_a_re_driven_proposal_ends_again_and_its_new_tries_are_not_retries(proposal_records, metrics):
    complete(proposal_records, "p-1", policy=step("failed", tries=4))
    metrics.figures()

    # The sweep re-drives it: the step runs once more (try 5) and succeeds; the run ends anew.
    proposal_records.change("p-1", run_state="running", steps={APPLY_POLICY: step(tries=5)})
    proposal_records.change("p-1", run_state="success", ended_at=T0 + timedelta(minutes=5))
    figures = metrics.figures()

    assert tally(figures, RETRIES, APPLY_POLICY) == 3
    assert tally(figures, STEP_COUNT, APPLY_POLICY) == 2
    assert tally(figures, ENDED, "completed") == 2  # two ends of its run, each with its outcome


def test_a_revocation_is_counted_once(proposal_records, metrics):
    admit(proposal_records, "p-1")
    revoked = {**APPROVED, "status": "revoked", "revoked_by": "reviewer", "revoked_at": T0.isoformat()}
    proposal_records.change("p-1", run_state="running", decision=revoked)
    metrics.figures()
    proposal_records.change("p-1", outcome={"outcome": "revoked", "reason": "no"}, steps={RECORD_AUDIT: step()})

    figures = metrics.figures()

    assert tally(figures, REVOCATIONS) == 1


def test_two_scrapes_at_once_never_count_a_record_twice(proposal_records, metrics):
    for n in range(30):
        complete(proposal_records, f"p-{n}")
    results, start = [], threading.Barrier(4)

    def scrape() -> None:
        start.wait()
        for _ in range(5):
            results.append(metrics.advance())

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert tally(metrics.figures(), ENDED, "completed") == 30
    assert 30 in results  # someone read them; a scrape that found the advance taken read the tallies as they were


def test_a_write_that_commits_after_a_newer_one_was_read_is_still_counted(proposal_records, metrics):
    complete(proposal_records, "p-new")
    metrics.figures()
    # p-late's writer took its time: its updated_at is older than p-new's, within the margin.
    complete(proposal_records, "p-late")
    with proposal_records.engine.begin() as db:
        db.execute(text("UPDATE proposals SET updated_at = clock_timestamp() - make_interval(secs => :s) "
                        "WHERE id = 'p-late'"), {"s": LAG.total_seconds() / 2})

    assert tally(metrics.figures(), ENDED, "completed") == 2


def test_many_old_records_are_caught_up_in_batches(proposal_records, metrics):
    for n in range(7):
        complete(proposal_records, f"p-{n}")
    with proposal_records.engine.begin() as db:  # written long ago, before the tallies existed
        db.execute(text("UPDATE proposals SET updated_at = clock_timestamp() - make_interval(days => 1) "
                        "+ make_interval(secs => seq)"))

    assert metrics.advance(batch=3) == 3
    assert tally(metrics.figures(advance=False), ENDED, "completed") == 3
    metrics.catch_up(batch=3)

    figures = metrics.figures()
    assert tally(figures, ENDED, "completed") == 7
    assert figures.advanced == 1  # nothing changed since: a scrape reads only the newest it read before


def test_the_oldest_review_and_the_nearest_deadline(proposal_records, metrics):
    for proposal_id, since in (("r-1", T0), ("r-2", T0 + timedelta(hours=1))):
        admit(proposal_records, proposal_id)
        review = {"status": "review", "decision_id": proposal_id, "reason": "high impact",
                  "created_at": since.isoformat(), "deadline": (since + timedelta(hours=72)).isoformat()}
        proposal_records.change(proposal_id, run_state="running", decision=review)
        proposal_records.change(proposal_id, run_state="success", ended_at=since)

    reviews = metrics.figures().reviews

    assert (reviews.waiting, reviews.oldest_since, reviews.nearest_deadline) == (2, T0, T0 + timedelta(hours=72))


def test_no_review_waiting(proposal_records, metrics):
    complete(proposal_records, "p-1")

    reviews = metrics.figures().reviews

    assert (reviews.waiting, reviews.oldest_since, reviews.nearest_deadline) == (0, None, None)
