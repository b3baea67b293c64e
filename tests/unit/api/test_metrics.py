"""GET /management/metrics as the scraper reads it: the Prometheus text of one scrape against a real
records database (proposals by status equal to the counts, steps, ends, budgets, suspensions), a part
that cannot be read shown as a metric rather than an error, and who may scrape (401/403)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hms_management.api import desk
from hms_management.api import metrics as endpoint
from hms_management.domain.metrics import METRICS_TOKEN_FILE_ENV
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from hms_management.records.budgets import Budgets
from hms_management.records.store import Admission, Filters

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def governance(monkeypatch):
    """Governance's suspensions as the desk reads them: settable per test."""
    answer = {"now": desk.Suspensions([])}
    monkeypatch.setattr(desk, "suspensions", lambda: answer["now"])
    return answer


@pytest.fixture
def stored(proposal_records):
    """A completed proposal, a denied one, one queued; a policy budget."""
    with proposal_records.engine.begin() as db:
        db.execute(text("TRUNCATE metrics_tallies, metrics_marks, rate_budgets"))
        db.execute(text("UPDATE metrics_cursor SET updated_at = NULL"))
    entry = {"state": "success", "tries": 1, "started_at": T0.isoformat(),
             "ended_at": (T0 + timedelta(seconds=0.3)).isoformat()}
    for proposal_id, outcome in (("done", "completed"), ("weekend", "denied"), ("waiting", None)):
        proposal_records.admit(Admission.of({"id": proposal_id, "rule": "r"}, run_id=f"proposal__{proposal_id}",
                                            triggered_by="agent", submitted_at=T0))
        if outcome:
            steps = {RECORD_AUDIT: entry} | ({GOVERNANCE_GATE: entry, APPLY_POLICY: entry, NOTIFY_OFFICERS: entry}
                                             if outcome == "completed" else {})
            proposal_records.change(proposal_id, run_state="running", steps=steps,
                                    outcome={"outcome": outcome, "reason": "…"})
            proposal_records.change(proposal_id, run_state="success", ended_at=T0)
    Budgets(proposal_records.engine).seed({"policy": (5.0, 3)}, by="test")
    return proposal_records


def test_a_scrape_reports_the_records_budgets_and_suspensions(stored, governance):
    governance["now"] = desk.Suspensions([{"service": "notifications", "reason": "incident", "by": "ops"}])

    found = samples(endpoint.scrape())

    counts = stored.counts(Filters())
    assert {status: value(found, "hms_proposals", status=status) for status in counts} == counts
    assert value(found, "hms_proposals_ended_total", outcome="completed") == 1
    assert value(found, "hms_proposals_ended_total", outcome="denied") == 1
    assert value(found, "hms_step_duration_seconds_count", step=APPLY_POLICY) == 1
    assert value(found, "hms_step_duration_seconds_bucket", step=RECORD_AUDIT, le="0.5") == 2
    assert value(found, "hms_step_duration_seconds_bucket", step=RECORD_AUDIT, le="0.25") == 0
    assert value(found, "hms_service_retries_total", service="policy") == 0
    assert value(found, "hms_service_failures_total", service="notifications") == 0
    assert value(found, "hms_rate_budget_tokens", service="policy") == 3
    assert value(found, "hms_rate_budget_waits_total", service="policy") == 0
    assert value(found, "hms_review_oldest_age_seconds") == 0
    assert value(found, "hms_suspension_active", service="notifications") == 1
    assert value(found, "hms_suspension_active", service="policy") == 0
    assert value(found, "hms_governance_up") == 1 and value(found, "hms_records_up") == 1


def test_governance_that_cannot_be_read_is_a_metric_not_an_error(stored, governance, monkeypatch):
    governance["now"] = desk.Suspensions([], unknown="GET /gov/suspensions answered 503")
    found = samples(endpoint.scrape())
    assert value(found, "hms_governance_up") == 0
    assert not [key for key in found if key[0] == "hms_suspension_active"]

    def unreachable():
        raise RuntimeError("The conn_id `hms_governance` isn't defined")

    monkeypatch.setattr(desk, "suspensions", unreachable)
    assert value(samples(endpoint.scrape()), "hms_governance_up") == 0


def test_records_that_cannot_be_read_are_a_metric_not_an_error(governance, monkeypatch):
    def down(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(endpoint.Metrics, "figures", down)
    monkeypatch.setattr(endpoint, "budgets", lambda **_: SimpleNamespace(all=down))

    found = samples(endpoint.scrape())

    assert value(found, "hms_records_up") == 0
    assert not [key for key in found if key[0] == "hms_proposals"]


# -- who may scrape ---------------------------------------------------------------------------------

TOKEN = "a-metrics-token-of-the-deployment"
USERS = {"admin-jwt": SimpleNamespace(role="admin"), "analyst-jwt": SimpleNamespace(role="viewer")}


@pytest.fixture
def client(tmp_path, monkeypatch) -> TestClient:
    token_file = tmp_path / "metrics_token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv(METRICS_TOKEN_FILE_ENV, str(token_file))

    async def user_of(request):
        return USERS.get(endpoint.token_of(request))

    monkeypatch.setattr(endpoint, "user_of", user_of)
    monkeypatch.setattr(endpoint, "scrape", lambda: b"hms_records_up 1\n")
    app = FastAPI()
    app.include_router(endpoint.router)
    return TestClient(app)


@pytest.mark.parametrize(("authorization", "status"), [
    (f"Bearer {TOKEN}", 200),
    ("Bearer admin-jwt", 200),
    ("Bearer analyst-jwt", 403),
    (f"Bearer {TOKEN[:-1]}", 401),
    ("Bearer ", 401),
    (None, 401),
])
def test_the_metrics_token_or_an_admin_may_scrape_others_not(client, authorization, status):
    response = client.get("/metrics", headers={"Authorization": authorization} if authorization else {})

    assert response.status_code == status
    assert (response.text == "hms_records_up 1\n") == (status == 200)
    assert response.headers["content-type"].startswith("text/plain") or status != 200


def test_without_a_metrics_token_file_only_admins_may_scrape(client, monkeypatch):
    monkeypatch.delenv(METRICS_TOKEN_FILE_ENV)

    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer admin-jwt"}).status_code == 200
