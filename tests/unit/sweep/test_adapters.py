"""The sweep's real adapters (`HttpBacklog`, `HttpAuditLog`, `SweepRuns`), over a scripted HMS service
(`hms`) and a stand-in for Airflow's REST API (`airflow_api`): the sweep's other unit tests use fakes
in their place, so the decisions the adapters make themselves are held here.

When Airflow answers 409 (a run exists), only a run holding the same proposal counts as started; a
different proposal under the same id is a conflict that the backlog entry is rejected with, never a
proposal silently "taken" and dropped. A backlog entry settled the other way meanwhile is reported
as it is; only re-drive records count against a proposal's re-drive limit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest

from hms_management.domain.proposal import DAG_ID, parse_proposal
from hms_management.domain.services import AUDIT, BACKLOG
from hms_management.domain.steps import APPLY_POLICY
from hms_management.orchestration.airflow_api import AirflowRuns
from hms_management.orchestration.hook import HmsHook
from hms_management.sweep.adapters import HttpAuditLog, HttpBacklog, SweepRuns
from hms_management.sweep.plan import REDRIVEN_ACTION, FailedRun, SweepError
from tests.scripted_hms import TOKEN

QUEUED = parse_proposal({"id": "p-1", "rule": {"queue": "foia"}, "title": "Reorder"})
RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"


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


# -- the backlog service (HttpBacklog over the HMS transport) ------------------------------------------


@pytest.fixture
def backlog(hms, proposal_records) -> HttpBacklog:
    """The real adapter; every HMS call goes through its service's rate budget, in the records database."""
    return HttpBacklog(HmsHook(BACKLOG))


def test_pending_asks_for_the_oldest_pending_entries_up_to_the_limit(hms, backlog):
    hms.answer("GET", "/backlog/proposals", 200, {"items": [{"id": "a"}, {"id": "b"}]})

    assert [entry["id"] for entry in backlog.pending(limit=10)] == ["a", "b"]
    assert parse_qs(hms.requests[0].query) == {"status": ["pending"], "limit": ["10"]}


def test_backlog_answering_503_is_a_sweep_error_that_names_the_service(hms, backlog):
    hms.answer("GET", "/backlog/proposals", 503, {"error": "injected fault"})

    with pytest.raises(SweepError, match=r"HMS backlog service is unavailable: GET /backlog/proposals answered 503"):
        backlog.pending(limit=10)


def test_backlog_marks_address_an_id_as_one_path_segment_and_redact_credentials(hms, backlog):
    # On the wire: a slash stays encoded, so "../x" is one segment (requests sends %2E as ".").
    hms.answer("POST", "/backlog/proposals/p-1.2/taken", 200, {"status": "taken"})
    hms.answer("POST", "/backlog/proposals/..%2Fx/rejected", 200, {"status": "rejected"})

    assert backlog.mark_taken("p-1.2", "proposal__p-1.2") == "taken"
    assert backlog.mark_rejected("../x", "invalid", redact=["metadata.token"]) == "rejected"

    taken, rejected = hms.requests  # never /backlog/x/rejected
    assert taken.body == {"run_id": "proposal__p-1.2"}
    assert rejected.body == {"reason": "invalid", "redact": ["metadata.token"]}
    assert rejected.headers["Authorization"] == TOKEN


def test_an_id_of_dots_is_marked_at_its_own_entry_never_at_a_route_the_client_collapsed_it_into(hms, backlog):
    # Unescaped, ".." would be dropped from the URL with the segment before it: POST /backlog/rejected.
    hms.answer("POST", "/backlog/proposals/../rejected", 200, {"status": "rejected"})

    assert backlog.mark_rejected("..", "invalid") == "rejected"
    assert [r.path for r in hms.requests] == ["/backlog/proposals/../rejected"]


def test_an_entry_settled_the_other_way_meanwhile_is_reported_as_it_is_never_as_marked(hms, backlog):
    hms.answer("POST", "/backlog/proposals/p-1/rejected", 409, {"id": "p-1", "status": "taken"})

    assert backlog.mark_rejected("p-1", "invalid") == "taken"


