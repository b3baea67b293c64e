"""Suspensions, the kill switch: a service (or all of them) suspended with who and why, until lifted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings, create_app

INCIDENT = {"reason": "policy engine pushes bad rules", "by": "ops-lead"}


def test_a_suspension_is_listed_until_it_is_lifted(api: TestClient, route_stats):
    suspended = api.put("/gov/suspensions/policy", json=INCIDENT)

    listed = api.get("/gov/suspensions").json()
    lifted = api.delete("/gov/suspensions/policy")

    assert suspended.status_code == 200
    assert suspended.json() == {
        "service": "policy",
        "reason": "policy engine pushes bad rules",
        "by": "ops-lead",
        "since": suspended.json()["since"],
    }
    assert listed == {"items": [suspended.json()]}
    assert lifted.status_code == 200
    assert lifted.json() == {"service": "policy", "lifted_at": lifted.json()["lifted_at"]}
    assert lifted.json()["lifted_at"] >= suspended.json()["since"]
    assert api.get("/gov/suspensions").json() == {"items": []}
    assert route_stats("PUT /gov/suspensions/{service}")["side_effects"] == 1
    assert route_stats("DELETE /gov/suspensions/{service}")["side_effects"] == 1


def test_suspending_again_keeps_since_and_takes_the_new_reason(api: TestClient):
    first = api.put("/gov/suspensions/all", json=INCIDENT).json()

    again = api.put("/gov/suspensions/all", json={"reason": "still investigating", "by": "ops-night"}).json()

    assert again == {"service": "all", "reason": "still investigating", "by": "ops-night", "since": first["since"]}
    assert api.get("/gov/suspensions").json()["items"] == [again]


def test_suspensions_are_listed_oldest_first(api: TestClient):
    for service in ("notifications", "all", "policy"):
        api.put(f"/gov/suspensions/{service}", json=INCIDENT).raise_for_status()
    api.put("/gov/suspensions/notifications", json={"reason": "new reason", "by": "ops"})  # keeps its place

    items = api.get("/gov/suspensions").json()["items"]

    assert [s["service"] for s in items] == ["notifications", "all", "policy"]
    assert [s["since"] for s in items] == sorted(s["since"] for s in items)


def test_lifting_a_service_that_is_not_suspended_is_404(api: TestClient):
    api.put("/gov/suspensions/all", json=INCIDENT)

    answer = api.delete("/gov/suspensions/policy")

    assert answer.status_code == 404
    assert answer.json() == {"error": "policy is not suspended"}
    assert [s["service"] for s in api.get("/gov/suspensions").json()["items"]] == ["all"]


@pytest.mark.parametrize("method", ["put", "delete"])
def test_a_service_that_cannot_be_suspended_is_a_400_naming_it(api: TestClient, method: str):
    call = getattr(api, method)
    kwargs = {"json": INCIDENT} if method == "put" else {}

    answer = call("/gov/suspensions/polcy", **kwargs)

    assert answer.status_code == 400
    assert "'polcy'" in answer.json()["error"]
    assert "policy, notifications, all" in answer.json()["error"]
    assert answer.json()["service"] == "polcy"
    assert api.get("/gov/suspensions").json() == {"items": []}


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": "why"}, {"by": "ops"}, {"reason": "", "by": "ops"}, {"reason": "why", "by": ""}],
    ids=["nothing", "no-by", "no-reason", "empty-reason", "empty-by"],
)
def test_a_suspension_needs_a_reason_and_who(api: TestClient, body: dict):
    assert api.put("/gov/suspensions/policy", json=body).status_code == 422
    assert api.get("/gov/suspensions").json() == {"items": []}


def test_suspensions_need_a_token(api: TestClient):
    del api.headers["Authorization"]

    assert api.put("/gov/suspensions/policy", json=INCIDENT).status_code == 401
    assert api.get("/gov/suspensions").status_code == 401
    assert api.delete("/gov/suspensions/policy").status_code == 401


def test_a_suspension_survives_a_restart(settings: Settings, token: str):
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings), headers=auth) as before:
        suspended = before.put("/gov/suspensions/notifications", json=INCIDENT).json()
        decision_id = before.post("/gov/validate", json={"proposal": {"id": "p-1"}}).json()["decision_id"]

    with TestClient(create_app(settings), headers=auth) as after:
        listed = after.get("/gov/suspensions").json()["items"]
        step = {"step": "notify_officers", "service": "notifications"}
        answer = after.post("/gov/check", json={"decision_id": decision_id, "proposal_id": "p-1", **step}).json()

    assert listed == [suspended]
    assert answer["status"] == "suspended"
