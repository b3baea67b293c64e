"""Which processes belong to a stack, and how to end them, whatever happened to the launcher; and
how a stack starts them, marked.

Every process a stack starts carries two environment variables, which its children inherit through
fork and exec: HMS_STACK_STATE=<absolute state folder> and HMS_STACK_COMPONENT=<name>. A stack's
processes are the ones whose /proc/<pid>/environ says so. Why not the alternatives:
- the process tree: a component that dies leaves its children re-parented to PID 1 (a SIGKILLed
  scheduler leaves its 32 LocalExecutor workers), outside any tree a stop command can walk;
- process groups and sessions: Airflow's task processes start groups of their own;
- pid files: they go stale, and are lost or overwritten (a second start in the same folder);
- cgroups: the robust answer on a server, but they need a delegated hierarchy that a developer's
  machine and a container do not give a plain user.
The environment is readable by the process's own user (root: every user), and it survives
re-parenting and a lost state file. Two things overwrite it and are dealt with:
- setproctitle (Airflow retitles its workers, api-server and task processes) moves the
  environment and writes the title over it; SPT_NOENV=1 makes it leave the environment alone
  (titles are then cut at the length of the original command line, long enough here);
- PostgreSQL and Redis rewrite their titles in C, and the embedded PostgreSQL is started by the
  wheel with the launcher's environment: they are found by what they are (their executable) and
  where they work (their working directory is the data directory: PostgreSQL and Redis chdir there).

The launcher also makes itself a child subreaper: orphans of a dying component re-parent to it
instead of PID 1, so that it sees and reaps them (no zombies while it runs).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

STATE_MARK = "HMS_STACK_STATE"
COMPONENT_MARK = "HMS_STACK_COMPONENT"
# How long a process gets to exit after SIGTERM before SIGKILL. A task that was running when its
# scheduler died finishes its current call within it (the task process only runs its operator's
# on_kill on SIGTERM) and reports its state through the api-server, which needs no scheduler.
STOP_GRACE_SECONDS = 10.0
# LocalExecutor workers ignore SIGTERM (only the scheduler may end them); an idle one has nothing
# to finish, so it gets SIGKILL at once instead of after the grace period.
IDLE_LOCAL_WORKER = ("airflow worker -- LocalExecutor", "<idle>")


def markers(state: Path, component: str) -> dict[str, str]:
    """Environment that marks a process (and all its descendants) as one of a stack's."""
    return {STATE_MARK: str(state), COMPONENT_MARK: component, "SPT_NOENV": "1"}


def start(state: Path, component: str, cmd: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """Start a component's process, marked, in a session of its own, its output appended to `log`."""
    with open(log, "ab") as out:  # the child holds its own copy
        return subprocess.Popen(cmd, env={**env, **markers(state, component)}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def run(state: Path, cmd: list[str], env: Mapping[str, str], log: Path) -> int:
    """Run a set-up command to its end, marked as the stack's `setup`, its output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.run(cmd, env={**env, **markers(state, "setup")}, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode


@dataclass(frozen=True)
class Daemon:
    """A server found by its executable and working directory rather than by its environment."""

    executable: Path
    workdir: Path


def find(state: Path, daemons: Mapping[str, Daemon] | None = None) -> dict[str, list[psutil.Process]]:
    """Every live process of the stack in `state` (never this one), by component, oldest first."""
    state_text = str(state)
    by_name = {daemon.executable.name: (name, daemon) for name, daemon in (daemons or {}).items()}
    found: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            component = _component(proc, state_text, by_name)
            if component is not None:
                proc.create_time()  # cached: later signals check that the pid was not reused
                found.setdefault(component, []).append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for procs in found.values():
        procs.sort(key=lambda p: p.create_time())
    return found


def _component(proc: psutil.Process, state: str, by_name: Mapping[str, tuple[str, Daemon]]) -> str | None:
    if proc.status() == psutil.STATUS_ZOMBIE:
        return None
    environ = proc.environ()
    if environ.get(STATE_MARK) == state:
        return environ.get(COMPONENT_MARK, "unknown")
    if proc.name() in by_name:
        name, daemon = by_name[proc.name()]
        if Path(proc.cwd()) == daemon.workdir and Path(proc.exe()).resolve() == daemon.executable.resolve():
            return name
    return None


def live(pid: Any) -> psutil.Process | None:
    """The live process with this pid, or None."""
    try:
        return psutil.Process(int(pid))
    except (psutil.NoSuchProcess, TypeError, ValueError):
        return None


def belongs(pid: int, state: Path, component: str) -> bool:
    """Whether a live process carries this stack's and component's marker."""
    try:
        environ = psutil.Process(pid).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return environ.get(STATE_MARK) == str(state) and environ.get(COMPONENT_MARK) == component


def end(procs: Iterable[psutil.Process]) -> None:
    """SIGTERM every process, SIGKILL those still there after STOP_GRACE_SECONDS (idle LocalExecutor
    workers at once); returns when all have exited."""
    alive = list(procs)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while alive and time.monotonic() < deadline:
        alive = _still_running(alive)
        for proc in alive:
            if _idle_local_worker(proc):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    proc.kill()
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        alive = _still_running(alive)


def _still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` that have not exited after a short wait. A zombie has exited: an orphan's
    is PID 1's to reap, and a container's PID 1 may never do it (psutil would wait on it forever)."""
    _, alive = psutil.wait_procs(procs, timeout=0.2)
    running = []
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
    return running


def _idle_local_worker(proc: psutil.Process) -> bool:
    try:
        title = " ".join(proc.cmdline()).strip()
        return title.startswith(IDLE_LOCAL_WORKER[0]) and title.endswith(IDLE_LOCAL_WORKER[1]) \
            and not proc.children()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


_subreaper = False


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process rather than to PID 1 (Linux)."""
    global _subreaper
    PR_SET_CHILD_SUBREAPER = 36  # noqa: N806 (linux/prctl.h)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = _subreaper or libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass
    return _subreaper


def reap_orphans(keep: Iterable[int] = ()) -> None:
    """In a subreaper, collect the exit status of dead children it did not start itself (orphans
    that re-parented to it), leaving alone those a Popen object will collect. Elsewhere (a test
    process that runs a Stack) the children are the caller's own business."""
    if not _subreaper:
        return
    kept = set(keep)
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process().children():
            if child.pid not in kept:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child.pid, os.WNOHANG)


# -- ports ------------------------------------------------------------------------------------------

def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could not bind `host:port` now (a socket in TIME_WAIT does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def listeners(port: int) -> list[int | None]:
    """Pids of the processes listening on a TCP port (None where the system does not tell)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return [None]
    return sorted({c.pid for c in connections if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port},
                  key=lambda pid: pid or 0)


def describe(pid: int | None) -> str:
    """`pid 123 (python3 -m http.server 8090)`, as far as the system tells."""
    if pid is None:
        return "another program (the system does not say which: not this user's)"
    try:
        # Titles set by setproctitle come padded with blanks.
        command = " ".join(" ".join(psutil.Process(pid).cmdline()).split()) or psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {pid}"
    return f"pid {pid} ({command[:80]})"


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"
