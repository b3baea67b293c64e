"""Several targets (design.md §11) in the proposal model: policy scopes with a rule each, officer
groups to tell; the seed's single `rule` stays one scope; each bad field named."""

from __future__ import annotations

import pytest

from hms_management.domain.proposal import DEFAULT_SCOPE, MAX_RULE_BYTES, Deployment, InvalidProposal, parse_proposal

HERE = Deployment(max_targets=3, officer_groups=frozenset({"foia-officers", "privacy-office"}))
TWO = [{"scope": "foia/dhs", "rule": {"max_days": 20}}, {"scope": "foia/doj", "rule": "oldest first"}]


def errors_of(data, deployment=HERE) -> dict[str, str]:
    with pytest.raises(InvalidProposal) as caught:
        parse_proposal(data, deployment)
    return {e["field"]: e["reason"] for e in caught.value.errors}


def test_targets_and_groups_are_a_proposal_and_the_seeds_rule_is_one_scope():
    several = parse_proposal({"id": "p", "targets": TWO, "notify": ["privacy-office"]}, HERE)
    seed = parse_proposal({"id": "p", "rule": "r"}, HERE)

    assert [(t.scope, t.rule) for t in several.policy_targets()] == [("foia/dhs", {"max_days": 20}),
                                                                     ("foia/doj", "oldest first")]
    assert several.as_conf()["notify"] == ["privacy-office"]
    assert [(t.scope, t.rule) for t in seed.policy_targets()] == [(DEFAULT_SCOPE, "r")]
    assert "targets" not in seed.as_conf() and "notify" not in seed.as_conf()  # the seed's conf is as it was


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"id": "p", "rule": "r", "targets": TWO}, "targets", "not both"),
    ({"id": "p"}, "rule", "is required"),
    ({"id": "p", "targets": []}, "targets", "at least 1"),
    ({"id": "p", "targets": [{"scope": "", "rule": "r"}]}, "targets[0].scope", "at least 1"),
    ({"id": "p", "targets": [{"scope": "  ", "rule": "r"}]}, "targets[0].scope", "blank"),
    ({"id": "p", "targets": [{"scope": "a/../b", "rule": "r"}]}, "targets[0].scope", "'..'"),
    ({"id": "p", "targets": [{"scope": "a\nb", "rule": "r"}]}, "targets[0].scope", "control"),
    ({"id": "p", "targets": [*TWO, {"scope": "foia/dhs", "rule": "x"}]}, "targets[2].scope", "named in targets[0]"),
    ({"id": "p", "targets": [*TWO, *({"scope": f"s{n}", "rule": "r"} for n in range(2))]}, "targets", "at most 3"),
    ({"id": "p", "targets": [{"scope": "a", "rule": {"blob": "x" * MAX_RULE_BYTES}}]}, "targets[0].rule", "64 KiB"),
    ({"id": "p", "targets": [{"scope": "a", "rule": {}}]}, "targets[0].rule", "empty"),
    ({"id": "p", "targets": [{"scope": "a", "rule": 7}]}, "targets[0].rule", "object or a string"),
    ({"id": "p", "targets": [{"scope": "a", "rule": "r", "colour": "red"}]}, "targets[0].colour", "unknown field"),
    ({"id": "p", "targets": [{"rule": "r"}]}, "targets[0].scope", "is required"),
    ({"id": "p", "rule": "r", "notify": []}, "notify", "at least 1"),
    ({"id": "p", "rule": "r", "notify": ["foia-officers", "mayors"]}, "notify[1]", "no officer group 'mayors'"),
    ({"id": "p", "rule": "r", "notify": ["foia-officers", "foia-officers"]}, "notify[1]", "named twice"),
    ({"id": "p", "rule": "r", "notify": ["bad group!"]}, "notify", "not a group name"),
    ({"id": "p", "rule": "r", "notify": "foia-officers"}, "notify", "list"),
])
def test_a_bad_target_is_refused_naming_the_field(data, field, words):
    errors = errors_of(data)
    assert field in errors, errors
    assert words in errors[field]


def test_a_credential_inside_a_targets_rule_is_refused_with_its_path():
    errors = errors_of({"id": "p", "targets": [{"scope": "a", "rule": {"steps": [{"apiKey": "x"}]}}]})
    assert list(errors) == ["targets[0].rule.steps[0].apiKey"]


def test_without_a_deployment_the_groups_and_the_count_are_not_judged():
    proposal = parse_proposal({"id": "p", "targets": TWO * 1, "notify": ["anyone"]})
    assert proposal.notify == ["anyone"]
