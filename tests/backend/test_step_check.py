"""The check before each step: only an approved, unrevoked decision of that proposal, for a service
not suspended, lets the step call its service; everything else says why not."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings
from hms_backend.storage import Storage


def validated(api: TestClient, proposal_id: str = "p-1", **fields) -> str:
    return api.post("/gov/validate", json={"proposal": {"id": proposal_id, **fields}}).json()["decision_id"]


def check(api: TestClient, decision_id: str, proposal_id: str = "p-1", service: str = "policy", **kwargs):
    body = {"decision_id": decision_id, "proposal_id": proposal_id, "step": f"apply_{service}", "service": service}
    return api.post("/gov/check", json=body, **kwargs)


def suspend(api: TestClient, service: str, reason: str = "incident 42", by: str = "ops") -> dict:
    answer = api.put(f"/gov/suspensions/{service}", json={"reason": reason, "by": by})
    answer.raise_for_status()
    return answer.json()


def test_an_approved_decision_may_take_its_step(api: TestClient):
    decision_id = validated(api)

    answer = check(api, decision_id)

    assert answer.status_code == 200
    checked_at = answer.json()["checked_at"]
    assert answer.json() == {"status": "approved", "decision_id": decision_id, "checked_at": checked_at}
    assert answer.json()["checked_at"] >= api.get(f"/gov/decisions/{decision_id}").json()["created_at"]


def test_a_revoked_decision_says_who_revoked_it_when_and_why(api: TestClient):
    decision_id = validated(api)
    revoked = api.post(f"/gov/decisions/{decision_id}/revoke", json={"reason": "withdrawn", "by": "carol"}).json()

    answer = check(api, decision_id)

    assert answer.status_code == 200
    assert answer.json() == {
        "status": "revoked",
        "reason": "withdrawn",
        "by": "carol",
        "at": revoked["revoked_at"],
        "decision_id": decision_id,
        "checked_at": answer.json()["checked_at"],
    }


@pytest.mark.parametrize(("fields", "status"), [({"day": "Sun"}, "denied"), ({"impact": "high"}, "review")])
def test_a_decision_not_approved_answers_its_own_status_and_reason(api: TestClient, fields: dict, status: str):
    decision_id = validated(api, **fields)
    decision = api.get(f"/gov/decisions/{decision_id}").json()

    answer = check(api, decision_id)

    assert answer.status_code == 200
    assert answer.json() == {
        "status": status,
        "reason": decision["reason"],
        "decision_id": decision_id,
        "checked_at": answer.json()["checked_at"],
    }


def test_a_suspended_service_holds_back_an_approved_step_until_lifted(api: TestClient):
    decision_id = validated(api)
    suspension = suspend(api, "policy", reason="bad rules went live", by="ops-lead")

    held = check(api, decision_id, service="policy").json()
    other_service = check(api, decision_id, service="notifications").json()
    api.delete("/gov/suspensions/policy").raise_for_status()
    lifted = check(api, decision_id, service="policy").json()

    assert {key: held[key] for key in ("status", "service", "reason", "by", "at", "decision_id")} == {
        "status": "suspended",
        "service": "policy",
        "reason": "bad rules went live",
        "by": "ops-lead",
        "at": suspension["since"],
        "decision_id": decision_id,
    }
    assert other_service["status"] == lifted["status"] == "approved"


def test_suspending_all_holds_back_every_service(api: TestClient):
    decision_id = validated(api)
    suspend(api, "all")

    answers = [check(api, decision_id, service=service).json() for service in ("policy", "notifications", "anything")]

    assert [(a["status"], a["service"]) for a in answers] == [("suspended", "all")] * 3


def test_the_services_own_suspension_is_named_before_all_and_outlives_its_lifting(api: TestClient):
    decision_id = validated(api)
    suspend(api, "all", reason="everything stops")
    suspend(api, "policy", reason="policy engine broken")

    both = check(api, decision_id).json()
    api.delete("/gov/suspensions/all").raise_for_status()
    policy_only = check(api, decision_id).json()

    assert (both["service"], both["reason"]) == ("policy", "policy engine broken")
    assert (policy_only["status"], policy_only["service"]) == ("suspended", "policy")


def test_a_revocation_wins_over_a_suspension(api: TestClient):
    decision_id = validated(api)
    suspend(api, "all")
    api.post(f"/gov/decisions/{decision_id}/revoke", json={"reason": "withdrawn", "by": "carol"})

    assert check(api, decision_id).json()["status"] == "revoked"


@pytest.mark.parametrize(("fields", "status"), [({"day": "Sun"}, "denied"), ({"impact": "high"}, "review")])
def test_a_suspension_does_not_hide_a_decision_that_would_not_go_on_anyway(api: TestClient, fields, status):
    decision_id = validated(api, **fields)
    suspend(api, "policy")

    assert check(api, decision_id).json()["status"] == status


def test_an_unknown_decision_is_404(api: TestClient):
    answer = check(api, "nope")

    assert answer.status_code == 404
    assert answer.json() == {"error": "no decision nope"}


def test_a_decision_of_another_proposal_is_409_saying_whose_it_is(api: TestClient):
    decision_id = validated(api, "p-1")

    answer = check(api, decision_id, proposal_id="p-2")

    assert answer.status_code == 409
    assert answer.json() == {
        "error": f"decision {decision_id} belongs to proposal p-1, not p-2",
        "decision_id": decision_id,
        "proposal_id": "p-1",
    }


@pytest.mark.parametrize("missing", ["decision_id", "proposal_id", "step", "service"])
def test_a_check_names_the_decision_proposal_step_and_service(api: TestClient, missing: str):
    body = {"decision_id": validated(api), "proposal_id": "p-1", "step": "apply_policy", "service": "policy"}

    without = api.post("/gov/check", json={key: value for key, value in body.items() if key != missing})
    empty = api.post("/gov/check", json={**body, missing: ""})

    assert without.status_code == empty.status_code == 422
    assert missing in without.json()["error"]


def test_a_check_needs_a_token(api: TestClient):
    decision_id = validated(api)
    del api.headers["Authorization"]

    assert check(api, decision_id).status_code == 401


def test_a_check_changes_nothing_and_an_idempotency_key_never_replays_an_old_answer(api: TestClient, route_stats):
    decision_id = validated(api)
    key = {"Idempotency-Key": "p-1:apply_policy:check"}

    before = check(api, decision_id, headers=key)
    api.post(f"/gov/decisions/{decision_id}/revoke", json={"reason": "withdrawn", "by": "carol"})
    after = check(api, decision_id, headers=key)

    assert (before.json()["status"], after.json()["status"]) == ("approved", "revoked")
    assert "Idempotent-Replayed" not in after.headers
    stats = route_stats("POST /gov/check")
    assert (stats["calls"], stats["side_effects"]) == (2, 0)


def test_a_check_is_one_read_that_scans_no_table(api: TestClient, settings: Settings):
    decision_id = validated(api)
    suspend(api, "notifications")
    for n in range(20):
        validated(api, f"p-other-{n}")
    statements: list[str] = []
    connection = sqlite3.connect(settings.database_path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.set_trace_callback(statements.append)

    found = Storage(connection).decision_for_step(decision_id, service="policy")
    connection.set_trace_callback(None)
    plan = [row["detail"] for row in connection.execute(f"EXPLAIN QUERY PLAN {statements[0]}")]
    connection.close()

    assert found is not None and found[1] is None
    assert len(statements) == 1
    assert plan and not [step for step in plan if step.startswith("SCAN")], plan
    assert any("decisions" in step for step in plan) and any("suspensions" in step for step in plan), plan
