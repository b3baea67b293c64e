"""The databases' set-up, in one process: `airflow db migrate`, the Management Layer's own database
(created when missing, then migrated to its newest revision, and given the rate budgets committed
beside the pools that it has not yet), `airflow pools import` and `airflow connections import
--overwrite`.

Each Airflow step runs as the `airflow` command runs it (Airflow's own CLI parser and command
functions), only in one interpreter: every `airflow` command spends about 3 s importing Airflow.

The Management Layer's database is the one the connection `hms_records` names, which every Airflow
component finds in its environment (`AIRFLOW_CONN_HMS_RECORDS`, see `orchestration.records`):
locally a second database on the embedded server, in docker-compose a second database of the same
PostgreSQL service. Without it the set-up stops and says so: every component would fail without it.

    python -m hms_deploy.database POOLS_FILE CONNECTIONS_FILE
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url

from hms_management.orchestration.records import RECORDS_CONN_ID
from hms_management.records import database as records_database
from hms_management.records.budgets import Budgets, committed
from hms_management.records.metrics import Metrics

RECORDS_DATABASE = "hms_management"
BUDGETS_FILE = "budgets.json"
RECORDS_ENV = f"AIRFLOW_CONN_{RECORDS_CONN_ID.upper()}"


def records_url() -> URL:
    """Where the records live: the database the environment's `hms_records` connection names."""
    defined = os.environ.get(RECORDS_ENV)
    if not defined:
        raise SystemExit(f"{RECORDS_ENV} is not set: every Airflow component reaches the Management Layer's "
                         f"records through it (e.g. postgresql://user:password@host/{RECORDS_DATABASE})")
    from airflow.models.connection import Connection

    connection = Connection(conn_id=RECORDS_CONN_ID, uri=defined) if "://" in defined else \
        Connection.from_json(defined, conn_id=RECORDS_CONN_ID)
    return records_database.url_for(host=connection.host, port=connection.port, login=connection.login,
                                    password=connection.password, database=connection.schema or RECORDS_DATABASE)


def records_connection(airflow_url: str) -> str:
    """The `hms_records` connection (its JSON form, for AIRFLOW_CONN_HMS_RECORDS) of a database named
    `hms_management` on the server of Airflow's own metadata database."""
    return json.dumps(records_database.fields_of(make_url(airflow_url).set(database=RECORDS_DATABASE)))


def prepare_records(url: URL, budgets_file: Path) -> str:
    """Create the records' database when missing, migrate it, and make the committed rate budgets it
    has not yet (a budget changed at run time stays as it was changed); a line saying what was done."""
    created = records_database.create_if_missing(url)
    engine = create_engine(url)
    try:
        records_database.upgrade(engine)
        revision = records_database.revision(engine)
        made = Budgets(engine).seed(committed(budgets_file), by=f"set-up from {budgets_file.name}")
        # The operators' tallies catch up with the records here, not in the first scrapes after an
        # upgrade (docs/metrics.md); nothing to read when they are up to date.
        tallied = Metrics(engine).catch_up()
    finally:
        engine.dispose()
    return (f"records database {url.database}: {'created, ' if created else ''}at revision {revision}; "
            f"rate budgets made: {', '.join(made) or 'none (all there)'}; records tallied for the metrics: {tallied}")


def prepare(pools_file: Path, connections_file: Path) -> None:
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()

    def airflow(*argv: str) -> None:
        print("airflow", *argv, flush=True)
        args = parser.parse_args(argv)
        args.func(args)

    url = records_url()
    airflow("db", "migrate")
    # The rate budgets are committed beside the pools (config/budgets.json).
    print(prepare_records(url, pools_file.with_name(BUDGETS_FILE)), flush=True)
    airflow("pools", "import", str(pools_file))
    airflow("connections", "import", "--overwrite", str(connections_file))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m hms_deploy.database POOLS_FILE CONNECTIONS_FILE")
    prepare(Path(sys.argv[1]), Path(sys.argv[2]))
