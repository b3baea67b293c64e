"""A whole local stack in one object: embedded PostgreSQL, the reference HMS backend and Airflow.

`make run` and the test suite both use it; each stack lives in its own state folder with its own
ports, so a test run never disturbs a running `make run`. This object holds the order of events
(start, stop, supervise) and what the stack knows (its ports, its processes); each concern is a
room it composes: `lock` (one stack at a time per folder), `postgres` (the embedded server, the
only room that touches the wheel), `processes` (the folder's marker every process carries, so a
stop ends all of them: a crashed component's orphans and a killed launcher's leftovers included),
`readiness`, `supervision`, `status` (stack.json), `secrets` and `console` (what the user reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hms_deploy.database import RECORDS_ENV, records_connection
from hms_deploy.setup import DATABASE_SETUP_MODULE
from hms_management.airflow_login import AirflowLogin
from hms_management.domain.metrics import METRICS_TOKEN_FILE_ENV
from hms_stack import processes, readiness, status
from hms_stack import secrets as stack_secrets
from hms_stack.console import StackError, describe_group, summary, tail
from hms_stack.lock import StateLock
from hms_stack.postgres import POSTGRES, EmbeddedPostgres
from hms_stack.supervision import Supervisor

ROOT = Path(__file__).resolve().parents[2]
POOLS_FILE = ROOT / "config" / "pools.json"
AIRFLOW_CFG = ROOT / "airflow.cfg"
# Airflow's processes and their arguments. The log servers are skipped: on one machine the
# api-server reads task logs from the shared folder, and serve-logs would listen on every interface.
COMPONENTS = {
    "api-server": [],
    "scheduler": ["--skip-serve-logs"],
    "dag-processor": [],
    "triggerer": ["--skip-serve-logs"],
}
# Airflow's own metrics for Prometheus (`metrics_port`): StatsD in, /metrics out.
AIRFLOW_METRICS = "airflow-metrics"
# Stopped after the Airflow processes, in this order: they use the backend, Redis and the database.
STOPPED_LAST = ("hms-backend", "redis", POSTGRES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    state: Path
    api_port: int = 8080
    hms_port: int = 8090
    extra_env: dict[str, str] = field(default_factory=dict)
    # The DAGs that must be parsed, and whether /management must answer, before the stack is ready
    # (the benchmark's naive baseline has neither our DAG nor our plugins). None: proposal_orchestration.
    ready_dag_ids: tuple[str, ...] | None = None
    serves_management_api: bool = True
    # A component that exits is restarted at most this many times within this many seconds; when
    # it exits once more in that window, supervise() gives up (HMS_CRASH_LOOP_RESTARTS / _SECONDS).
    crash_loop_restarts: int = 5
    crash_loop_seconds: float = 120.0
    # Airflow's own metrics (StatsD) for Prometheus: the bridge takes StatsD on this UDP port and
    # serves /metrics on this TCP port (hms_stack.statsd_bridge). None: Airflow sends no metrics.
    metrics_port: int | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    # Where Airflow's processes reach the HMS backend and the api-server: this machine here; the
    # container set-up (hms_stack.distributed) names the compose services instead.
    hms_host = "127.0.0.1"
    api_host = "127.0.0.1"
    postgres: EmbeddedPostgres = field(init=False, repr=False)
    supervisor: Supervisor = field(init=False, repr=False)
    _lock: StateLock = field(init=False, repr=False)
    _commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict, init=False, repr=False)
    # When each component was last started (epoch seconds), for stack.json.
    started_at: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    # The metadata database's SQLAlchemy URI, once started (benchmarks write synthetic runs there).
    db_uri: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute: it is the marker every process of the stack carries.
        self.state = Path(self.state).resolve()
        self._lock = StateLock(self.state / "stack.lock")
        self.postgres = EmbeddedPostgres(self.pgdata)
        self.supervisor = Supervisor(self)

    # -- addresses and environment -------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def hms_url(self) -> str:
        return f"http://127.0.0.1:{self.hms_port}"

    @property
    def pgdata(self) -> Path:
        return self.state / "postgres"

    @property
    def airflow_config(self) -> Path:
        """The airflow.cfg this stack's Airflow reads: the committed one, unless its environment names another."""
        return Path(self.extra_env.get("AIRFLOW_CONFIG", AIRFLOW_CFG))

    @property
    def log_dir(self) -> Path:
        return self.state / "logs"

    @property
    def state_file(self) -> Path:
        return self.state / "stack.json"

    def log_file(self, component: str) -> Path:
        return self.postgres.log_file if component == POSTGRES else self.log_dir / f"{component}.log"

    def ports(self) -> dict[str, int]:
        """The TCP ports the stack listens on, by component."""
        metrics = {AIRFLOW_METRICS: self.metrics_port} if self.metrics_port is not None else {}
        return {"api-server": self.api_port, "hms-backend": self.hms_port, **metrics}

    def daemons(self) -> dict[str, processes.Daemon]:
        """Servers found by executable and working directory: they overwrite their environment.
        Redis (hms_stack.distributed) too, so that a plain `stop` finds a distributed stack's."""
        redis = shutil.which("redis-server")
        return {POSTGRES: self.postgres.daemon(),
                **({"redis": processes.Daemon(Path(redis), self.state / "redis")} if redis else {})}

    def credentials(self) -> dict[str, Any]:
        return json.loads((self.state / "credentials.json").read_text())

    def airflow_env(self, db_uri: str, secret: dict[str, Any]) -> dict[str, str]:
        """Environment of every Airflow process: the committed airflow.cfg plus what is per-stack."""
        bin_dir = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HMS_ROOT": str(ROOT),
            "HMS_STATE": str(self.state),
            "AIRFLOW_HOME": str(self.state / "airflow"),
            "AIRFLOW_CONFIG": str(AIRFLOW_CFG),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_uri,
            # The Management Layer's own records: a second database on the same server.
            RECORDS_ENV: records_connection(db_uri),
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            # Secrets: from the state folder, through the environment, never in a committed file.
            "AIRFLOW__CORE__FERNET_KEY": secret["fernet_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": secret["api_secret_key"],
            # The scraper's token, which GET /management/metrics compares a scrape's with.
            METRICS_TOKEN_FILE_ENV: str(stack_secrets.metrics_token_file(self.state)),
            **self.statsd_env(),
            **self.extra_env,
        }

    def statsd_env(self) -> dict[str, str]:
        """Airflow's metrics over StatsD to this stack's bridge (airflow.cfg [metrics] says how)."""
        if self.metrics_port is None:
            return {}
        return {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(self.metrics_port)}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, log=print, *, launcher: bool = False) -> None:
        """Start everything and return once the API answers and the DAGs are parsed.

        Raises AlreadyRunning (nothing touched) when a stack runs from this folder, PortBusy when
        a port is taken (nothing started), StackError when a part fails to start (all stopped).
        `launcher`: this process is `python -m hms_stack run`, which `make stop` may signal.
        """
        started = time.monotonic()
        try:
            self.state.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StackError(f"cannot use {self.state} as the state folder: {err.strerror}") from None
        self._lock.acquire({"pid": os.getpid(), "since": time.time(), "launcher": launcher,
                            "api_url": self.api_url, "hms_url": self.hms_url})
        try:
            self.log_dir.mkdir(exist_ok=True)
            if leftovers := self.find_processes():
                log(f"stopping what an earlier stack of this folder left running: {summary(leftovers)} …")
                self.end_processes(leftovers, database=True)
            readiness.check_ports(self.ports())
            secret, hms_token = stack_secrets.prepare(self.state, self.airflow_config)

            log("starting embedded PostgreSQL …")
            self.db_uri = self._start_postgres()
            env = self.airflow_env(self.db_uri, secret)
            status.write(self)
            log("migrating the metadata database, importing pools and connections …")
            connections = stack_secrets.write_connections(self.state, secret, hms_token,
                                                          hms=(self.hms_host, self.hms_port),
                                                          api=(self.api_host, self.api_port))
            try:
                self._run(env, "metadata-database", [sys.executable, "-m", DATABASE_SETUP_MODULE, str(POOLS_FILE),
                                                     str(connections)])
            finally:
                connections.unlink()  # the token lives encrypted in the database only
            log(f"starting the HMS backend and Airflow ({', '.join(self.components())}) …")
            self._spawn("hms-backend", [sys.executable, "-m", "hms_backend", "serve", "--host", "127.0.0.1",
                                        "--port", str(self.hms_port), "--data-dir", str(self.state / "hms"),
                                        "--secret-file", str(stack_secrets.hms_secret_file(self.state, secret))], env)
            for component, cmd in self.components().items():
                self._spawn(component, cmd, env)
            status.write(self)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log(f"ready in {time.monotonic() - started:.1f} s")

    def stop(self) -> dict[str, str]:
        """Stop every process of this folder's stack, descendants and orphans included, then
        PostgreSQL; returns what was stopped (component → descriptions, see `summary`)."""
        own_lock = self._lock.held or self._lock.try_acquire({"pid": os.getpid(), "since": time.time()})
        try:
            found = self.find_processes()
            # Whatever this object started and the marker search missed (a process of another
            # user, where the system hides environments).
            for name, proc in self.processes.items():
                known = {p.pid for p in found.get(name, [])}
                found.setdefault(name, []).extend(p for p in process_tree(proc.pid) if p.pid not in known)
            stopped = {name: describe_group(group) for name, group in found.items() if group}
            self.end_processes(found, database=True)
            self.processes.clear()
            processes.reap_orphans()  # in the launcher: the stack's processes it adopted
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
            return stopped
        finally:
            if own_lock:
                self._lock.release()

    def components(self) -> dict[str, list[str]]:
        """The processes started after the set-up, in start order, with their command lines."""
        bridge = ({AIRFLOW_METRICS: [sys.executable, "-m", "hms_stack.statsd_bridge", "--port", str(self.metrics_port)]}
                  if self.metrics_port is not None else {})
        return {**bridge, **{name: ["airflow", name, *args] for name, args in COMPONENTS.items()}}

    def find_processes(self) -> dict[str, list[Any]]:
        """Every live process of this folder's stack (psutil.Process), by component."""
        return processes.find(self.state, self.daemons())

    def holder(self) -> dict[str, Any] | None:
        """Who runs the stack of this folder: {"pid", "since", "launcher", "api_url", …} or None."""
        return self._lock.holder()

    def supervise(self, log=print, *, until: Callable[[], str | None] = lambda: None) -> str:
        """Keep the stack running until interrupted or `until()` gives a reason (returned);
        CrashLoop when a component keeps exiting (hms_stack.supervision)."""
        return self.supervisor.supervise(log, until=until)

    # -- what supervision asks of the stack ----------------------------------------------------

    def supervised(self) -> list[str]:
        """The components watched and restarted, in start order: the database first."""
        return [POSTGRES, *self.processes]

    def pid(self, name: str) -> int | None:
        """The pid of the process this object started for a component, if any."""
        if name == POSTGRES:
            return self.postgres.pid
        proc = self.processes.get(name)
        return proc.pid if proc is not None else None

    def restart(self, name: str) -> None:
        """Start a component again as it was started (PostgreSQL on the same socket)."""
        if name == POSTGRES:
            if self._start_postgres() != self.db_uri:
                raise StackError("PostgreSQL came back on another socket; stop the stack and start it again")
            return
        cmd, env = self._commands[name]
        self._spawn(name, cmd, env)

    def end_processes(self, found: dict[str, list[Any]], *, database: bool = False) -> None:
        """End processes by component: Airflow's first, then the backend and Redis, the database
        last (`database`: also ask the PostgreSQL server of this folder to shut down cleanly)."""
        airflow = [proc for name, group in found.items() if name not in STOPPED_LAST for proc in group]
        processes.end(airflow)
        for name in STOPPED_LAST[:-1]:
            processes.end(found.get(name, []))
        if database:
            self.postgres.stop()
            found = self.find_processes()
        processes.end(found.get(POSTGRES, []))

    # -- the api-server --------------------------------------------------------------------------

    def token(self, user: str = "admin") -> str:
        return AirflowLogin(self.api_url, user, self.credentials()["airflow"][user], timeout=10).token()

    # -- start-up steps ------------------------------------------------------------------------

    def _start_postgres(self) -> str:
        uri = self.postgres.start()
        self.started_at[POSTGRES] = time.time()
        return uri

    def _wait_ready(self) -> None:
        readiness.wait_ready(self)

    def _run(self, env: dict[str, str], name: str, cmd: list[str]) -> None:
        """A set-up command, its output in its own log; a failure names the command and the log."""
        log = self.log_dir / f"{name}.log"
        if (returncode := processes.run(self.state, cmd, env, log)) != 0:
            raise StackError(f"`{' '.join(cmd)}` failed ({returncode}); its log: {log}\n{tail(log)}")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self._commands[name] = (cmd, env)
        self.processes[name] = processes.start(self.state, name, cmd, env, self.log_dir / f"{name}.log")
        self.started_at[name] = time.time()


def process_tree(pid: int) -> list[Any]:
    """A process and all its descendants (psutil.Process), or [] when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
