"""Where the records live: the database's creation and its migrations (Alembic, as Airflow's own).

The set-up (`hms_deploy.database`) creates the database on the server it is given when it is
missing, then brings its schema to the newest revision; both are idempotent and run at every start.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def create_if_missing(url: URL) -> bool:
    """Create the database `url` names on its server (through the server's `postgres` database);
    whether it was created now."""
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            if connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}):
                return False
            # An identifier, not a value: quoted by the dialect, never interpolated raw.
            connection.execute(text(f"CREATE DATABASE {server.dialect.identifier_preparer.quote(url.database)}"))
            return True
    finally:
        server.dispose()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (nothing to do when it is there)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def url_for(*, host: str | None, port: int | None, login: str | None, password: str | None,
            database: str) -> URL:
    """A SQLAlchemy URL from a connection's fields; a host that is a path is a Unix socket's folder."""
    socket = bool(host) and host.startswith("/")
    return URL.create("postgresql+psycopg2", username=login or None, password=password or None,
                      host=None if socket else host or None, port=port or None, database=database,
                      query={"host": host} if socket else {})


def fields_of(url: URL) -> dict[str, object]:
    """An Airflow connection's fields (`airflow connections import`) for the database `url` names."""
    host = url.query.get("host") or url.host
    fields = {"conn_type": "postgres", "host": host if isinstance(host, str) else host[0], "port": url.port,
              "login": url.username, "password": url.password, "schema": url.database}
    return {key: value for key, value in fields.items() if value is not None}
