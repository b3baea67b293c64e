"""Every HMS route needs a valid HS256 token, except the probes (/health, /stats)."""

from __future__ import annotations

import jwt
import pytest
from fastapi.testclient import TestClient

from hms_backend import Settings
from hms_backend.auth import InvalidToken, generate_secret, mint_token, verify_authorization
from hms_backend.settings import SettingsError


def test_call_without_a_token_is_refused_with_401_and_writes_nothing(api: TestClient, route_stats):
    del api.headers["Authorization"]

    answer = api.post("/svc/policy", json={"id": "p-1", "rule": "r"})

    assert answer.status_code == 401
    assert "missing Authorization header" in answer.json()["error"]
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert route_stats("POST /svc/policy")["side_effects"] == 0


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        ("Basic dXNlcjpwYXNz", "must be: Bearer"),
        ("Bearer not-a-jwt", "invalid token"),
        (f"Bearer {mint_token(generate_secret(), 'intruder', 300)}", "Signature verification failed"),
    ],
    ids=["basic-auth", "garbage", "other-secret"],
)
def test_bad_token_is_refused_with_401_and_a_reason(api: TestClient, authorization: str, error: str):
    answer = api.get("/audit/log", headers={"Authorization": authorization})

    assert answer.status_code == 401
    assert error in answer.json()["error"]


def test_expired_token_is_refused_with_401(api: TestClient, settings: Settings):
    expired = mint_token(settings.jwt_secret, "airflow", ttl_seconds=-5)

    answer = api.get("/notifications", headers={"Authorization": f"Bearer {expired}"})

    assert answer.status_code == 401
    assert answer.json() == {"error": "token expired"}


def test_token_that_never_expires_is_refused_with_401(api: TestClient, settings: Settings):
    forever = jwt.encode({"sub": "airflow"}, settings.jwt_secret, algorithm="HS256")

    answer = api.get("/notifications", headers={"Authorization": f"Bearer {forever}"})

    assert answer.status_code == 401
    assert '"exp"' in answer.json()["error"]


def test_health_and_stats_answer_without_a_token(api: TestClient):
    del api.headers["Authorization"]

    assert api.get("/health").json() == {"status": "ok"}
    assert "POST /svc/policy" in api.get("/stats").json()["routes"]


def test_resetting_stats_and_faults_needs_a_token(api: TestClient):
    del api.headers["Authorization"]

    assert api.delete("/stats").status_code == 401
    assert api.put("/admin/faults", json={"route": "/svc/policy", "status": 503}).status_code == 401


def test_minted_token_carries_subject_and_expiry():
    secret = generate_secret()

    claims = verify_authorization(f"Bearer {mint_token(secret, 'airflow', 60)}", secret)

    assert claims["sub"] == "airflow"
    assert claims["exp"] - claims["iat"] == 60


def test_token_signed_with_another_secret_is_invalid():
    with pytest.raises(InvalidToken):
        verify_authorization(f"Bearer {mint_token(generate_secret(), 'airflow', 60)}", generate_secret())


def test_settings_refuse_a_guessable_secret(tmp_path):
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        Settings(data_dir=tmp_path, jwt_secret="changeme")