def test_an_entry_that_is_gone_is_reported_gone(hms, backlog):
    hms.answer("POST", "/backlog/proposals/p-1/taken", 404, {"error": "no such entry"})

    assert backlog.mark_taken("p-1", "proposal__p-1") == "gone"


def test_a_mark_the_backlog_refuses_otherwise_is_a_sweep_error_quoting_it(hms, backlog):
    hms.answer("POST", "/backlog/proposals/p-1/taken", 400, {"error": "run_id is required"})

    with pytest.raises(SweepError, match="HMS backlog service refused the call: .*400.*run_id is required"):
        backlog.mark_taken("p-1", "proposal__p-1")


def test_a_rejection_keeps_at_most_2000_characters_of_its_reason(hms, backlog):
    hms.answer("POST", "/backlog/proposals/p-1/rejected", 200, {"status": "rejected"})

    backlog.mark_rejected("p-1", "x" * 5000)

    assert len(hms.requests[0].body["reason"]) == 2000


# -- the audit log (HttpAuditLog) ----------------------------------------------------------------------


@pytest.fixture
def audit_log(hms, proposal_records) -> HttpAuditLog:
    return HttpAuditLog(HmsHook(AUDIT))


def test_only_re_drive_records_of_the_proposal_count_as_its_re_drives(hms, audit_log):
    hms.answer("GET", "/audit/log", 200, {"items": [
        {"proposalId": "p-1", "action": "proposal.orchestrated", "outcome": "failed"},
        {"proposalId": "p-1", "action": REDRIVEN_ACTION, "step": APPLY_POLICY},
        {"proposalId": "p-1", "action": "proposal.orchestrated", "outcome": "failed"},
    ]})

    assert audit_log.redrives("p-1") == [{"proposalId": "p-1", "action": REDRIVEN_ACTION, "step": APPLY_POLICY}]
    assert parse_qs(hms.requests[0].query) == {"proposalId": ["p-1"]}


def test_a_re_drive_record_is_posted_under_its_key(hms, audit_log):
    hms.answer("POST", "/audit/log", 200, {"id": 1})

    audit_log.record({"proposalId": "p-1", "action": REDRIVEN_ACTION}, key="redrive-p-1-1")

    [posted] = hms.requests
    assert posted.body == {"proposalId": "p-1", "action": REDRIVEN_ACTION}
    assert posted.headers["Idempotency-Key"] == "redrive-p-1-1"


# -- proposal runs (SweepRuns over AirflowRuns and Airflow's official client) --------------------------


def run_body(proposal_id: str, state: str, *, conf: dict | None, end_date: str | None = None) -> dict:
    """A run as Airflow's REST API answers it (the fields its schema requires)."""
    return {"dag_id": DAG_ID, "dag_display_name": DAG_ID, "dag_run_id": f"proposal__{proposal_id}",
            "dag_versions": [], "run_after": "2026-12-01T10:00:00Z", "run_type": "manual", "state": state,
            "conf": conf, "end_date": end_date}


def task_body(proposal_id: str, task_id: str) -> dict:
    return {"id": str(uuid.uuid4()), "dag_id": DAG_ID, "dag_display_name": DAG_ID,
            "dag_run_id": f"proposal__{proposal_id}", "task_id": task_id, "task_display_name": task_id,
            "map_index": -1, "try_number": 1, "max_tries": 3, "pool": "default_pool", "pool_slots": 1,
            "executor_config": "{}", "run_after": "2026-12-01T10:00:00Z"}


@pytest.fixture
def airflow_runs(airflow_api) -> SweepRuns:
    """The real adapter over the real client, logged in as the sweep's user."""
    airflow_api.answer("POST", "/auth/token", 201, {"access_token": "sweeper-token"})
    with AirflowRuns(airflow_api.url, "backlog_sweeper", "pw") as api:
        yield SweepRuns(api)


