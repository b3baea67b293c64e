"""Airflow's own tokens and roles, for the parts of the api-server this project adds.

Airflow authenticates its own routes but not plugin apps or middlewares. These helpers ask
Airflow's auth manager, so the same token works everywhere and the same roles apply: role
`user` may run the proposal DAG (submit), `viewer` may only read it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from jwt import InvalidTokenError
from starlette.requests import HTTPConnection

from hms_management.domain.proposal import DAG_ID

# Token checks at once in each api-server process, each holding a database connection for its
# look-up. One: every thread of agents' work takes the GIL's turns from the UI's requests in the
# same process (with `management_concurrency`, airflow.cfg: the runs list's p95 1.3 s → 0.4–0.6 s).
TOKEN_CHECKS = 1
_checker_thread = threading.local()


def token_of(connection: HTTPConnection) -> str | None:
    """The bearer token of a request, or Airflow's UI cookie."""
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return connection.cookies.get(COOKIE_NAME_JWT_TOKEN)


async def user_of(connection: HTTPConnection) -> Any | None:
    """The caller as Airflow knows them; None for a missing, invalid or expired token."""
    token = token_of(connection)
    if not token:
        return None
    try:
        return await asyncio.wrap_future(_token_checkers().submit(_user_from_token, token))
    except InvalidTokenError:  # bad, expired or revoked: not a user
        return None
    # Anything else (the database did not answer the revoked-token look-up) is the server's fault
    # and propagates as a 5xx: a 401 would send the caller to log in again for nothing.


def _user_from_token(token: str) -> Any:
    """Airflow's check, in a thread of `_token_checkers` on that thread's own event loop.
    Airflow 3.3.2's `get_user_from_token` is async but looks the token up among the revoked ones
    with a blocking query (`RevokedToken.is_revoked`): awaited on the api-server's loop, it stalls
    every request of the process, the UI's included, for the length of that query: under fifty agents,
    a large share of the loop's time (measured with py-spy: docs/reliability.md, "Load")."""
    return _checker_thread.loop.run_until_complete(get_auth_manager().get_user_from_token(token))


@functools.cache
def _token_checkers() -> ThreadPoolExecutor:
    # Threads and loops that live as long as the server: a new loop per check (asyncio.run) was
    # a quarter of the check's time under load (py-spy).
    return ThreadPoolExecutor(TOKEN_CHECKS, thread_name_prefix="token-check", initializer=_own_loop)


def _own_loop() -> None:
    _checker_thread.loop = asyncio.new_event_loop()


def may(user: Any, method: str) -> bool:
    """Whether the user may run (POST) or read (GET) the proposal DAG's runs."""
    return get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity.RUN, details=DagDetails(id=DAG_ID), user=user
    )


def is_admin(user: Any) -> bool:
    """Whether the user is an Airflow admin: SimpleAuthManager's role `admin`; with another auth
    manager, whoever may change Airflow's configuration."""
    role = getattr(user, "role", None)
    if role is not None:
        return str(role).lower() == "admin"
    return get_auth_manager().is_authorized_configuration(method="PUT", user=user)
