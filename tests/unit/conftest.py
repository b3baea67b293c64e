"""The scripted HMS service (tests/scripted_hms.py) as the operators tested alone meet it, and the
pieces of a task's context.

`hms` answers each (method, path) with what the test scripted and records every request it got,
every HMS connection pointing at it. `airflow_api` is the same kind of server standing in for
Airflow's api-server, for the clients of its REST API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tests.scripted_hms import ScriptedHms, scripted_hms, scripted_service


@pytest.fixture
def hms(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedHms]:
    with scripted_hms(monkeypatch) as scripted:
        yield scripted


@pytest.fixture
def airflow_api() -> Iterator[ScriptedHms]:
    """A stand-in for Airflow's api-server (its REST API and `POST /auth/token`), scripted the same way."""
    with scripted_service() as scripted:
        yield scripted


class FakeTaskInstance:
    """A task instance as a task's code sees it: which task and try, and XComs in a dict."""

    map_index = -1

    def __init__(self, task_id: str, *, try_number: int = 1, max_tries: int = 3) -> None:
        self.task_id = task_id
        self.try_number = try_number
        self.max_tries = max_tries
        self.start_date = datetime.now(UTC)
        self.xcoms: dict[tuple[str, str], Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[self.task_id, key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))


def context_for(task_id: str, conf: dict[str, Any], *, run_id: str | None = None, clear_number: int = 0,
                try_number: int = 1) -> dict[str, Any]:
    """A task's context in a proposal run (the proposal's record lives in `proposal_records`)."""
    run_id = run_id or f"proposal__{conf.get('id')}"
    return {"dag_run": SimpleNamespace(conf=conf, run_id=run_id, clear_number=clear_number,
                                       triggering_user_name="agent", start_date=datetime.now(UTC)),
            "ti": FakeTaskInstance(task_id, try_number=try_number)}