def test_failed_runs_are_asked_for_oldest_first_after_a_time_and_read_with_their_proposal(airflow_api, airflow_runs):
    airflow_api.answer("GET", RUNS, 200, {"total_entries": 2, "dag_runs": [
        run_body("p-1", "failed", conf={"id": "p-1", "rule": "r"}, end_date="2026-12-01T10:05:00Z"),
        run_body("p-2", "failed", conf=None, end_date="2026-12-01T10:06:00+00:00"),
    ]})

    failed = airflow_runs.failed_runs(ended_after=datetime(2026, 12, 1, 10, 0, tzinfo=UTC), limit=2)

    assert failed == [FailedRun("proposal__p-1", {"id": "p-1", "rule": "r"}, "2026-12-01T10:05:00+00:00"),
                      FailedRun("proposal__p-2", {}, "2026-12-01T10:06:00+00:00")]
    asked = parse_qs(airflow_api.to("GET", RUNS)[0].query)
    assert (asked["state"], asked["order_by"], asked["limit"]) == (["failed"], ["end_date"], ["2"])
    assert datetime.fromisoformat(asked["end_date_gt"][0]) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_a_run_started_with_the_proposal_as_its_conf_under_the_proposals_run_id(airflow_api, airflow_runs):
    airflow_api.answer("POST", RUNS, 200, run_body("p-1", "queued", conf=QUEUED.as_conf()))

    assert airflow_runs.start(QUEUED) == ("started", None)

    [sent] = airflow_api.to("POST", RUNS)
    assert (sent.body["dag_run_id"], sent.body["conf"]) == ("proposal__p-1", QUEUED.as_conf())
    assert sent.headers["Authorization"] == "Bearer sweeper-token"


def test_the_admission_checks_refusal_is_passed_on_with_its_detail(airflow_api, airflow_runs):
    airflow_api.answer("POST", RUNS, 400, {"detail": "conf.day: Funday is not a day", "errors": []})

    assert airflow_runs.start(QUEUED) == ("refused", "conf.day: Funday is not a day")


def test_a_run_that_exists_is_read_back_to_tell_the_same_proposal_from_another(airflow_api, airflow_runs):
    airflow_api.answer("POST", RUNS, 409, {"detail": "exists"})
    airflow_api.answer("GET", f"{RUNS}/proposal__p-1", 200, run_body("p-1", "running", conf={"id": "p-1", "rule": "x"}))

    answer, _ = airflow_runs.start(QUEUED)

    assert answer == "conflict"


def test_an_expired_token_is_renewed_once_and_the_call_made_again(airflow_api, airflow_runs):
    airflow_api.answer("POST", "/auth/token", 201, {"access_token": "fresh"})  # after the fixture's first
    airflow_api.answer("POST", RUNS, 401, {"detail": "token expired"})
    airflow_api.answer("POST", RUNS, 200, run_body("p-1", "queued", conf=QUEUED.as_conf()))

    assert airflow_runs.start(QUEUED) == ("started", None)

    assert [r.headers["Authorization"] for r in airflow_api.to("POST", RUNS)] == ["Bearer sweeper-token",
                                                                                  "Bearer fresh"]


def test_airflow_refusing_the_sweeps_user_is_a_sweep_error_naming_its_connection(airflow_api, airflow_runs):
    airflow_api.answer("GET", RUNS, 403, {"detail": "Forbidden"})

    with pytest.raises(SweepError, match="refused to list failed proposal runs with 403: check the airflow_api"):
        airflow_runs.failed_runs(ended_after=datetime(2026, 12, 1, tzinfo=UTC), limit=1)


def test_a_rerun_clears_the_step_and_every_step_after_it_and_the_run_with_them(airflow_api, airflow_runs,
                                                                               proposal_records):
    cleared_tasks = [task_body("p-1", "record_audit"), task_body("p-1", APPLY_POLICY)]
    airflow_api.answer("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", 200,
                       {"total_entries": 2, "task_instances": cleared_tasks})

    assert airflow_runs.rerun_from("p-1", APPLY_POLICY) == [APPLY_POLICY, "record_audit"]

    [cleared] = airflow_api.to("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances")
    asked = {"dag_run_id": "proposal__p-1", "task_ids": [APPLY_POLICY], "include_downstream": True,
             "only_failed": False, "reset_dag_runs": True, "dry_run": False}
    assert {key: cleared.body.get(key) for key in asked} == asked
