"""The one login to Airflow's REST API, for every caller of it: the sweep and the review watcher (task
code), the agents' clients, the local stack and the tests.

Airflow's api-server gives a token for a user name and password (`POST /auth/token`, 201). A call
answered 401 was made with a token that has expired: it is made once more, with a new one.

    login = AirflowLogin("http://127.0.0.1:8080", "agent", password)
    answer = login.authorized(lambda token: http.get("/api/v2/dags", headers=bearer(token)))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class ApiError(Exception):
    """Airflow's api-server answered with an error: its status and body."""

    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body
        super().__init__(f"{status}: {body}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AirflowLogin:
    """One user's token, fetched at the first call and again when Airflow refuses it; shared by threads."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._timeout = timeout
        self._token: str | None = None
        self._lock = threading.Lock()

    def token(self) -> str:
        """The current token (logging in first if there is none). ApiError if Airflow refuses the
        user name and password; httpx.TransportError if it does not answer."""
        with self._lock:
            if self._token is None:
                self._token = self._log_in()
            return self._token

    def authorized(self, send: Callable[[str], T]) -> T:
        """`send(token)`, and once more with a new token when Airflow answered it 401."""
        stale = self.token()
        try:
            answer = send(stale)
        except Exception as err:  # the official client raises on a 401
            if not _unauthorized(err):
                raise
        else:
            if not _unauthorized(answer):
                return answer
        return send(self._renew(stale))

    def _renew(self, stale: str) -> str:
        """A new token in place of `stale`; threads refused with the same token log in once."""
        with self._lock:
            if self._token in (None, stale):
                self._token = self._log_in()
            return self._token

    def _log_in(self) -> str:
        answer = httpx.post(f"{self.base_url}/auth/token", json=self._credentials, timeout=self._timeout)
        if answer.status_code != 201:
            try:
                body = answer.json()
            except ValueError:
                body = answer.text
            raise ApiError(answer.status_code, body)
        return answer.json()["access_token"]


def _unauthorized(outcome: object) -> bool:
    """Whether Airflow answered 401: an httpx answer's `status_code`, or the `status` of an answer or
    error of the official client (apache-airflow-client)."""
    return getattr(outcome, "status_code", getattr(outcome, "status", None)) == 401
