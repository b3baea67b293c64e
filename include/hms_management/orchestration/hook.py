"""The one transport to the HMS services, on the HTTP provider's hooks.

`HmsHook` (workers: the operators, the sweep; the api-server) and `HmsAsyncHook` (the triggerer:
the review watcher's and a held step's polls) own what every HMS call has: the base URL and bearer
token of the service's Airflow connection (the token is a connection extra, sent as a header and
masked by its name), a request timeout (`[hms_management] request_timeout_seconds`), the
`Idempotency-Key` of a side effect, and which answers a retry may change
(`domain.services.answer_of`). Callers get the JSON object answered, or a TransientServiceError /
PermanentServiceError that quotes the answer.

Every call of `HmsHook` is sent within its service's rate budget (`budget.RateBudget`): at a slot of
the deployment's shared bucket, and again after a 429's Retry-After. The triggerer's polls are not
budgeted: one request per interval each, whatever the load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import requests
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook

from hms_management.domain.services import (
    Service,
    TransientServiceError,
    answer_of,
)
from hms_management.orchestration.budget import THROTTLED_AGAIN, RateBudget
from hms_management.orchestration.config import settings

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Answer:
    """An answer the caller accepted (one of its `ok` statuses), with its JSON object and raw text."""

    status: int
    body: dict[str, Any]
    text: str


def _headers(idempotency_key: str | None) -> dict[str, str]:
    return {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (its HTTP-date form is not used by HMS services: taken as absent)."""
    try:
        return max(float(retry_after), 0.0) if retry_after else None
    except ValueError:
        return None


class HmsHook(HttpHook):
    """An HMS service over its Airflow connection, from a worker. One session per hook: a step or a
    sweep part makes its calls over kept-alive sockets with one connection look-up."""

    def __init__(self, service: Service, *, timeout: float | None = None) -> None:
        super().__init__(method="POST", http_conn_id=service.conn_id)
        self.service = service
        self.timeout = timeout or settings().request_timeout_seconds
        self._session: requests.Session | None = None

    def call(self, method: str, endpoint: str, *, body: Any = None, params: dict[str, Any] | None = None,
             idempotency_key: str | None = None, ok: tuple[int, ...] = (200,),
             budget: RateBudget | None = None) -> Answer:
        """One call within the service's rate budget (`budget`: a task's own, which may ask it to
        wait longer; by default the call waits for its slot here)."""
        what = f"{method} {endpoint}"
        budget = budget or RateBudget(self.service.name)
        if self._session is None:
            self._session = self.get_conn()  # sets base_url; the token comes with the connection's extra
        for again in range(THROTTLED_AGAIN, -1, -1):
            budget.take()
            try:
                response = self._session.request(method, self.url_from_endpoint(endpoint), json=body,
                                                 params=params, headers=_headers(idempotency_key),
                                                 timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as err:
                raise TransientServiceError(f"{what}: no answer from {self.service.conn_id} "
                                            f"({type(err).__name__}: {err})") from err
            if response.status_code == 429 and again:  # nothing was applied: hold everyone back, send again
                budget.throttled(_seconds(response.headers.get("Retry-After")))
                continue
            return Answer(response.status_code, answer_of(what, response.status_code, response.text, ok=ok),
                          response.text)
        raise AssertionError("unreachable")

    def post(self, body: Any, *, idempotency_key: str, endpoint: str | None = None,
             ok: tuple[int, ...] = (200,), budget: RateBudget | None = None) -> dict[str, Any]:
        """POST a side effect to the service (its own endpoint unless told), applied at most once per key."""
        return self.call("POST", endpoint or self.service.endpoint, body=body, idempotency_key=idempotency_key,
                         ok=ok, budget=budget).body

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        return self.call("GET", endpoint, params={k: v for k, v in params.items() if v is not None} or None).body


class HmsAsyncHook(HttpAsyncHook):
    """The same transport for the triggerer's event loop (never blocks it)."""

    def __init__(self, service: Service, *, timeout: float | None = None) -> None:
        super().__init__(method="GET", http_conn_id=service.conn_id, retry_limit=1)
        self.service = service
        self.timeout = timeout or settings().request_timeout_seconds

    async def call(self, method: str, endpoint: str, *, body: Any = None, params: dict[str, Any] | None = None,
                   idempotency_key: str | None = None, ok: tuple[int, ...] = (200,)) -> Answer:
        what = f"{method} {endpoint}"
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self.session(method=method) as session:
                response = await session.run(
                    endpoint=endpoint, data=query or None, json=body, headers=_headers(idempotency_key),
                    extra_options={"check_response": False, "timeout": aiohttp.ClientTimeout(total=self.timeout)})
                status, text = response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise TransientServiceError(f"{what}: no answer from {self.service.conn_id} ({type(err).__name__}: "
                                        f"{err})") from err
        return Answer(status, answer_of(what, status, text, ok=ok), text)

    async def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        return (await self.call("GET", endpoint, params=params)).body
