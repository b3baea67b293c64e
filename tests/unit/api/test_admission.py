"""The admission middleware in front of Airflow's trigger endpoint, around a stand-in app that
echoes what reaches it (the live api-server is exercised in tests/e2e), with a real records database."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from hms_management.api import admission
from hms_management.api.admission import TRIGGER_PATH, ProposalAdmissionMiddleware, admission_errors


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"reached_airflow": True, "body": json.loads(await request.body())})


@pytest.fixture
def client(monkeypatch, proposal_records):
    monkeypatch.setattr(admission, "_trigger_user", _agent)
    app = Starlette(routes=[Route(TRIGGER_PATH, echo, methods=["POST"]), Route("/other", echo, methods=["POST"])])
    app.add_middleware(ProposalAdmissionMiddleware)
    return TestClient(app)


async def _agent(scope) -> SimpleNamespace:
    return SimpleNamespace(get_name=lambda: "agent")


def test_a_valid_proposal_reaches_airflow_with_its_run_id_and_its_record_is_admitted(client, proposal_records):
    response = client.post(TRIGGER_PATH, json={"logical_date": None, "conf": {"id": "p-1", "rule": "r"}})
    assert response.json()["body"]["dag_run_id"] == "proposal__p-1"
    record = proposal_records.get("p-1")
    assert (record.status, record.triggered_by, record.proposal["priority"]) == ("queued", "agent", "normal")


def test_a_refused_proposal_has_no_record(client, proposal_records):
    client.post(TRIGGER_PATH, json={"logical_date": None, "conf": {"id": "p-2", "token": "x"}})
    assert proposal_records.get("p-2") is None


def test_an_invalid_proposal_is_400_and_never_reaches_airflow(client):
    response = client.post(TRIGGER_PATH, json={"logical_date": None, "conf": {"id": "p-1", "token": "x"}})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"conf.token"}


def test_wrong_content_type_is_415(client):
    response = client.post(TRIGGER_PATH, content=b'{"conf": {"id": "p", "rule": "r"}}',
                           headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_body_over_one_mib_is_413(client):
    response = client.post(TRIGGER_PATH, content=b" " * (admission.MAX_BODY_BYTES + 1),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_nan_is_refused_before_it_reaches_the_database(client):
    response = client.post(TRIGGER_PATH, content=b'{"conf": {"id": "p", "rule": {"x": NaN}}}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_other_paths_pass_untouched(client):
    assert client.post("/other", json={"anything": 1}).json()["reached_airflow"]


def test_a_caller_who_may_not_trigger_gets_airflows_own_answer(monkeypatch, client):
    async def refused(scope) -> None:
        return None

    monkeypatch.setattr(admission, "_trigger_user", refused)
    response = client.post(TRIGGER_PATH, json={"conf": {"token": "x"}})
    assert response.json()["reached_airflow"]  # the stand-in plays Airflow, which answers 401/403


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "conf"), ({"conf": {"id": "a", "rule": "r"}, "dag_run_id": "other"}, "dag_run_id")],
)
def test_admission_errors(body, field):
    assert admission_errors(body)[0]["field"] == field
