"""What every deployment sets up: its users, and the connections the workflow calls HMS and
Airflow's REST API through. Plain data; the caller decides where it goes and how it is imported."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path
from typing import Any

from hms_management.domain.services import SERVICES, auth_header
from hms_management.orchestration.airflow_api import AIRFLOW_API_CONN_ID, AUTOMATION_USER

# Migrates the metadata database, makes the Management Layer's indexes, imports pools and connections.
DATABASE_SETUP_MODULE = "hms_deploy.database"


def users(config: Path | None = None) -> dict[str, str]:
    """Airflow user → role: the one list, `[core] simple_auth_manager_users` (SimpleAuthManager's)
    of the configuration file a stack gives Airflow (`config`; None: the one Airflow reads here).
    The set-up makes a password for each. reviewer decides reviews ([hms_management] reviewers);
    backlog_sweeper is the Management Layer's own user."""
    if config is None:
        from airflow.configuration import conf

        listed = conf.get("core", "simple_auth_manager_users", fallback="")
    else:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(config)
        listed = parser.get("core", "simple_auth_manager_users", fallback="")
    found = dict(entry.strip().split(":", 1) for entry in listed.split(",") if ":" in entry)
    if AUTOMATION_USER not in found:  # the sweep and the review watcher could not log in
        raise ValueError(f"[core] simple_auth_manager_users of {config or 'Airflow configuration'} lacks "
                         f"{AUTOMATION_USER}, the user the backlog sweep and the review watcher call Airflow's "
                         "REST API as")
    return found


def connections(*, hms_host: str, hms_port: int, hms_token: str, api_host: str, api_port: int,
                automation_password: str) -> dict[str, dict[str, Any]]:
    """`airflow connections import` content: one connection per HMS service, and Airflow's REST API."""
    found = {
        service.conn_id: {
            "conn_type": "http",
            "description": service.description,
            "host": hms_host,
            "port": hms_port,
            "schema": "http",
            # HttpHook sends extras it does not know as headers; the key name masks the token.
            "extra": json.dumps(auth_header(hms_token)),
        }
        for service in SERVICES
    }
    # The sweep and the review watcher start, re-drive and resume proposal runs through Airflow's own
    # REST API, as their own user, so that they pass the same admission check as any other trigger.
    found[AIRFLOW_API_CONN_ID] = {
        "conn_type": "http",
        "description": "Airflow's REST API, as the Management Layer's own user",
        "host": api_host,
        "port": api_port,
        "schema": "http",
        "login": AUTOMATION_USER,
        "password": automation_password,
    }
    return found


def write_private(path: Path, data: Any) -> Path:
    """JSON readable by its owner only, from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    return path
