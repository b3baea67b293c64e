"""Several targets, end to end (design.md §11): a proposal with three policy scopes and four officer
groups, its calls in parallel within the pools, each applied once under a key of its own; a scope
that fails is named, retried alone, and re-driven alone by the backlog sweep.

The backend's durable records decide: each scope's live rule, the notifications per group, the
audit record, and its own count of side effects per route.
"""

from __future__ import annotations

import httpx
import pytest

from hms_management.client import AirflowClient
from tests.e2e.test_backlog_sweep import trigger_sweep, wait_for_sweeps
from tests.live_stack import wait_for_status

SCOPES = ["foia/dhs", "foia/doj", "foia/state"]
GROUPS = ["foia-officers", "privacy-office", "records-management", "permits-office"]


def several(proposal_id: str, **extra) -> dict:
    return {"id": proposal_id, "title": "Rebalance the FOIA queues",
            "targets": [{"scope": f"{scope}/{proposal_id}", "rule": {"max_days": 10 + n}}
                        for n, scope in enumerate(SCOPES)], **extra}


def live(hms: httpx.Client, scope: str) -> dict | None:
    answer = hms.get(f"/svc/policy/scopes/{scope}")
    return answer.json() if answer.status_code == 200 else None


def policy_versions(hms: httpx.Client, proposal_id: str) -> list[dict]:
    answer = hms.get(f"/svc/policy/{proposal_id}")
    return answer.json()["versions"] if answer.status_code == 200 else []


def side_effects(hms: httpx.Client, route: str) -> int:
    return hms.get("/stats").json()["routes"][route]["side_effects"]


def outcome_record(hms: httpx.Client, proposal_id: str) -> dict:
    items = hms.get("/audit/log", params={"proposalId": proposal_id}).json()["items"]
    return [item for item in items if item["action"] == "proposal.orchestrated"][-1]


def test_three_scopes_and_four_groups_each_applied_once_in_parallel_within_the_pools(management, hms, proposal_id):
    before = side_effects(hms, "POST /svc/policy"), side_effects(hms, "POST /notifications")

    final = management.submit(several(proposal_id, notify=GROUPS), wait=60)

    assert final["status"] == "completed", final
    scopes = [f"{scope}/{proposal_id}" for scope in SCOPES]
    for n, scope in enumerate(scopes):
        rule = live(hms, scope)
        assert (rule["rule"], rule["proposal_id"], rule["version"]) == ({"max_days": 10 + n}, proposal_id, 1)
    told = hms.get("/notifications", params={"proposalId": proposal_id}).json()["items"]
    assert sorted(n["group"] for n in told) == sorted(GROUPS)
    assert (side_effects(hms, "POST /svc/policy") - before[0], side_effects(hms, "POST /notifications") - before[1]) \
        == (3, 4)
    record = outcome_record(hms, proposal_id)
    assert [(t["scope"], t["state"]) for t in record["targets"]] == [(s, "applied") for s in scopes]
    assert sorted((n["group"], n["state"]) for n in record["notified"]) == sorted((g, "applied") for g in GROUPS)
    detail = management.status(proposal_id)
    assert [(t["step"], t["target"], t["state"], t["tries"]) for t in detail["targets"]] == [
        *(("apply_policy", s, "applied", 1) for s in scopes), *(("notify_officers", g, "applied", 1) for g in GROUPS)]
    assert detail["target_count"] == 7 and detail["failed_targets"] == []
    stats = hms.get("/stats").json()["routes"]
    assert stats["POST /svc/policy"]["max_in_flight"] <= 8 and stats["POST /notifications"]["max_in_flight"] <= 8


