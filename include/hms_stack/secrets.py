"""Secrets of a local stack: generated once into the state folder, never defaulted in code, and
the files that hand them to the processes that need them (the users' passwords to Airflow, the
JWT secret to the HMS backend, the credentials to the person at the keyboard)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from hms_deploy.setup import connections, users, write_private
from hms_management.orchestration.airflow_api import AUTOMATION_USER
from hms_stack.console import StackError


def prepare(state: Path, config: Path) -> tuple[dict[str, Any], str]:
    """This folder's secrets and the HMS token minted from them, with the users' files written (a
    password for each user `config`, the stack's airflow.cfg, lists); StackError, in words, when
    secrets.json is broken."""
    try:
        listed = users(config)
    except ValueError as err:
        raise StackError(str(err)) from None
    try:
        secret = load_or_create(state, listed)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise StackError(f"{state / 'secrets.json'} is broken ({type(err).__name__}: {err}); restore "
                         f"it, or delete it to have new secrets and passwords made") from None
    token = hms_token(secret)
    write_user_files(state, secret, token)
    return secret, token


def load_or_create(state: Path, users: dict[str, str]) -> dict[str, Any]:
    """Secrets of this state folder, a password for each of `users`: created at the first start,
    kept by every later one."""
    from cryptography.fernet import Fernet

    path = state / "secrets.json"
    if path.exists():
        kept = json.loads(path.read_text())
        missing = [user for user in users if user not in kept["passwords"]]
        if missing:  # a state folder from before a user was added: give the new user a password
            kept["passwords"].update({user: secrets.token_urlsafe(12) for user in missing})
        token_missing = "metrics_token" not in kept  # a state folder from before the metrics
        if token_missing:
            kept["metrics_token"] = secrets.token_urlsafe(32)
        if missing or token_missing:
            write_private(path, kept)
        return kept
    generated = {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(48),
        "hms_jwt_secret": secrets.token_urlsafe(48),
        "passwords": {user: secrets.token_urlsafe(12) for user in users},
        # The scraper's token for GET /management/metrics (Prometheus reads it from metrics_token).
        "metrics_token": secrets.token_urlsafe(32),
    }
    write_private(path, generated)
    return generated


def write_user_files(state: Path, secret: dict[str, Any], hms_token: str) -> None:
    """The passwords file Airflow reads, credentials.json for the person at the keyboard, and the
    metrics token file that the api-server checks scrapes against and Prometheus sends."""
    write_private(state / "passwords.json", secret["passwords"])
    write_private(state / "credentials.json", {"airflow": secret["passwords"], "hms_token": hms_token})
    write_text_private(metrics_token_file(state), secret["metrics_token"])


def metrics_token_file(state: Path) -> Path:
    """The scraper's token, alone in a file (Prometheus's `credentials_file`, docs/metrics.md)."""
    return state / "metrics_token"


def write_text_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def hms_token(secret: dict[str, Any]) -> str:
    """The Management Layer's token for the HMS backend, minted from this folder's secret."""
    from hms_backend.auth import mint_token

    return mint_token(secret["hms_jwt_secret"], "hms-management-layer", 365 * 24 * 3600)


def hms_secret_file(state: Path, secret: dict[str, Any]) -> Path:
    """The HMS backend's JWT secret as a private file, for its --secret-file."""
    path = state / "hms_jwt_secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret["hms_jwt_secret"])
    return path


def write_connections(state: Path, secret: dict[str, Any], hms_token: str, *, hms: tuple[str, int],
                      api: tuple[str, int]) -> Path:
    """The deployment's connections, pointing at this stack's HMS backend and api-server (host,
    port), as a private file for the import: the token and the automation user's password."""
    return write_private(state / "connections.json", connections(
        hms_host=hms[0], hms_port=hms[1], hms_token=hms_token, api_host=api[0], api_port=api[1],
        automation_password=secret["passwords"][AUTOMATION_USER]))
