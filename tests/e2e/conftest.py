"""A live stack for the end-to-end tests: its own state folder and free ports, stopped at the end."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hms_management.client import AirflowClient
from hms_stack.stack import Stack, free_port

# Short waits so that the review tests finish in seconds; everything else is as `make run` has it.
REVIEW_TIMEOUT_SECONDS = 20


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    live = Stack(
        state=tmp_path_factory.mktemp("stack") / ".state",
        api_port=free_port(),
        hms_port=free_port(),
        extra_env={
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_POLL_SECONDS": "0.5",
            "AIRFLOW__HMS_MANAGEMENT__REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT_SECONDS),
        },
    )
    live.start(log=lambda line: print(f"[stack] {line}", file=sys.stderr))
    yield live
    live.stop()


@pytest.fixture(scope="session")
def agent(stack: Stack) -> Iterator[AirflowClient]:
    """Airflow's REST API as the HMS-A2A agent (role user) calls it."""
    client = AirflowClient(stack.api_url, "agent", stack.credentials()["airflow"]["agent"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def hms(stack: Stack) -> Iterator[httpx.Client]:
    """The reference HMS backend, with the Management Layer's token."""
    token = stack.credentials()["hms_token"]
    with httpx.Client(base_url=stack.hms_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def no_faults_left(hms: httpx.Client) -> Iterator[None]:
    yield
    hms.delete("/admin/faults")


@pytest.fixture
def proposal_id(request: pytest.FixtureRequest) -> str:
    """A fresh business key per test, readable in the UI: the test's name and a suffix."""
    name = request.node.name.removeprefix("test_").replace("[", "-").replace("]", "")[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"
