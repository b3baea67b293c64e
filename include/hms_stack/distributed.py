"""The stack beyond one machine: CeleryExecutor with a Redis broker and Celery workers.

`DistributedStack` is the topology of docker-compose.yaml as separate processes on this machine:
PostgreSQL, Redis, the HMS backend, api-server, scheduler, dag-processor, triggerer and N Celery
workers, everything on 127.0.0.1 (`make test-distributed`, `make run-distributed`). Nothing in the
DAGs changes; only the executor and the processes that run tasks do. The container deployment's own
set-up is `hms_deploy` (in the image).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from hms_stack.console import StackError
from hms_stack.readiness import READY_TIMEOUT, check_alive
from hms_stack.stack import Stack

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
        raise StackError("redis-server is not installed: `make redis-server` (apt-get install redis-server)")
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

    def ports(self) -> dict[str, int]:
        return {**super().ports(), "redis": self.redis_port}

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
                check_alive(self)
                if time.monotonic() > deadline:
                    raise StackError(f"{name} did not connect to the broker; its log: {self.log_file(name)}")
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
