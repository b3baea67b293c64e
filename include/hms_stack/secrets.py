"""Secrets of a local stack: generated once into the state folder, never defaulted in code."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from hms_deploy.setup import USERS, write_private


def load_or_create(state: Path) -> dict[str, Any]:
    """Secrets of this state folder: created at the first start, kept by every later one."""
    from cryptography.fernet import Fernet

    path = state / "secrets.json"
    if path.exists():
        kept = json.loads(path.read_text())
        missing = [user for user in USERS if user not in kept["passwords"]]
        if missing:  # a state folder from before a user was added: give the new user a password
            kept["passwords"].update({user: secrets.token_urlsafe(12) for user in missing})
            write_private(path, kept)
        return kept
    generated = {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(48),
        "hms_jwt_secret": secrets.token_urlsafe(48),
        "passwords": {user: secrets.token_urlsafe(12) for user in USERS},
    }
    write_private(path, generated)
    return generated


def write_user_files(state: Path, secret: dict[str, Any], hms_token: str) -> None:
    """The passwords file Airflow reads, and credentials.json for the person at the keyboard."""
    write_private(state / "passwords.json", secret["passwords"])
    write_private(state / "credentials.json", {"airflow": secret["passwords"], "hms_token": hms_token})
