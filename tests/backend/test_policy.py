"""The policy service puts a proposal's rule live in its scope and counts versions per proposal and per scope."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient


def test_each_application_of_a_proposal_is_a_new_version(api: TestClient):
    first = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 30}, "title": "Slower"})
    second = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 20}})
    other = api.post("/svc/policy", json={"id": "p-2", "rule": "close the bridge"})

    assert first.status_code == second.status_code == other.status_code == 200
    assert (first.json()["version"], second.json()["version"], other.json()["version"]) == (1, 2, 1)
    assert first.json()["policy_id"] != second.json()["policy_id"]


def test_policy_history_lists_versions_with_their_rules(api: TestClient):
    applied = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 30}}).json()
    api.post("/svc/policy", json={"id": "p-1", "rule": "no limit"})

    history = api.get("/svc/policy/p-1").json()

    assert history["proposal_id"] == "p-1"
    assert [(v["version"], v["rule"]) for v in history["versions"]] == [(1, {"speed_limit": 30}), (2, "no limit")]
    assert history["versions"][0]["policy_id"] == applied["policy_id"]
    assert history["versions"][0]["applied_at"] == applied["applied_at"]


def test_policy_history_of_an_unknown_proposal_is_404(api: TestClient):
    assert api.get("/svc/policy/never-applied").status_code == 404


def test_policy_needs_an_id_and_a_rule(api: TestClient, route_stats):
    assert api.post("/svc/policy", json={"rule": "r"}).status_code == 422
    assert api.post("/svc/policy", json={"id": "p-1"}).status_code == 422
    assert api.post("/svc/policy", json={"id": "p-1", "rule": 42}).status_code == 422
    assert route_stats("POST /svc/policy")["side_effects"] == 0


def test_body_without_a_json_content_type_is_422_with_a_hint(api: TestClient):
    answer = api.post("/svc/policy", content=b'{"id": "p-1", "rule": "r"}')

    assert answer.status_code == 422
    assert "Content-Type: application/json" in answer.json()["error"]


# Scopes: each applied policy becomes the live rule of its scope.


def live(api: TestClient, scope: str):
    return api.get(f"/svc/policy/scopes/{quote(scope, safe='/')}")


def test_a_policy_without_a_scope_goes_live_in_the_default_scope(api: TestClient):
    applied = api.post("/svc/policy", json={"id": "p-1", "rule": {"speed_limit": 30}}).json()

    rule = live(api, "default")

    assert (applied["scope"], applied["scope_version"], applied["version"]) == ("default", 1, 1)
    assert rule.status_code == 200
    assert rule.json() == {
        "scope": "default",
        "rule": {"speed_limit": 30},
        "version": 1,
        "proposal_id": "p-1",
        "applied_at": applied["applied_at"],
        "policy_id": applied["policy_id"],
    }
    assert api.get("/svc/policy/p-1").json()["versions"][0]["scope"] == "default"


def test_the_last_policy_applied_in_a_scope_is_its_live_rule(api: TestClient):
    first = api.post("/svc/policy", json={"id": "p-1", "rule": "open", "scope": "foia/dhs"}).json()
    second = api.post("/svc/policy", json={"id": "p-2", "rule": "closed", "scope": "foia/dhs"}).json()
    elsewhere = api.post("/svc/policy", json={"id": "p-3", "rule": "other", "scope": "foia/doj"}).json()

    dhs, doj = live(api, "foia/dhs").json(), live(api, "foia/doj").json()

    assert [(a["scope_version"], a["version"]) for a in (first, second, elsewhere)] == [(1, 1), (2, 1), (1, 1)]
    assert (dhs["rule"], dhs["version"], dhs["proposal_id"]) == ("closed", 2, "p-2")
    assert (doj["rule"], doj["version"], doj["proposal_id"]) == ("other", 1, "p-3")


def test_a_proposal_with_several_scopes_has_a_version_per_application_and_per_scope(api: TestClient):
    api.post("/svc/policy", json={"id": "p-0", "rule": "older", "scope": "foia/doj"})
    for scope in ("foia/dhs", "foia/doj"):
        api.post("/svc/policy", json={"id": "p-1", "rule": {"scope": scope}, "scope": scope}).raise_for_status()

    versions = api.get("/svc/policy/p-1").json()["versions"]

    assert [(v["version"], v["scope"], v["scope_version"]) for v in versions] == [
        (1, "foia/dhs", 1),
        (2, "foia/doj", 2),
    ]
    assert live(api, "foia/doj").json()["rule"] == {"scope": "foia/doj"}


def test_a_scope_without_a_live_rule_is_404(api: TestClient):
    api.post("/svc/policy", json={"id": "p-1", "rule": "r", "scope": "foia/dhs"})

    answer = live(api, "foia/none")

    assert answer.status_code == 404
    assert answer.json() == {"error": "no live rule for scope foia/none"}
    assert live(api, "foia").status_code == 404  # a prefix is not a scope


def test_scope_routes_and_proposal_routes_do_not_swallow_each_other(api: TestClient):
    # A proposal may be called "scopes": /svc/policy/scopes is its history, /svc/policy/scopes/… a scope.
    api.post("/svc/policy", json={"id": "scopes", "rule": "a proposal", "scope": "default"})
    api.post("/svc/policy", json={"id": "p-1", "rule": "deep", "scope": "a/b/c/d"})

    history = api.get("/svc/policy/scopes").json()
    deep = live(api, "a/b/c/d").json()

    assert [v["rule"] for v in history["versions"]] == ["a proposal"]
    assert (deep["scope"], deep["rule"]) == ("a/b/c/d", "deep")
    assert live(api, "default").json()["proposal_id"] == "scopes"


def test_a_scope_with_spaces_and_url_characters_is_read_back_url_encoded(api: TestClient):
    scope = "ops & privacy/2026 q1?draft#2 é"
    api.post("/svc/policy", json={"id": "p-1", "rule": "r", "scope": scope}).raise_for_status()

    assert live(api, scope).json()["scope"] == scope


@pytest.mark.parametrize(
    ("scope", "says"),
    [
        ("", "scope"),
        ("x" * 201, "scope"),
        (None, "scope"),
        (7, "scope"),
        ("foia\ndhs", "control characters"),
        ("foia\x7f", "control characters"),
        ("foia/../doj", "'.' or '..'"),
        ("./foia", "'.' or '..'"),
    ],
    ids=["empty", "too-long", "null", "number", "newline", "delete", "dot-dot", "dot"],
)
def test_a_scope_that_could_not_be_read_back_is_422(api: TestClient, route_stats, scope, says: str):
    answer = api.post("/svc/policy", json={"id": "p-1", "rule": "r", "scope": scope})

    assert answer.status_code == 422
    assert says in answer.json()["error"]
    assert route_stats("POST /svc/policy")["side_effects"] == 0


def test_a_scope_of_200_characters_is_fine(api: TestClient):
    assert api.post("/svc/policy", json={"id": "p-1", "rule": "r", "scope": "s" * 200}).status_code == 200


def test_a_retried_policy_with_its_key_moves_no_scope_version(api: TestClient):
    body, key = {"id": "p-1", "rule": "r", "scope": "foia/dhs"}, {"Idempotency-Key": "p-1:policy:foia/dhs"}

    first = api.post("/svc/policy", json=body, headers=key)
    retried = api.post("/svc/policy", json=body, headers=key)

    assert retried.content == first.content
    assert live(api, "foia/dhs").json()["version"] == 1
