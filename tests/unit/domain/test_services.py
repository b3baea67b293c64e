"""Which HMS answers are retried, which refuse, and what the steps send."""

from __future__ import annotations

import pytest

from hms_management.domain.services import (
    PermanentServiceError,
    TransientServiceError,
    answer_of,
    notification_key,
    notification_payload,
    policy_key,
    policy_payload,
)


@pytest.mark.parametrize("status", [200, 202])
def test_an_expected_status_gives_the_json_object(status):
    assert answer_of("POST /svc/policy", status, '{"policy_id": "p"}', ok=(200, 202)) == {"policy_id": "p"}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_overload_and_server_errors_are_transient_and_quote_the_answer(status):
    with pytest.raises(TransientServiceError, match=f"POST /svc/policy answered {status}: .*injected fault") as err:
        answer_of("POST /svc/policy", status, '{"error": "injected fault"}')
    assert err.value.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 201])
def test_any_other_status_is_permanent(status):
    with pytest.raises(PermanentServiceError, match=f"answered {status}"):
        answer_of("POST /svc/policy", status, '{"error": "no"}')


@pytest.mark.parametrize("body", ["<html><body>Bad gateway</body></html>", "", "[1, 2]", '"text"', "null", "{"])
def test_a_success_whose_body_is_not_a_json_object_is_refused_naming_it(body):
    with pytest.raises(PermanentServiceError, match="not a JSON object"):
        answer_of("POST /svc/policy", 200, body)


def test_notification_says_the_policy_is_live_to_its_group_with_each_scopes_version():
    payload = notification_payload({"id": "p-1", "title": "FOIA"}, "privacy-office",
                                   {"foia/dhs": {"policy_id": "pol", "version": 2}})
    assert payload["message"] == "Policy #p-1 live: FOIA"
    assert (payload["proposalId"], payload["group"]) == ("p-1", "privacy-office")
    assert payload["policies"]["foia/dhs"]["version"] == 2


def test_each_scope_gets_the_proposal_with_its_own_rule_and_a_key_of_its_own():
    proposal = {"id": "p-1", "title": "T", "targets": [{"scope": "a", "rule": "r1"}], "notify": ["g"]}
    assert policy_payload(proposal, "a", "r1") == {"id": "p-1", "title": "T", "scope": "a", "rule": "r1"}
    assert (policy_key("p-1", "foia/dhs"), notification_key("p-1", "g")) == ("p-1:policy:foia/dhs", "p-1:notify:g")
