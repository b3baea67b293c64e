"""The stack beyond one machine: CeleryExecutor with a Redis broker and Celery workers.

`DistributedStack` is the topology of docker-compose.yaml as separate processes on this machine:
PostgreSQL, Redis, the HMS backend, api-server, scheduler, dag-processor, triggerer and N Celery
workers, everything on 127.0.0.1 (`make test-distributed`, `make run-distributed`). Nothing in the
DAGs changes; only the executor and the processes that run tasks do.

`ContainerSetup` is the one-shot set-up of the container deployment (docker-compose.yaml's
`airflow-init`): the same pools, connections and users as the local stack, with the secrets taken
from the environment (an env file that is never committed) instead of generated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hms_stack import secrets as stack_secrets
from hms_stack.stack import METADATA_INDEXES_MODULE, POOLS_FILE, READY_TIMEOUT, Stack

WORKER_PREFIX = "worker-"
# Each worker runs this many tasks at once: two workers × 4 keep a 2-core machine busy without
# thrashing (Celery's default would be 16 per worker).
WORKER_CONCURRENCY = 4
# A task whose worker died stops heartbeating; the scheduler fails it (and it is retried) after
# this long instead of Airflow's 300 s, so a lost worker costs a proposal seconds, not minutes.
TASK_HEARTBEAT_TIMEOUT_SECONDS = 30
# A task whose Celery message a dying worker had taken but not started stays `queued`; the
# scheduler re-queues it after this long instead of 600 s. Well above the longest wait for a free
# worker slot in a burst, so a task that is merely waiting is not re-queued.
TASK_QUEUED_TIMEOUT_SECONDS = 120


def redis_server() -> str:
    """Path of Debian's redis-server (`make test-distributed` installs it when missing)."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed: `make redis-server` (apt-get install redis-server)")
    return path


@dataclass
class DistributedStack(Stack):
    redis_port: int = 6379
    workers: int = 2
    # Where each worker's log stood at its start: a `ready.` line of an earlier run does not count.
    _log_offsets: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def worker_names(self) -> list[str]:
        return [f"{WORKER_PREFIX}{n}" for n in range(1, self.workers + 1)]

    def airflow_env(self, db_uri: str, secret: dict[str, Any]) -> dict[str, str]:
        return {
            **super().airflow_env(db_uri, secret),
            # Tasks go through the broker to whichever worker is free, on any machine.
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            # Task states come back through the metadata database (Airflow's recommended backend).
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_uri}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT_SECONDS),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(TASK_QUEUED_TIMEOUT_SECONDS),
            **self.extra_env,
        }

    def components(self) -> dict[str, list[str]]:
        redis_dir = self.state / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        # The broker holds only messages in flight: no snapshots. If it restarts, the scheduler
        # re-queues the tasks whose messages were lost (task_queued_timeout).
        redis = [redis_server(), "--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", str(redis_dir),
                 "--save", "", "--appendonly", "no"]
        workers = {
            # Distinct node names (two workers on one host); no log server each: on one machine
            # the api-server reads task logs from the shared folder, as for the scheduler.
            name: ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
            for name in self.worker_names
        }
        # Redis first, so that it is stopped after every Airflow process: they all talk to it.
        return {"redis": redis, **super().components(), **workers}

    def _wait_ready(self) -> None:
        super()._wait_ready()
        deadline = time.monotonic() + READY_TIMEOUT
        for name in self.worker_names:
            while not self.worker_ready(name):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not connect to the broker; see logs/{name}.log")
                time.sleep(0.3)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = self.log_dir / f"{name}.log"
        self._log_offsets[name] = log.stat().st_size if log.exists() else 0
        super()._spawn(name, cmd, env)

    def worker_ready(self, name: str) -> bool:
        """Celery logs `<node> ready.` once the worker consumes from the broker."""
        with open(self.log_dir / f"{name}.log", "rb") as log:
            log.seek(self._log_offsets.get(name, 0))
            return f"{name}@".encode() in (text := log.read()) and b" ready." in text


# -- the container set-up (docker-compose.yaml's airflow-init) -----------------------------------

SECRET_ENV = "HMS_JWT_SECRET"


def password_env(user: str) -> str:
    """The env-file variable that holds a user's Airflow password: HMS_PASSWORD_<USER>."""
    return f"HMS_PASSWORD_{user.upper()}"


@dataclass
class ContainerSetup(Stack):
    """Pools, connections and users of a container deployment; its secrets come from the env file."""

    hms_host: str = "hms-backend"
    api_host: str = "api-server"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def secrets_from_env(self) -> dict[str, Any]:
        names = [SECRET_ENV, *(password_env(user) for user in stack_secrets.USERS)]
        missing = [name for name in names if not self.environ.get(name)]
        if missing:
            raise SystemExit(f"set {', '.join(missing)} in the env file (see .env.example)")
        return {"hms_jwt_secret": self.environ[SECRET_ENV],
                "passwords": {user: self.environ[password_env(user)] for user in stack_secrets.USERS}}

    def write_files(self) -> Path:
        """passwords.json for the api-server, and the connections file; returns the latter."""
        secret = self.secrets_from_env()
        # The state volume keeps what the set-up reads back (the sweeper's password), never the
        # Airflow keys: those reach every container through its environment only.
        path = self.state / "secrets.json"
        self.state.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(secret, f)
        hms_token = self._mint_hms_token(secret)
        stack_secrets.write_user_files(self.state, secret, hms_token)
        return self._write_connections(hms_token)

    def set_up(self) -> None:
        connections = self.write_files()
        for cmd in (["airflow", "db", "migrate"], [sys.executable, "-m", METADATA_INDEXES_MODULE],
                    ["airflow", "pools", "import", str(POOLS_FILE)],
                    ["airflow", "connections", "import", "--overwrite", str(connections)]):
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        connections.unlink()  # imported (encrypted with the fernet key); the plain file has served


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hms_stack.distributed",
                                     description="one-shot set-up of the container deployment")
    parser.add_argument("command", choices=["container-init"])
    parser.add_argument("--state", type=Path, default=Path(os.environ.get("HMS_STATE", "/opt/airflow/state")))
    parser.add_argument("--hms-host", default=ContainerSetup.hms_host)
    parser.add_argument("--hms-port", type=int, default=8090)
    parser.add_argument("--api-host", default=ContainerSetup.api_host)
    parser.add_argument("--api-port", type=int, default=8080)
    args = parser.parse_args()
    ContainerSetup(state=args.state, api_port=args.api_port, hms_port=args.hms_port, hms_host=args.hms_host,
                   api_host=args.api_host).set_up()
    return 0


if __name__ == "__main__":
    sys.exit(main())
