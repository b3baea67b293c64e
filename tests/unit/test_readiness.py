"""Start-up's readiness check against a stand-in api-server: while its workers start, a login that
fails as a worker restarting would (no answer, a 5xx) means "not ready yet", never a traceback; a
refused password is the stack's fault and says so."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hms_management.airflow_login import AirflowLogin, ApiError
from hms_stack.readiness import dags_ready

HEALTHY = {"scheduler": {"status": "healthy"}, "triggerer": {"status": "healthy"}}


@dataclass
class StartingStack:
    api_url: str
    ready_dag_ids: tuple[str, ...] = ("proposal_orchestration",)
    serves_management_api: bool = False

    def token(self) -> str:
        return AirflowLogin(self.api_url, "admin", "secret", timeout=2).token()


def test_a_login_answered_5xx_while_workers_start_is_not_ready_yet(airflow_api):
    airflow_api.answer("GET", "/api/v2/monitor/health", 200, HEALTHY)
    airflow_api.answer("POST", "/auth/token", 503, {"detail": "starting"})

    assert dags_ready(StartingStack(airflow_api.url)) is False


class Restarting(StartingStack):
    """Health answers, the login's port is closed: a worker restarting."""

    def token(self) -> str:
        return AirflowLogin("http://127.0.0.1:1", "admin", "secret", timeout=2).token()


def test_a_login_nobody_answers_is_not_ready_yet(airflow_api):
    airflow_api.answer("GET", "/api/v2/monitor/health", 200, HEALTHY)

    assert dags_ready(Restarting(airflow_api.url)) is False


def test_a_refused_password_is_said_not_waited_for(airflow_api):
    airflow_api.answer("GET", "/api/v2/monitor/health", 200, HEALTHY)
    airflow_api.answer("POST", "/auth/token", 401, {"detail": "Invalid credentials"})

    with pytest.raises(ApiError, match="401"):
        dags_ready(StartingStack(airflow_api.url))


def test_ready_once_the_login_and_the_dags_answer(airflow_api):
    airflow_api.answer("GET", "/api/v2/monitor/health", 200, HEALTHY)
    airflow_api.answer("POST", "/auth/token", 201, {"access_token": "t"})
    airflow_api.answer("GET", "/api/v2/dags/proposal_orchestration", 200, {"dag_id": "proposal_orchestration"})

    assert dags_ready(StartingStack(airflow_api.url)) is True
