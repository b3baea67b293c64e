"""What the person at the keyboard reads: the one-line answers to their mistakes, the launcher's
console, and the words every command uses for a stack's processes, ports and times.

A mistake with `make run`, `make stop`, `make status` or `make submit` (a port taken, a second
start, a broken file) is raised as a StackError whose message is the line the user reads;
`python -m hms_stack` prints it and exits with 1, never with a traceback. The words live here so
that the launcher, `make stop` and `make status` name a component's processes, a port and a time
alike. This room imports nothing of the others but `processes`: every other room raises these.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from hms_stack import processes

if TYPE_CHECKING:
    from hms_stack.stack import Stack

# What listens on each port, and the setting that moves it (a Makefile variable; HMS_<name> in the
# environment).
PORTS = {"api-server": ("Airflow's api-server", "API_PORT"), "hms-backend": ("the HMS backend", "BACKEND_PORT"),
         "redis": ("Redis", "REDIS_PORT"), "airflow-metrics": ("Airflow's metrics (StatsD bridge)", "METRICS_PORT")}
# Start order, for listings: the database first, Airflow's workers last.
ORDER = ["launcher", "postgres", "hms-backend", "redis", "setup", "api-server", "scheduler", "dag-processor",
         "triggerer"]


class StackError(Exception):
    """Something the person at the keyboard can act on; the message is what they read."""


class AlreadyRunning(StackError):
    pass


class PortBusy(StackError):
    pass


class CrashLoop(StackError):
    pass


class Console:
    """The launcher's output: the terminal while there is one (after SIGHUP writes fail, and the
    clean-up must go on), and always logs/launcher.log."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.terminal = True

    def say(self, line: str) -> None:
        if self.terminal:
            try:
                print(line, flush=True)
            except OSError:
                self.terminal = False
        try:
            with open(self.log_file, "a") as out:
                stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                out.writelines(f"{stamp} {part}\n" for part in line.strip("\n").splitlines())
        except OSError:
            pass


def running(stack: Stack) -> str:
    """What `make run` says once its stack is ready."""
    return (
        f"\nHMS Management Layer is running.\n"
        f"  Airflow UI and REST API  {stack.api_url}   (users admin, agent, analyst, reviewer)\n"
        f"  HMS reference backend    {stack.hms_url}\n"
        f"  credentials              {stack.state / 'credentials.json'}\n"
        f"  logs                     {stack.log_dir}\n\n"
        f"Submit a sample proposal from another terminal:\n"
        f"  make submit\n\n"
        f"A component that exits is restarted; `make status` lists them.\n"
        f"Ctrl-C stops everything (or `make stop` from another terminal).\n"
    )


# -- ports ------------------------------------------------------------------------------------------

def port_user(component: str) -> str:
    """Who listens on a component's port, in words: `Airflow's api-server`."""
    return PORTS.get(component, (component, ""))[0]


def port_advice(component: str, port: int) -> str:
    """What to do about a port another program holds, with a free port to choose."""
    setting = PORTS.get(component, ("", "the port"))[1]
    spare = next((p for p in range(port + 1, min(port + 50, 65536)) if not processes.port_in_use(p)), None)
    return f"stop that program or choose another port, e.g. make run {setting}={spare or '…'}"


# -- processes --------------------------------------------------------------------------------------

def describe_group(group: list[Any]) -> str:
    """`pid 123, 33 processes` for a component's processes (oldest first), or, when the process
    that started them is gone, `32 processes whose parent died, e.g. pid 456`."""
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
    """`postgres (pid 1, 14 processes), scheduler (…)`: a stack's processes on one line."""
    return ", ".join(f"{name} ({describe_group(group)})" for name, group in found.items() if group)


def ordered(names) -> list[str]:
    """Component names in start order (ORDER), others after them by name."""
    return sorted(names, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, indented under the message that names it."""
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- times ------------------------------------------------------------------------------------------

def when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "an unknown time"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
