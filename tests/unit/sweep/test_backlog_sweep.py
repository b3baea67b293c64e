"""The backlog sweep's decisions, with the backlog, Airflow and the audit log as in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hms_management.domain.proposal import parse_proposal, run_id_for
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, RECORD_AUDIT
from hms_management.sweep.plan import (
    REDRIVE,
    REDRIVEN_ACTION,
    START_QUEUED,
    FailedRun,
    Failure,
    SweepError,
    failure_of,
    redrive_key,
    redrive_step,
    redrives_before,
    split_batch,
    summarize,
    sweep_schedule,
)
from hms_management.sweep.runner import redrive_failed_runs, take_backlog

RULE = {"queue": "foia"}


def entry(proposal_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": proposal_id, "proposal": {"id": proposal_id, "rule": RULE, **fields}, "status": "pending"}


class FakeBacklog:
    """The backlog service: pending entries in queue order, marked taken or rejected."""

    def __init__(self, *entries: dict[str, Any], down: bool = False, fail_marks_after: int | None = None):
        self.entries = {e["id"]: dict(e) for e in entries}
        self.down, self.fail_marks_after, self.marks = down, fail_marks_after, 0
        self.events: list[tuple[str, str]] = []

    def pending(self, limit: int) -> list[dict[str, Any]]:
        if self.down:
            raise SweepError("the HMS backlog service is unavailable: GET /backlog/proposals answered 503")
        return [e for e in self.entries.values() if e["status"] == "pending"][:limit]

    def _mark(self, proposal_id: str, status: str, **details: Any) -> str:
        if self.fail_marks_after is not None and self.marks >= self.fail_marks_after:
            raise SweepError("the HMS backlog service did not answer POST …/taken: ReadTimeout")
        self.marks += 1
        self.events.append((status, proposal_id))
        if self.entries[proposal_id]["status"] == "pending":
            self.entries[proposal_id].update(status=status, **details)
        return self.entries[proposal_id]["status"]

    def mark_taken(self, proposal_id: str, run_id: str) -> str:
        return self._mark(proposal_id, "taken", run_id=run_id)

    def mark_rejected(self, proposal_id: str, reason: str, *, redact: list[str] | None = None) -> str:
        return self._mark(proposal_id, "rejected", reason=reason, redacted=redact or [])

    def status(self, proposal_id: str) -> str:
        return self.entries[proposal_id]["status"]


T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


def at(minute: int) -> str:
    """An end date: minute `minute` after 10:00 on a day when runs failed."""
    return (T0 + timedelta(minutes=minute)).isoformat()


class FakeRuns:
    """Proposal runs in Airflow: one per run id; failed runs with what their audit step left."""

    def __init__(self, events: list[tuple[str, str]] | None = None):
        self.confs: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, FailedRun] = {}
        self.created = 0
        self.events = events if events is not None else []
        self.outcomes: dict[str, dict[str, Any] | None] = {}
        self.audit_errors: dict[str, dict[str, Any]] = {}
        self.cleared: list[tuple[str, str]] = []
        self.outcome_reads = 0
        self.crash_on_clear = False

    def start(self, proposal):
        if proposal.id in self.confs:
            same = parse_proposal(self.confs[proposal.id]).as_conf() == proposal.as_conf()
            return ("exists", None) if same else ("conflict", f"conflict: run {proposal.run_id} has other content")
        self.confs[proposal.id] = proposal.as_conf()
        self.created += 1
        self.events.append(("run", proposal.id))
        return "started", None

    def fail(self, proposal_id: str, *, ended_at: str, outcome: dict[str, Any] | None = None,
             audit_error: dict[str, Any] | None = None) -> None:
        self.failed[proposal_id] = FailedRun(run_id_for(proposal_id), {"id": proposal_id, "rule": RULE}, ended_at)
        self.outcomes[proposal_id] = outcome
        if audit_error:
            self.audit_errors[proposal_id] = audit_error

    def failed_runs(self, *, ended_after: datetime, limit: int) -> list[FailedRun]:
        later = [r for r in self.failed.values() if datetime.fromisoformat(r.end_date) > ended_after]
        return sorted(later, key=lambda r: r.end_date)[:limit]

    def outcome(self, proposal_id: str):
        self.outcome_reads += 1
        return self.outcomes.get(proposal_id)

    def audit_step_error(self, proposal_id: str):
        return self.audit_errors.get(proposal_id)

    def rerun_from(self, proposal_id: str, step: str) -> list[str]:
        if self.crash_on_clear:
            raise SweepError("Airflow's REST API did not answer (clear): ConnectError")
        self.cleared.append((proposal_id, step))
        del self.failed[proposal_id]  # queued again: no longer a failed run
        return [step]


class FakeAuditLog:
    """Append-only, and a repeated Idempotency-Key writes nothing."""

    def __init__(self):
        self.entries: list[dict[str, Any]] = []
        self.keys: set[str] = set()

    def redrives(self, proposal_id: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["proposalId"] == proposal_id and e["action"] == REDRIVEN_ACTION]

    def record(self, entry: dict[str, Any], *, key: str) -> None:
        if key not in self.keys:
            self.keys.add(key)
            self.entries.append(entry)


def transient_failure(step: str = APPLY_POLICY) -> dict[str, Any]:
    return {"outcome": "failed", "reason": "TransientServiceError: 503", "failed_step": step, "transient": True}


# -- choosing the batch --------------------------------------------------------------------------


def test_batch_takes_the_oldest_up_to_the_size_and_knows_more_are_waiting():
    entries = [entry(f"p-{n}") for n in range(4)]

    batch = split_batch(entries, batch_size=3)

    assert [p.id for p in batch.valid] == ["p-0", "p-1", "p-2"]
    assert batch.more_pending
    assert not split_batch(entries[:3], batch_size=3).more_pending


def test_invalid_proposals_are_split_off_with_the_models_reason():
    batch = split_batch([entry("ok"), entry("leaky", token="eyJ"), entry("odd", colour="red")], batch_size=10)

    assert [p.id for p in batch.valid] == ["ok"]
    assert set(batch.invalid) == {"leaky", "odd"}
    assert "plain text" in batch.invalid["leaky"]
    assert "unknown field" in batch.invalid["odd"]


def test_an_id_listed_twice_is_one_proposal():
    batch = split_batch([entry("p-1"), entry("p-1")], batch_size=10)
    assert [p.id for p in batch.valid] == ["p-1"]


def test_schedule_none_means_manual_sweeps_only():
    assert sweep_schedule("*/15 * * * *") == "*/15 * * * *"
    assert sweep_schedule("none") is None
    assert sweep_schedule("") is None


# -- starting runs -------------------------------------------------------------------------------


def test_valid_proposals_start_and_are_marked_taken_only_after_their_run_exists():
    backlog = FakeBacklog(entry("p-1"), entry("p-2"))
    runs = FakeRuns(backlog.events)

    intake = take_backlog(backlog, runs, batch_size=10)

    assert intake.started == ["p-1", "p-2"]
    assert intake.error is None
    assert backlog.events == [("run", "p-1"), ("taken", "p-1"), ("run", "p-2"), ("taken", "p-2")]
    assert backlog.entries["p-1"]["run_id"] == "proposal__p-1"


def test_invalid_proposal_is_rejected_with_the_reason_and_never_started():
    backlog = FakeBacklog(entry("leaky", token="eyJ"))
    runs = FakeRuns()

    intake = take_backlog(backlog, runs, batch_size=10)

    assert runs.created == 0
    assert backlog.status("leaky") == "rejected"
    assert "credentials must not be sent" in backlog.entries["leaky"]["reason"]
    assert list(intake.rejected) == ["leaky"]


def test_a_proposal_whose_run_exists_counts_as_started_and_is_marked_taken():
    backlog = FakeBacklog(entry("p-1"))
    runs = FakeRuns()
    runs.start(parse_proposal(entry("p-1")["proposal"]))  # submitted directly by an agent earlier

    intake = take_backlog(backlog, runs, batch_size=10)

    assert intake.already_running == ["p-1"]
    assert runs.created == 1
    assert backlog.status("p-1") == "taken"


def test_a_crash_between_start_and_mark_loses_nothing_and_duplicates_nothing():
    backlog = FakeBacklog(entry("p-1"), entry("p-2"), fail_marks_after=0)
    runs = FakeRuns()

    first = take_backlog(backlog, runs, batch_size=10)
    backlog.fail_marks_after = None
    second = take_backlog(backlog, runs, batch_size=10)

    assert first.error and "stay pending" in first.error
    assert first.left == {"p-1": first.left["p-1"], "p-2": first.left["p-2"]}
    assert backlog.status("p-1") == backlog.status("p-2") == "taken"
    assert runs.created == 2  # p-1's run was started once, met again (409) by the second sweep
    assert second.already_running == ["p-1"] and second.started == ["p-2"]


def test_an_invalid_proposal_the_backlog_cannot_mark_is_left_with_why_and_the_rest_goes_on():
    backlog = FakeBacklog(entry("odd", colour="red"), entry("p-1"))
    backlog.mark_rejected = lambda proposal_id, reason, redact=None: "gone"  # as if the backlog answered 404 for its id

    intake = take_backlog(backlog, FakeRuns(), batch_size=10)

    assert intake.rejected == {}
    assert "could not mark it rejected: entry gone" in intake.left["odd"]
    assert intake.started == ["p-1"]
    assert intake.error is None


def test_backlog_down_fails_clearly_and_touches_nothing():
    backlog = FakeBacklog(entry("p-1"), down=True)
    runs = FakeRuns()

    intake = take_backlog(backlog, runs, batch_size=10)

    assert "backlog service is unavailable" in intake.error
    assert "every queued proposal stays pending" in intake.error
    assert runs.created == 0
    assert backlog.status("p-1") == "pending"


def test_only_a_batch_is_taken_and_the_rest_waits():
    backlog = FakeBacklog(*(entry(f"p-{n}") for n in range(5)))

    intake = take_backlog(backlog, FakeRuns(), batch_size=3)

    assert intake.started == ["p-0", "p-1", "p-2"]
    assert intake.more_pending
    assert [e["id"] for e in backlog.pending(10)] == ["p-3", "p-4"]


# -- which failures are re-driven ------------------------------------------------------------------


def failed_run(proposal_id: str = "p-1", ended_at: str = "2025-01-01T10:00:00+00:00") -> FailedRun:
    return FailedRun(run_id_for(proposal_id), {"id": proposal_id}, ended_at)


@pytest.mark.parametrize(
    ("outcome", "audit_error", "step"),
    [
        (transient_failure(APPLY_POLICY), None, APPLY_POLICY),
        (transient_failure(GOVERNANCE_GATE), None, GOVERNANCE_GATE),
        ({"outcome": "failed", "failed_step": APPLY_POLICY, "reason": "422", "transient": False}, None, None),
        ({"outcome": "failed", "failed_step": GOVERNANCE_GATE, "reason": "invalid proposal: id: too long",
          "transient": False}, None, None),
        ({"outcome": "denied", "reason": "weekend", "failed_step": None, "transient": False}, None, None),
        (None, {"error": "TransientServiceError: 503", "transient": True}, RECORD_AUDIT),
        (None, {"error": "PermanentServiceError: 400", "transient": False}, None),
        (None, None, None),
    ],
    ids=["policy-503", "governance-503", "policy-422", "invalid-input", "denied", "audit-503", "audit-400",
         "no-record"],
)
def test_only_transient_failures_of_hms_steps_are_redriven(outcome, audit_error, step):
    assert redrive_step(failure_of(failed_run(), outcome, audit_error)) == step


def test_redrives_of_earlier_failures_count_but_a_record_for_this_failure_does_not():
    failure = Failure("p-1", "proposal__p-1", "t3", APPLY_POLICY, "503", True)
    records = [
        {"action": REDRIVEN_ACTION, "failureEndedAt": "t1"},
        {"action": REDRIVEN_ACTION, "failureEndedAt": "t2"},
        {"action": REDRIVEN_ACTION, "failureEndedAt": "t3"},  # written, then the sweep stopped before clearing
        {"action": "proposal.orchestrated", "outcome": "failed"},
    ]
    assert redrives_before(records, failure) == 2


def redrive(runs: FakeRuns, audit: FakeAuditLog, limit: int = 3, per_sweep: int = 50, after: str | None = None):
    return redrive_failed_runs(runs, audit, limit=limit, per_sweep=per_sweep,
                               ended_after=datetime.fromisoformat(after) if after else T0 - timedelta(hours=1),
                               sweep_run_id="sweep-1")


def test_a_transient_failure_is_redriven_from_its_step_with_an_audit_record():
    runs, audit = FakeRuns(), FakeAuditLog()
    runs.fail("p-1", ended_at=at(1), outcome=transient_failure())
    runs.fail("p-2", ended_at=at(1), outcome={"outcome": "failed", "failed_step": APPLY_POLICY, "reason": "422",
                                             "transient": False})

    result = redrive(runs, audit)

    assert result.redriven == {"p-1": APPLY_POLICY}
    assert result.not_transient == 1
    assert runs.cleared == [("p-1", APPLY_POLICY)]
    [record] = audit.entries
    assert (record["proposalId"], record["failedStep"], record["attempt"], record["limit"]) == (
        "p-1", APPLY_POLICY, 1, 3)
    assert "503" in record["reason"]


def test_a_proposal_is_redriven_at_most_limit_times():
    runs, audit = FakeRuns(), FakeAuditLog()
    rounds = []
    for attempt in range(4):
        runs.fail("p-1", ended_at=at(attempt), outcome=transient_failure())  # failed again after each re-drive
        rounds.append(redrive(runs, audit, limit=2))

    assert [bool(r.redriven) for r in rounds] == [True, True, False, False]
    assert rounds[2].limit_reached == ["p-1"]
    assert [e["attempt"] for e in audit.entries] == [1, 2]
    assert len(runs.cleared) == 2


def test_a_crash_between_the_record_and_the_clear_is_finished_by_the_next_sweep_with_one_record():
    runs, audit = FakeRuns(), FakeAuditLog()
    runs.fail("p-1", ended_at=at(1), outcome=transient_failure())
    runs.crash_on_clear = True

    first = redrive(runs, audit, limit=1)
    runs.crash_on_clear = False
    second = redrive(runs, audit, limit=1)

    assert first.error and first.left == {"p-1": first.left["p-1"]}
    assert second.redriven == {"p-1": APPLY_POLICY}
    assert len(audit.entries) == 1  # same failure, same Idempotency-Key
    assert runs.cleared == [("p-1", APPLY_POLICY)]


def test_the_redrive_key_names_the_failure():
    failure = Failure("p-1", "proposal__p-1", "2025-01-01T10:00:00Z", APPLY_POLICY, "503", True)
    assert redrive_key(failure) == "p-1:proposal.redriven@2025-01-01T10:00:00Z"


# -- the summary ---------------------------------------------------------------------------------


def test_summary_counts_each_kind_and_reads_as_one_line():
    summary = summarize(
        {"started": ["a", "b"], "already_running": ["c"], "rejected": {"d": "bad"}, "left": {},
         "more_pending": True, "error": None},
        {"redriven": {"e": APPLY_POLICY}, "limit_reached": ["f"], "not_transient": 2, "left": {}, "error": None},
    )

    assert summary.complete
    assert summary.counts == {"started": 2, "already_running": 1, "rejected": 1, "conflicts": 0, "redriven": 1,
                              "left_for_next_sweep": 0}
    assert summary.headline == (
        "Sweep: started 2, already running 1, rejected 1 (0 id conflicts), re-driven 1, left for the next sweep 0; "
        "more proposals are queued beyond this sweep's batch; 1 failed run(s) reached the re-drive limit and need "
        "a human"
    )
    assert summary.as_dict()["redrive_limit_reached"] == ["f"]


def test_summary_of_a_failed_part_says_incomplete_and_why():
    summary = summarize(
        {"started": [], "already_running": [], "rejected": {}, "left": {"p-1": "stopped"}, "more_pending": False,
         "error": "the HMS backlog service is unavailable"},
        None,
    )

    assert not summary.complete
    assert summary.counts["left_for_next_sweep"] == 1
    assert summary.failures == {START_QUEUED: "the HMS backlog service is unavailable",
                                REDRIVE: "did not finish (see its log)"}
    assert summary.headline.startswith("Sweep INCOMPLETE: ")
    assert "FAILED start_queued_proposals: the HMS backlog service is unavailable" in summary.headline


# -- nothing silently dropped, nothing kept that must not be --------------------------------------


def test_an_id_that_has_a_run_with_other_content_is_rejected_as_a_conflict_never_taken():
    backlog = FakeBacklog(entry("p-1", title="the backlog's version"))
    runs = FakeRuns()
    runs.start(parse_proposal(entry("p-1", title="an agent's version")["proposal"]))

    intake = take_backlog(backlog, runs, batch_size=10)

    assert backlog.status("p-1") == "rejected"
    assert intake.rejected["p-1"].startswith("conflict:")
    assert intake.conflicts == ["p-1"] and intake.already_running == []
    assert "(1 id conflict)" in summarize(intake.as_dict(), {"redriven": {}}).headline


def test_an_entry_rejected_for_credentials_has_their_values_redacted_wherever_they_were():
    backlog = FakeBacklog(entry("leaky", metadata={"auth": {"api_key": "k-123"}}, token="eyJ"))

    take_backlog(backlog, FakeRuns(), batch_size=10)

    assert backlog.status("leaky") == "rejected"
    assert backlog.entries["leaky"]["redacted"] == ["token", "metadata.auth", "metadata.auth.api_key"]


# -- re-drives: bounded per sweep, each failure read once ---------------------------------------


def test_after_an_outage_a_sweep_redrives_at_most_its_cap_and_the_next_goes_on_from_there():
    runs, audit = FakeRuns(), FakeAuditLog()
    for n in range(1000):
        runs.fail(f"p-{n:04d}", ended_at=at(n), outcome=transient_failure())

    first = redrive(runs, audit, per_sweep=50)
    second = redrive(runs, audit, per_sweep=50, after=first.examined_until)

    assert len(first.redriven) == 50 and first.more_failures
    assert sorted(first.redriven)[0] == "p-0000" and first.examined_until == at(49)  # oldest first
    assert sorted(second.redriven) == [f"p-{n:04d}" for n in range(50, 100)]
    assert runs.outcome_reads == 100  # each sweep read only the failures it re-drove
    assert "more failed runs wait" in summarize({}, first.as_dict()).headline


def test_old_failures_no_redrive_helps_are_read_by_one_sweep_not_by_every_sweep():
    runs, audit = FakeRuns(), FakeAuditLog()
    for n in range(200):
        runs.fail(f"p-{n}", ended_at=at(n), outcome={"outcome": "failed", "failed_step": APPLY_POLICY,
                                                     "reason": "422", "transient": False})

    first = redrive(runs, audit)
    reads_by_the_first = runs.outcome_reads
    second = redrive(runs, audit, after=first.examined_until)

    assert (first.not_transient, reads_by_the_first) == (200, 200)
    assert (second.not_transient, runs.outcome_reads) == (0, 200)  # nothing new: nothing read again
