"""What the backend needs to start: where its data lives and the secret its tokens are signed with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DATABASE_FILE = "hms_backend.sqlite3"

# HS256 with a shorter key is brute-forceable; PyJWT only warns about it, the backend refuses it.
MIN_SECRET_BYTES = 32


class SettingsError(ValueError):
    """The backend cannot start with these settings; the message says what to fix."""


def check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")


def read_secret(secret_file: Path) -> str:
    try:
        secret = secret_file.read_text().strip()
    except FileNotFoundError:
        raise SettingsError(
            f"secret file {secret_file} not found; create one with: python -m hms_backend new-secret {secret_file}"
        ) from None
    check_secret(secret)
    return secret


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    jwt_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        check_secret(self.jwt_secret)

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILE
