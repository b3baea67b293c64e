"""Extra indexes on Airflow's metadata tables, for the Proposals view and /management's lists.

A proposal's status is computed in SQL from its run's state and two records its workflow left:
the outcome `record_audit` returned and the decision `governance_gate` kept (`proposals._Columns`).
Without help, listing one status or counting them all reads every proposal's records — about a
second with 100,000 proposals (bench-results/desk_pages.json). These partial indexes hold, for
those two records only, the outcome or decision status by run: "the newest 50 denied" or "how many
completed" become short index scans. Size with 100,000 proposals: about 24 MB (the outcome index
carries the audit record, see below) and 6 MB.

A third, on `dag_run`, serves the text filter ("FOIA" in the id or the title): a trigram index
(PostgreSQL's `pg_trgm`, shipped with PostgreSQL and trusted, so the database's owner may enable
it) turns `ILIKE '%FOIA%'` from a scan of every proposal into an index look-up. Where the extension
cannot be enabled the set-up says so and goes on: text filters are then slower, never different.

Clearly named `hms_…` and created by the set-up (`python -m hms_management.orchestration.metadata_indexes`,
run by `make run`, the test stacks and the container set-up) with CREATE INDEX CONCURRENTLY IF NOT
EXISTS, after `airflow db migrate`: idempotent, never blocking Airflow's writes. They cost one index
entry per proposal for each record (written when the step finishes), and Airflow's migrations know
nothing of them: a migration that rebuilds `xcom` drops them, and the next set-up makes them again.
Without them every answer is the same, only slower.
"""

from __future__ import annotations

import sys

from sqlalchemy import Engine, Index, and_, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from hms_management.domain.proposal import DAG_ID
from hms_management.domain.steps import DECISION_KEY, GOVERNANCE_GATE, RECORD_AUDIT
from hms_management.orchestration.run_records import RETURN_VALUE, decision_status, recorded_outcome

OUTCOME_INDEX = "hms_xcom_proposal_outcome"
DECISION_INDEX = "hms_xcom_proposal_decision"
TEXT_INDEX = "hms_dag_run_proposal_text"
# The same expressions as proposals.Filters' text filter (SQLAlchemy's ->> renders conf ->> 'title').
# DAG_ID is a constant of this project: written into the DDL, never user input.
TEXT_INDEX_DDL = (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TEXT_INDEX} ON dag_run "
                  f"USING gin (run_id gin_trgm_ops, (conf ->> 'title') gin_trgm_ops) WHERE dag_id = '{DAG_ID}'")


def indexes() -> list[Index]:
    from airflow.models.xcom import XComModel

    xcom = XComModel.__table__
    # (dag_id, what was recorded, run row id): one status's runs, newest first, straight from the index.
    # The outcome index also carries the record itself (INCLUDE): PostgreSQL counts from an expression
    # index without reading the table only when the expression's column is in the index too.
    return [
        Index(OUTCOME_INDEX, xcom.c.dag_id, recorded_outcome(xcom.c.value), xcom.c.dag_run_id,
              postgresql_include=["value"],
              postgresql_where=and_(xcom.c.task_id == RECORD_AUDIT, xcom.c.key == RETURN_VALUE),
              postgresql_concurrently=True),
        Index(DECISION_INDEX, xcom.c.dag_id, decision_status(xcom.c.value), xcom.c.dag_run_id,
              postgresql_where=and_(xcom.c.task_id == GOVERNANCE_GATE, xcom.c.key == DECISION_KEY),
              postgresql_concurrently=True),
    ]


def ensure(engine: Engine) -> tuple[list[str], str | None]:
    """Create the indexes that are missing (PostgreSQL only): the names of those created, and why
    the text index could not be made (None when it is there)."""
    if engine.dialect.name != "postgresql":
        return [], None
    present = {index["name"] for table in ("xcom", "dag_run") for index in inspect(engine).get_indexes(table)}
    created, not_made = [], None
    # CONCURRENTLY: no lock on Airflow's writes meanwhile; it cannot run inside a transaction.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for index in indexes():
            if index.name not in present:
                index.create(connection, checkfirst=True)
                created.append(index.name)
        if TEXT_INDEX not in present:
            try:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
                connection.execute(text(TEXT_INDEX_DDL))
                created.append(TEXT_INDEX)
            except DBAPIError as error:  # no pg_trgm here, or no right to enable it: slower, same answers
                not_made = str(error.orig).strip().splitlines()[0]
    return created, not_made


def main() -> int:
    from airflow.configuration import conf

    engine = create_engine(conf.get("database", "sql_alchemy_conn"))
    try:
        created, not_made = ensure(engine)
    finally:
        engine.dispose()
    print(f"metadata indexes: created {', '.join(created)}" if created else "metadata indexes: present")
    if not_made:
        print(f"metadata indexes: no {TEXT_INDEX} (text filters scan every proposal): {not_made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
