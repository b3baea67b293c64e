"""The sweep's real adapter for proposal runs (`SweepRuns`), over a stand-in for Airflow's REST API:
the sweep's other unit tests use a fake in its place, so the promises it keeps itself are held here.

When Airflow answers 409 (a run exists), only a run holding the same proposal counts as started; a
different proposal under the same id is a conflict that the backlog entry is rejected with, never a
proposal silently "taken" and dropped.
"""

from __future__ import annotations

from types import SimpleNamespace

from hms_management.domain.proposal import parse_proposal
from hms_management.sweep.adapters import SweepRuns

QUEUED = parse_proposal({"id": "p-1", "rule": {"queue": "foia"}, "title": "Reorder"})


class AirflowAnswers:
    """Airflow's REST API as the adapter calls it: a trigger answer, and the run that exists."""

    def __init__(self, started: str, existing_conf: dict | None = None) -> None:
        self.started = started
        self.existing = SimpleNamespace(conf=existing_conf) if existing_conf is not None else None

    def start(self, proposal):
        return self.started, None

    def run(self, proposal_id: str):
        return self.existing


def test_a_new_run_is_started():
    assert SweepRuns(AirflowAnswers("started")).start(QUEUED) == ("started", None)


def test_an_existing_run_of_the_same_proposal_counts_as_started():
    answer, _ = SweepRuns(AirflowAnswers("exists", QUEUED.as_conf())).start(QUEUED)
    assert answer == "exists"


def test_an_existing_run_of_another_proposal_under_the_same_id_is_a_conflict_saying_so():
    other = {"id": "p-1", "rule": {"queue": "permits"}}

    answer, detail = SweepRuns(AirflowAnswers("exists", other)).start(QUEUED)

    assert answer == "conflict"
    assert detail.startswith("conflict: run proposal__p-1 already exists with other content")


def test_a_refusal_by_the_admission_check_is_passed_on():
    assert SweepRuns(AirflowAnswers("refused")).start(QUEUED) == ("refused", None)
