"""Proposal records in a real PostgreSQL: a record follows the facts written into it, its status is
settled by the one rule in every write, and the reads a page or the counts make are the right ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from hms_management.domain.outcome import STATUSES
from hms_management.records import database
from hms_management.records.schema import proposals
from hms_management.records.store import Admission, Filters, decode_cursor, encode_cursor

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
APPROVED = {"status": "approved", "decision_id": "d-1", "reason": "fine"}
REVIEW = {"status": "review", "decision_id": "d-2", "reason": "high impact", "deadline": "2026-12-07T09:00:00+00:00"}


def admission(proposal_id: str, *, user: str = "agent", at: datetime = NOW, **conf) -> Admission:
    return Admission.of({"id": proposal_id, "rule": {"queue": "foia"}, **conf}, run_id=f"proposal__{proposal_id}",
                        triggered_by=user, submitted_at=at)


def test_the_migrations_make_the_schema_the_queries_expect(proposal_records):
    engine = proposal_records.engine
    assert database.revision(engine) == ScriptDirectory.from_config(database.alembic_config()).get_current_head()
    made = {column["name"] for column in inspect(engine).get_columns("proposals")}
    assert made == {column.name for column in proposals.columns}


def test_admitting_twice_keeps_the_first_record(proposal_records):
    first, new = proposal_records.admit(admission("p-1", title="FOIA"))
    again, new_again = proposal_records.admit(admission("p-1", user="someone-else", at=NOW + timedelta(hours=1)))

    assert (new, new_again) == (True, False)
    assert (first.status, first.title, first.submitted_at) == ("queued", "FOIA", NOW)
    assert (again.triggered_by, again.submitted_at) == ("agent", NOW)


def test_a_record_follows_its_run_to_completed(proposal_records):
    proposal_records.admit(admission("p-1"))

    running = proposal_records.change("p-1", run_state="running", started_at=NOW)
    decided = proposal_records.change("p-1", decision=APPROVED, steps={"governance_gate": {"state": "success"}})
    audited = proposal_records.change("p-1", outcome={"outcome": "completed", "reason": "policy applied"},
                                      steps={"record_audit": {"state": "success"}})
    ended = proposal_records.change("p-1", run_state="success", ended_at=NOW + timedelta(seconds=2))

    assert [running.status, decided.status, audited.status, ended.status] == ["running"] * 3 + ["completed"]
    assert ended.reason == "policy applied"
    assert set(ended.steps) == {"governance_gate", "record_audit"}  # steps are merged, not replaced


def test_a_green_run_parked_on_a_review_awaits_governance_with_its_reason(proposal_records):
    proposal_records.admit(admission("p-2"))
    proposal_records.change("p-2", decision=REVIEW, run_state="running")

    parked = proposal_records.change("p-2", run_state="success", ended_at=NOW)

    assert (parked.status, parked.reason) == ("awaiting_governance", "high impact")


def test_a_run_that_ended_without_an_outcome_is_failed_and_says_so(proposal_records):
    proposal_records.admit(admission("p-3"))

    ended = proposal_records.change("p-3", run_state="failed", ended_at=NOW)

    assert ended.status == "failed" and "without an audit record" in ended.reason


def test_a_task_at_work_makes_a_queued_record_running(proposal_records):
    proposal_records.admit(admission("p-4"))

    record = proposal_records.change("p-4", running=True, steps={"governance_gate": {"state": "success"}})

    assert (record.run_state, record.status) == ("running", "running") and record.started_at is not None


def test_a_write_for_a_record_not_admitted_creates_it_from_the_run(proposal_records):
    record = proposal_records.change("p-5", admission=admission("p-5", user="airflow-cli"), run_state="running")

    assert (record.status, record.triggered_by, record.run_id) == ("running", "airflow-cli", "proposal__p-5")
    assert proposal_records.change("nobody", run_state="running") is None


def test_a_write_that_lost_a_race_changes_nothing(proposal_records):
    admitted, _ = proposal_records.admit(admission("p-6"))
    proposal_records.change("p-6", run_state="running")

    stale = proposal_records.change("p-6", if_updated_at=admitted.updated_at, run_state="failed")

    assert stale is None and proposal_records.get("p-6").status == "running"


def test_an_unknown_fact_is_refused():
    from hms_management.records.store import Records

    with pytest.raises(TypeError, match="not a fact"):
        Records(engine=None).change("p-1", colour="red")


def test_a_run_conf_that_is_not_a_proposal_still_gets_a_record(proposal_records):
    made = Admission.of({"id": 42, "title": ["not", "text"]}, run_id="proposal__odd", triggered_by=None,
                        submitted_at=NOW)

    record, _ = proposal_records.admit(made)

    assert (record.id, record.title, record.priority) == ("odd", None, "normal")


def seed(proposal_records, statuses: dict[str, str]) -> None:
    for n, (proposal_id, status) in enumerate(statuses.items()):
        user = "agent" if n % 2 else "sweeper"
        proposal_records.admit(admission(proposal_id, user=user, title=f"Title {proposal_id}",
                                         submitted_by="hms-a2a" if n % 3 == 0 else None,
                                         at=NOW + timedelta(seconds=n)))
        if status != "queued":
            proposal_records.change(proposal_id, run_state="success", decision=APPROVED,
                                    outcome={"outcome": status, "reason": "r"})


def test_counts_have_every_status_and_agree_with_the_pages(proposal_records):
    seed(proposal_records, {"a": "completed", "b": "denied", "c": "completed", "d": "queued", "e": "failed"})

    counts = proposal_records.counts(Filters())

    assert set(counts) == set(STATUSES)
    assert (counts["completed"], counts["denied"], counts["queued"], counts["failed"], counts["running"]) == \
        (2, 1, 1, 1, 0)
    for status, count in counts.items():
        assert len(proposal_records.page(Filters(status=status), 50).records) == count


def test_a_page_is_newest_first_and_the_cursor_goes_on_where_it_stopped(proposal_records):
    seed(proposal_records, {f"p{n}": "completed" for n in range(5)})

    first = proposal_records.page(Filters(), 2)
    second = proposal_records.page(Filters(), 2, first.next_cursor)
    last = proposal_records.page(Filters(), 2, second.next_cursor)

    assert [r.id for r in first.records + second.records + last.records] == ["p4", "p3", "p2", "p1", "p0"]
    assert last.next_cursor is None
    oldest = proposal_records.page(Filters(), 2, oldest_first=True)
    assert [r.id for r in oldest.records] == ["p0", "p1"]


def test_submitter_means_whom_the_proposal_names_or_the_user_that_submitted_it(proposal_records):
    seed(proposal_records, {"a": "completed", "b": "completed", "c": "completed", "d": "completed"})

    named = {r.id for r in proposal_records.page(Filters(submitter="hms-a2a"), 50).records}
    by_user = {r.id for r in proposal_records.page(Filters(submitter="agent"), 50).records}

    assert named == {"a", "d"} and by_user == {"b", "d"}
    assert sum(proposal_records.counts(Filters(submitter="hms-a2a")).values()) == 2


@pytest.mark.parametrize(("text", "found"), [("TITLE B", {"b"}), ("%", set()), ("_", set()), ("itle", {"a", "b"})])
def test_text_matches_the_id_or_title_in_any_case_and_wildcards_are_plain_characters(proposal_records, text, found):
    seed(proposal_records, {"a": "completed", "b": "completed"})

    assert {r.id for r in proposal_records.page(Filters(text=text), 50).records} == found


def test_a_cursor_this_api_did_not_hand_out_is_refused():
    assert decode_cursor(encode_cursor(41)) == 41
    for bad in ("", "cnVuOjQx", "not base64!", encode_cursor(1)[:-2] + "zz"):
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor(bad)
