"""Test-wide environment: Airflow reads this project's airflow.cfg, never a home folder's.

The unit and DAG tests get a metadata database that does not exist, so anything that touches the
database at parse time fails loudly. The end-to-end tests start a stack of their own (tests/e2e).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_home = Path(tempfile.mkdtemp(prefix="hms-tests-"))

os.environ.update(
    {
        "HMS_ROOT": str(ROOT),
        "HMS_STATE": str(_home),
        "AIRFLOW_HOME": str(_home / "airflow"),
        "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://nobody@/nowhere?host={_home}/no-such-socket",
    }
)


def pytest_unconfigure(config) -> None:
    """The per-run home goes with the run: a test run leaves nothing in /tmp."""
    shutil.rmtree(_home, ignore_errors=True)


# -- clients of a live stack: `stack` is tests/live_stack.py's (e2e, browser), or tests/distributed's --
# -- and the proposal records' database without a stack: tests/records_db.py's `proposal_records` ------
# -- and a real Prometheus scraping the live stack: tests/prometheus.py's `prometheus` ----------------

pytest_plugins = ["tests.live_stack", "tests.records_db", "tests.prometheus"]

import httpx  # noqa: E402 (after the environment above)
import pytest  # noqa: E402

from hms_stack.probe import StackProbe  # noqa: E402


@pytest.fixture(scope="session")
def agent(stack):
    """Airflow's REST API as the HMS-A2A agent (role user) calls it, with the tests' own look-ups."""
    client = StackProbe(stack.api_url, "agent", stack.credentials()["airflow"]["agent"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def hms(stack):
    """The reference HMS backend, with the Management Layer's token."""
    token = stack.credentials()["hms_token"]
    with httpx.Client(base_url=stack.hms_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client
