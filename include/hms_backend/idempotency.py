"""Answers kept for an Idempotency-Key, written by the same transaction as their side effect.

A POST with an Idempotency-Key gets the first 2xx answer given for that key on that path. Were the
side effect and its answer written one after the other, a crash in between would leave the side
effect applied and no answer kept, and the client's retry would apply it again. So routing names
the request's key here (a context variable, seen by everything the handler calls), and the storage
write that applies the side effect keeps the answer in its own transaction: a crash loses both or
neither. The answer is rendered once, to bytes, so a replay is byte for byte what the first caller
got.

One write per keyed request: the write that answers it. Storage refuses a second one, and a write
that would commit without giving its answer.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class Answer:
    """An answer as sent: its status code and its JSON body, already rendered."""

    status_code: int
    body: bytes

    @classmethod
    def json(cls, content: Any, status_code: int = 200) -> Answer:
        # Rendered by JSONResponse, as FastAPI would render a handler's return value.
        return cls(status_code, bytes(JSONResponse(content).body))

    @property
    def keepable(self) -> bool:
        """Only successes are kept: a retry after an error must do the real work."""
        return 200 <= self.status_code < 300

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        return Response(self.body, self.status_code, headers=headers, media_type="application/json")


@dataclass
class KeyedRequest:
    """The request being served under an Idempotency-Key, and the answer its write gave."""

    path: str
    key: str
    answer: Answer | None = None


_keyed_request: ContextVar[KeyedRequest | None] = ContextVar("keyed_request", default=None)


@contextmanager
def keyed_request(path: str, key: str) -> Generator[KeyedRequest, None, None]:
    """Serve a request under an Idempotency-Key: storage writes within keep their answer for it."""
    request = KeyedRequest(path, key)
    token = _keyed_request.set(request)
    try:
        yield request
    finally:
        _keyed_request.reset(token)


def current_keyed_request() -> KeyedRequest | None:
    return _keyed_request.get()


class UnkeptAnswer(RuntimeError):
    """A keyed request would get an answer no retry could replay: a bug in the backend, never the caller's."""
