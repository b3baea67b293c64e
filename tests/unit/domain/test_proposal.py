"""The proposal model: every field rule of design.md §2, with the field and the reason."""

from __future__ import annotations

import pytest

from hms_management.domain.proposal import (
    MAX_METADATA_BYTES,
    MAX_RULE_BYTES,
    InvalidProposal,
    parse_proposal,
    run_id_for,
)


def errors_of(data) -> dict[str, str]:
    with pytest.raises(InvalidProposal) as caught:
        parse_proposal(data)
    return {e["field"]: e["reason"] for e in caught.value.errors}


def test_a_minimal_proposal_gets_its_defaults_and_run_id():
    proposal = parse_proposal({"id": "foia-1", "rule": "oldest first"})

    assert proposal.as_conf() == {"id": "foia-1", "rule": "oldest first", "priority": "normal", "impact": "normal"}
    assert proposal.run_id == "proposal__foia-1" == run_id_for("foia-1")


@pytest.mark.parametrize("good_id", ["a", "A9", "foia_2026.11-x", "x" * 64])
def test_ids_that_fit_the_run_id_pattern_are_accepted(good_id):
    assert parse_proposal({"id": good_id, "rule": "r"}).id == good_id


@pytest.mark.parametrize(
    "bad_id",
    ["", "x" * 65, "-leading-dash", ".hidden", "../x", "a/b", "a b", "naïve", "ａbc", "a\x00b", "a\n", 7],
)
def test_ids_that_would_break_the_run_id_are_refused(bad_id):
    assert "id" in errors_of({"id": bad_id, "rule": "r"})


def test_missing_fields_are_named():
    assert errors_of({}) == {"id": "is required", "rule": "is required (or targets, for several scopes)"}


def test_unknown_keys_are_refused_with_the_list_of_fields():
    reason = errors_of({"id": "p", "rule": "r", "colour": "red"})["colour"]
    assert reason.startswith("unknown field") and "submitted_by" in reason


@pytest.mark.parametrize("key", ["token", "api_key", "password", "Authorization", "hms-secret", "jwt"])
def test_credential_like_keys_are_refused_with_why(key):
    reason = errors_of({"id": "p", "rule": "r", key: "x"})[key]
    assert "plain text" in reason and "connections" in reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rule", {"blob": "x" * MAX_RULE_BYTES}),
        ("rule", ""),
        ("rule", {}),
        ("rule", 42),
        ("metadata", {"blob": "x" * MAX_METADATA_BYTES}),
        ("metadata", "not an object"),
        ("title", "t" * 201),
        ("day", "Funday"),
        ("day", "sat"),
        ("priority", "urgent"),
        ("impact", "HIGH"),
        ("submitted_by", ""),
    ],
)
def test_field_rules(field, value):
    data = {"id": "p", "rule": "r", field: value}
    assert field in errors_of(data)


def test_a_proposal_must_be_an_object():
    assert errors_of(["id", "rule"]) == {"(proposal)": "must be a JSON object"}


@pytest.mark.parametrize(("proposal", "paths"), [
    ({"metadata": {"auth": {"api_key": "k"}}}, ["metadata.auth", "metadata.auth.api_key"]),
    ({"rule": {"steps": [{"q": 1}, {"Password": "p"}]}}, ["rule.steps[1].Password"]),
    ({"rule": {"client": {"accessToken": "t", "x-API-Key": "k"}}},
     ["rule.client.accessToken", "rule.client.x-API-Key"]),
    ({"metadata": {"private_key": "-----BEGIN", "author": "ana", "tokenizer": "bpe"}}, ["metadata.private_key"]),
])
def test_credential_like_keys_are_refused_at_any_depth_each_with_its_path(proposal, paths):
    errors = errors_of({"id": "p-1", "rule": "r", **proposal})

    assert list(errors) == paths
    assert all("stored and shown in plain text" in reason for reason in errors.values())


def test_keys_that_only_look_alike_are_not_credentials():
    assert parse_proposal({"id": "p-1", "rule": {"author": "ana", "tokenizer": "bpe", "authority": "x"}})
