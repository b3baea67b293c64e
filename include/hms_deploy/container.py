"""The one-shot set-up of the container deployment (docker-compose.yaml's `airflow-init`).

Every secret comes from the environment (the git-ignored env file), and each container gets only
what it needs: the api-server reads the users' passwords file from a volume of its own (read-only);
the HMS token is minted here, goes into the connections (stored encrypted with the fernet key) and
nowhere else; the HMS signing secret stays with this process and the backend's compose secret. No
file of secrets is left on a shared volume.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hms_backend.auth import mint_token
from hms_deploy.setup import DATABASE_SETUP_MODULE, connections, users, write_private
from hms_management.orchestration.airflow_api import AUTOMATION_USER

SECRET_ENV = "HMS_JWT_SECRET"
TOKEN_TTL_SECONDS = 365 * 24 * 3600
PASSWORDS_FILE = "passwords.json"


def password_env(user: str) -> str:
    """The env-file variable that holds a user's Airflow password: HMS_PASSWORD_<USER>."""
    return f"HMS_PASSWORD_{user.upper()}"


@dataclass
class ContainerSetup:
    users_dir: Path  # the api-server's volume: the users' passwords file, nothing else
    pools_file: Path
    hms_host: str = "hms-backend"
    hms_port: int = 8090
    api_host: str = "api-server"
    api_port: int = 8080
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def passwords(self) -> dict[str, str]:
        missing = [name for name in (SECRET_ENV, *map(password_env, users())) if not self.environ.get(name)]
        if missing:
            raise SystemExit(f"set {', '.join(missing)} in the env file (see .env.example)")
        return {user: self.environ[password_env(user)] for user in users()}

    def write_users(self) -> Path:
        return write_private(self.users_dir / PASSWORDS_FILE, self.passwords())

    def connections(self) -> dict:
        return connections(hms_host=self.hms_host, hms_port=self.hms_port, api_host=self.api_host,
                           api_port=self.api_port, automation_password=self.passwords()[AUTOMATION_USER],
                           hms_token=mint_token(self.environ[SECRET_ENV], "hms-management-layer", TOKEN_TTL_SECONDS))

    def set_up(self) -> None:
        self.write_users()
        # The plain connections file lives in this container's private temporary folder for the
        # moment of the import: the token is stored encrypted in the database only.
        with tempfile.TemporaryDirectory() as private:
            path = write_private(Path(private) / "connections.json", self.connections())
            self._run(sys.executable, "-m", DATABASE_SETUP_MODULE, str(self.pools_file), str(path))

    @staticmethod
    def _run(*cmd: str) -> None:
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
