"""The workflow tier: the real `proposal_orchestration` DAG run in-process by `dag.test()`, against
the scripted HMS service (tests/scripted_hms.py), the proposals' records database
(tests/records_db.py) and a real, migrated Airflow metadata database.

Only the tests of this folder pay for the metadata database: it is made once per session, when the
first of them asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from hms_management.domain.proposal import DAG_ID, run_id_for
from hms_management.records import database
from tests.scripted_hms import ScriptedHms, scripted_hms

ROOT = Path(__file__).resolve().parents[2]
METADATA_CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


def _use_metadata_database(conn: str) -> None:
    """Point this process's Airflow at `conn`: its configuration, then its engine and sessions."""
    from airflow import settings

    os.environ[METADATA_CONN] = conn
    settings.configure_vars()
    settings.reconfigure_orm()


@pytest.fixture(scope="session")
def airflow_db(records_url: URL) -> Iterator[None]:
    """A migrated Airflow metadata database for `dag.test()`: a second database, `airflow`, on the
    embedded PostgreSQL server these tests start anyway for the records, made by Airflow's own
    `airflow db migrate` (`upgradedb`: an empty database is built from the models and stamped).

    Why not SQLite in a temp folder: migrating takes as long either way (docs/testing.md, "The
    workflow tier"), while the PostgreSQL server costs nothing more here (one `CREATE DATABASE`)
    and is the database every deployment runs. The database that does not exist (tests/conftest.py)
    comes back afterwards."""
    from airflow.utils.db import upgradedb

    url = records_url.set(database="airflow")
    database.create_if_missing(url)
    nowhere = os.environ[METADATA_CONN]
    _use_metadata_database(url.render_as_string(hide_password=False))
    upgradedb()
    yield
    _use_metadata_database(nowhere)


@pytest.fixture(scope="session")
def proposal_dag(airflow_db: None) -> Any:
    """The DAG as the dag-processor parses it from dags/."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dagbag.import_errors == {}
    return dagbag.dags[DAG_ID]


@pytest.fixture
def hms(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedHms]:
    """The scripted HMS service, every HMS connection pointing at it (this test's only)."""
    with scripted_hms(monkeypatch) as scripted:
        yield scripted


@dataclass(frozen=True)
class Run:
    """A finished run as the UI's grid shows it: its state, and each task's state and try number."""

    state: str
    tasks: dict[str, tuple[str | None, int]]

    def states(self) -> dict[str, str | None]:
        return {task: state for task, (state, _) in self.tasks.items()}

    def tries(self, task_id: str) -> int:
        return self.tasks[task_id][1]


@pytest.fixture
def run_proposal(proposal_dag: Any, proposal_records: Any, hms: ScriptedHms,
                 monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Run]:
    """Run one proposal through the whole DAG with `dag.test()`, named as the REST trigger names it.

    `dag.test()` names its run `manual__<time>` (Airflow 3.3.2 takes no run id), while a proposal's
    run must be `proposal__<id>`: the gate fails any other (one run per proposal). So Airflow's
    run-id generator gives the proposal's name here, as the agent's `dag_run_id` does on a live stack.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    def run(proposal: dict[str, Any]) -> Run:
        run_id = run_id_for(proposal["id"])
        monkeypatch.setattr(DagRun, "generate_run_id", staticmethod(lambda **_: run_id))
        proposal_dag.test(run_conf=proposal, logical_date=None)  # a REST-triggered run has no logical date
        with create_session() as session:
            [ended] = DagRun.find(dag_id=DAG_ID, run_id=run_id, session=session)
            return Run(str(ended.state), {ti.task_id: (str(ti.state) if ti.state else None, ti.try_number)
                                          for ti in ended.get_task_instances(session=session)})

    return run
