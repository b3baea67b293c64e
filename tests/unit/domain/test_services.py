"""Which HMS answers are retried, the idempotency keys and the payloads."""

from __future__ import annotations

import pytest
import requests

from hms_management.domain.services import (
    SERVICES,
    PermanentServiceError,
    TransientServiceError,
    classify,
    idempotency_key,
    notification_payload,
)


def response(status: int, body: str = "{}") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body.encode()
    r.url = "http://127.0.0.1:8090/svc/policy"
    r.request = requests.Request("POST", r.url).prepare()
    return r


@pytest.mark.parametrize("status", [200, 201, 202])
def test_2xx_passes(status):
    classify(response(status))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_overload_and_server_errors_are_transient(status):
    with pytest.raises(TransientServiceError, match=str(status)):
        classify(response(status, '{"error": "injected fault"}'))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_permanent_and_carry_the_answer(status):
    with pytest.raises(PermanentServiceError, match="injected"):
        classify(response(status, '{"error": "injected"}'))


def test_idempotency_key_is_proposal_and_step():
    assert idempotency_key("p-1", "apply_policy") == "p-1:apply_policy"


def test_each_service_has_its_own_connection_and_pool():
    assert len({s.conn_id for s in SERVICES}) == len({s.pool for s in SERVICES}) == len(SERVICES)


def test_notification_says_the_policy_is_live():
    payload = notification_payload({"id": "p-1", "title": "FOIA"}, {"policy_id": "pol", "version": 2})
    assert payload["message"] == "Policy #p-1 live: FOIA"
    assert payload["proposalId"] == "p-1" and payload["policy"]["version"] == 2
