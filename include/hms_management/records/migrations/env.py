"""Alembic's environment for the Management Layer's database: migrations run on the connection the
caller hands over (`records.database.upgrade`), never on a URL of their own."""

from __future__ import annotations

from alembic import context

from hms_management.records.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run these migrations through hms_management.records.database.upgrade()")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
