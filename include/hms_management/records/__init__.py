"""The Management Layer's own records, in a PostgreSQL database of its own (design.md §12).

One record per proposal — its status, reason, failed step, governance decision, steps, times — written
as the workflow moves and read by `/management` and the Proposals view with plain indexed queries.
Airflow's metadata database stays Airflow's: no table or index of ours lives there, and task code
(which may not touch it in Airflow 3) writes here instead.

Plain SQLAlchemy and Alembic: no Airflow. Which database, and through which Airflow connection, is
the callers' business (`orchestration.records` for Airflow's processes, `hms_deploy` for the set-up).
"""
