"""The proposal records of this deployment, as Airflow's processes reach them: through the Airflow
connection `hms_records`, one engine per process.

The connection is defined in the environment of every Airflow component (`AIRFLOW_CONN_HMS_RECORDS`,
beside the metadata database's own URI): a task finds it without a call to the api-server, and
the scheduler's listener without touching the session of the scheduler's loop, which a look-up in
the metadata database would share.

A task process lives for one step and makes a few reads and writes (its record, its rate budget):
it keeps the connection it opened until it exits. Long-lived processes (the scheduler's listener,
the api-server) keep a small pool.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import create_engine

from hms_management.records.budgets import Budgets
from hms_management.records.database import url_for
from hms_management.records.store import Records

RECORDS_CONN_ID = "hms_records"
# A write that waits longer than this for a lock or an answer gives up (the caller logs or retries,
# and the records keeper repairs from Airflow's records): nothing of Airflow's waits on it for long.
STATEMENT_TIMEOUT_MS = 5000

_by_process: dict[tuple[int, bool], Records] = {}


def records(*, pooled: bool = False) -> Records:
    """This process's view of the records (a forked child makes its own: connections do not cross a fork)."""
    key = (os.getpid(), pooled)
    if key not in _by_process:
        _by_process[key] = Records(_engine(pooled=pooled))
    return _by_process[key]


def budgets(*, pooled: bool = False) -> Budgets:
    """This process's view of the rate budgets, in the same database."""
    return Budgets(records(pooled=pooled).engine)


def _engine(*, pooled: bool) -> Any:
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(RECORDS_CONN_ID)
    url = url_for(host=connection.host, port=connection.port, login=connection.login, password=connection.password,
                  database=connection.schema or "hms_management")
    options = {"connect_args": {"options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
                                          f"-c lock_timeout={STATEMENT_TIMEOUT_MS}",
                                "application_name": "hms-management"}}
    if pooled:
        return create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True, pool_recycle=1800, **options)
    # A step's fan-out sends from a few threads at once; each keeps its connection till the task ends.
    return create_engine(url, pool_size=1, max_overflow=8, **options)
