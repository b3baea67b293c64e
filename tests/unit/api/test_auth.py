"""Who the caller is: a bad token is nobody (401 upstream), a server fault is not mistaken for one."""

from __future__ import annotations

import asyncio
import threading

import pytest
from jwt import ExpiredSignatureError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import HTTPConnection

from hms_management.api import auth


class AuthManager:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.checked_in: int | None = None

    async def get_user_from_token(self, token: str) -> str:
        self.checked_in = threading.get_ident()  # where Airflow's blocking revoked-token query runs
        if self.error:
            raise self.error
        return f"user of {token}"


def caller(monkeypatch, error: Exception | None, header: str = "Bearer t0k") -> str | None:
    monkeypatch.setattr(auth, "get_auth_manager", lambda: AuthManager(error))
    connection = HTTPConnection({"type": "http", "headers": [(b"authorization", header.encode())]})
    return asyncio.run(auth.user_of(connection))


def test_a_valid_token_is_its_user(monkeypatch):
    assert caller(monkeypatch, None) == "user of t0k"


def test_an_expired_or_missing_token_is_nobody(monkeypatch):
    assert caller(monkeypatch, ExpiredSignatureError("expired")) is None
    assert caller(monkeypatch, None, header="") is None


def test_a_database_that_does_not_answer_is_not_taken_for_a_bad_token(monkeypatch):
    with pytest.raises(PoolTimeout):
        caller(monkeypatch, PoolTimeout("QueuePool limit of size 5 overflow 10 reached"))


def test_the_check_and_its_blocking_query_run_off_the_servers_event_loop(monkeypatch):
    manager = AuthManager(None)
    monkeypatch.setattr(auth, "get_auth_manager", lambda: manager)
    connection = HTTPConnection({"type": "http", "headers": [(b"authorization", b"Bearer t0k")]})

    async def on_the_loop() -> tuple[str | None, int]:
        return await auth.user_of(connection), threading.get_ident()

    user, loop_thread = asyncio.run(on_the_loop())
    assert user == "user of t0k"
    assert manager.checked_in not in (None, loop_thread)