def test_one_scope_failing_twice_then_succeeding_is_sent_again_alone_and_every_scope_applies_once(
        management, hms, proposal_id):
    flaky = f"foia/doj/{proposal_id}"
    hms.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": 2, "scope": flaky})
    before = side_effects(hms, "POST /svc/policy")

    final = management.submit(several(proposal_id), wait=60)

    assert final["status"] == "completed", final
    targets = {t["target"]: t for t in management.status(proposal_id)["targets"] if t["step"] == "apply_policy"}
    assert targets[flaky]["tries"] == 3 and all(t["tries"] == 1 for s, t in targets.items() if s != flaky)
    assert side_effects(hms, "POST /svc/policy") - before == 3
    assert all(live(hms, scope)["version"] == 1 for scope in targets)


def test_a_scope_that_keeps_failing_is_named_and_a_sweeps_redrive_applies_only_it(management, agent, stack, hms,
                                                                                   proposal_id):
    flaky = f"foia/state/{proposal_id}"
    hms.put("/admin/faults", json={"route": "/svc/policy", "status": 503, "times": -1, "scope": flaky})
    management.submit(several(proposal_id))

    failed = wait_for_status(management, proposal_id, "failed", timeout=180)
    assert failed["failed_step"] == "apply_policy" and flaky in failed["reason"]
    assert failed["failed_targets"] == [flaky]
    applied = [scope for scope in (f"{s}/{proposal_id}" for s in SCOPES) if live(hms, scope)]
    assert len(applied) == 2 and flaky not in applied
    hms.delete("/admin/faults")
    before = policy_versions(hms, proposal_id)

    admin = AirflowClient(stack.api_url, "admin", stack.credentials()["airflow"]["admin"])
    [sweep] = wait_for_sweeps(admin, trigger_sweep(admin), timeout=180)
    admin.close()
    assert sweep["state"] == "success", sweep

    # The sweep re-drives every proposal that failed on a passing fault, this stack's others too:
    # what counts is this proposal's policy versions, one per scope, the flaky one new.
    assert management.wait(proposal_id, timeout=180)["status"] == "completed"
    after = policy_versions(hms, proposal_id)
    assert sorted(v["scope"] for v in after) == sorted(f"{s}/{proposal_id}" for s in SCOPES)
    assert [v for v in after if v not in before] == [v for v in after if v["scope"] == flaky]
    assert live(hms, flaky)["version"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"targets": [{"scope": "a", "rule": "r"}, {"scope": "a", "rule": "s"}]}, "targets[1].scope"),
    ({"targets": [{"scope": "", "rule": "r"}]}, "targets[0].scope"),
    ({"targets": [{"scope": f"s{n}", "rule": "r"} for n in range(51)]}, "targets"),
    ({"targets": [{"scope": "a", "rule": {"x": "y" * 70_000}}]}, "targets[0].rule"),
    ({"rule": "r", "notify": ["no-such-office"]}, "notify[0]"),
    ({"rule": "r", "targets": [{"scope": "a", "rule": "r"}]}, "targets"),
])
def test_a_bad_target_is_a_400_naming_the_field_with_no_run_and_no_call(management, agent, hms, backend_calls,
                                                                        proposal_id, body, field):
    calls_before, runs_before = backend_calls(), agent.count_runs()

    answer = management.post({"id": proposal_id, **body})

    assert answer.status_code == 400, answer.text
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert agent.count_runs() == runs_before and backend_calls() == calls_before
    through_airflow = agent.trigger({"id": proposal_id, **body})
    assert through_airflow.status_code == 400 and field in through_airflow.text


def test_the_seeds_single_rule_still_goes_to_the_default_scope_and_the_default_group(management, hms,
                                                                                      proposal_id):
    final = management.submit({"id": proposal_id, "rule": {"queue": "foia"}}, wait=60)

    assert final["status"] == "completed"
    [version] = hms.get(f"/svc/policy/{proposal_id}").json()["versions"]
    assert version["scope"] == "default"
    told = hms.get("/notifications", params={"proposalId": proposal_id}).json()["items"]
    assert [n["group"] for n in told] == ["foia-officers"]
