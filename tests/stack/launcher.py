"""Launchers (`python -m hms_stack run`) of their own, driven as a person drives them, and the
processes of a stack looked up the way `make stop` must find them: by the marker in their
environment (PostgreSQL by its data directory), never by name."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from hms_management.airflow_login import AirflowLogin, bearer
from hms_stack.stack import free_port

START_TIMEOUT = 300.0
LOCAL_WORKER = "airflow worker -- LocalExecutor"


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(poll)
    return result


# -- a stack's processes ----------------------------------------------------------------------------

def stack_processes(state: Path) -> dict[str, list[psutil.Process]]:
    """Live processes whose environment says they belong to the stack in `state`, by component,
    and PostgreSQL's and Redis's (they write their titles over their environment; they work in
    their data directories)."""
    found: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            environ = proc.environ()
            if environ.get("HMS_STACK_STATE") == str(state):
                found.setdefault(environ.get("HMS_STACK_COMPONENT", "?"), []).append(proc)
            elif proc.name() in ("postgres", "redis-server") and proc.cwd() in (str(state / "postgres"),
                                                                                 str(state / "redis")):
                found.setdefault(Path(proc.cwd()).name, []).append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def count(found: dict[str, list[psutil.Process]]) -> dict[str, int]:
    return {name: len(group) for name, group in sorted(found.items())}


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` that still run (the same processes: psutil checks their start time)."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def local_worker_sets(state: Path) -> dict[int, int]:
    """LocalExecutor workers of the stack's scheduler, by the pid of their parent (a task process
    forked by a worker carries the worker's title too: only the workers themselves count)."""
    workers = []
    for proc in stack_processes(state).get("scheduler", []):
        with contextlib.suppress(psutil.NoSuchProcess):
            if " ".join(proc.cmdline()).startswith(LOCAL_WORKER):
                workers.append(proc)
    pids = {proc.pid for proc in workers}
    sets: dict[int, int] = {}
    for proc in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            if (parent := proc.ppid()) not in pids:
                sets[parent] = sets.get(parent, 0) + 1
    return sets


def restarted(launcher: Launcher, component: str, old_pid: int, timeout: float = 120.0) -> int:
    """Wait for the launcher to run the component again; its new pid."""
    def new_pid() -> int | None:
        pid = launcher.pid(component)
        return pid if pid != old_pid and psutil.pid_exists(pid) else None

    return wait_for(new_pid, timeout, f"{component} was not restarted:\n{launcher.console()}", poll=0.5)


def descends_from(proc: psutil.Process, root: int) -> bool:
    try:
        return proc.pid == root or any(parent.pid == root for parent in proc.parents())
    except psutil.NoSuchProcess:
        return True  # gone meanwhile: not a stray


# -- a launcher -------------------------------------------------------------------------------------

class Launcher:
    """`python -m hms_stack run` in a folder of its own, on free ports, as a person runs it: with
    `terminal`, in a pseudo-terminal it controls (Ctrl-C, closing the terminal), else with its
    console in a file."""

    def __init__(self, folder: Path, *, terminal: bool = False, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), via_make: bool = False) -> None:
        self.folder = folder
        self.args = args
        self.via_make = via_make  # make leads the terminal's session, as in `ssh -t host make run`
        self.state = folder / ".state"
        self.api_port, self.hms_port = free_port(), free_port()
        self.terminal = terminal
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self._console = bytearray()
        self._console_file = folder / "console.txt"
        self._master: int | None = None
        self._reading = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def hms_url(self) -> str:
        return f"http://127.0.0.1:{self.hms_port}"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hms_stack", *args, "--state", str(self.state)]

    def start(self) -> Launcher:
        cmd = self.command("run", "--api-port", str(self.api_port), "--backend-port", str(self.hms_port), *self.args)
        if self.via_make:
            makefile = self.folder / "Makefile"
            makefile.write_text(f"run:\n\t{' '.join(cmd)}\n")
            cmd = ["make", "--no-print-directory", "-f", str(makefile), "run"]
        if self.terminal:
            self._master, slave = os.openpty()
            self.process = subprocess.Popen(cmd, env=self.env, stdin=slave, stdout=slave, stderr=slave,
                                            start_new_session=True, preexec_fn=_take_terminal)
            os.close(slave)
            self._reading.set()
            self._reader = threading.Thread(target=self._read_terminal, daemon=True)
            self._reader.start()
        else:
            with open(self._console_file, "wb") as out:
                self.process = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def _read_terminal(self) -> None:
        while self._reading.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:  # the launcher closed its end
                    return
                if not chunk:
                    return
                self._console.extend(chunk)

    def console(self) -> str:
        if self.terminal:
            return self._console.decode(errors="replace").replace("\r\n", "\n")
        return self._console_file.read_text(errors="replace") if self._console_file.exists() else ""

    def wait_ready(self) -> Launcher:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the launcher exited with {self.process.returncode}:\n{self.console()}")
            return "is running" in self.console()

        wait_for(ready, START_TIMEOUT, f"the launcher did not say it is running:\n{self.console()}", poll=0.5)
        return self

    def press_ctrl_c(self) -> None:
        os.write(self._master, b"\x03")  # the terminal sends SIGINT to its foreground process group

    def close_terminal(self) -> None:
        """As when the window is closed: the terminal hangs up (SIGHUP to the launcher)."""
        self._reading.clear()
        self._reader.join()
        os.close(self._master)
        self._master = None

    def exit_code(self, timeout: float = 120.0) -> int:
        return self.process.wait(timeout=timeout)

    def cli(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
        """`python -m hms_stack <args>` for this folder (stop, status, run …), its output captured."""
        return subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def state_file(self) -> dict[str, Any]:
        import json

        return json.loads((self.state / "stack.json").read_text())

    def pid(self, component: str) -> int:
        return self.state_file()["components"][component]["pid"]

    def restarts(self, component: str) -> int:
        return self.state_file()["components"][component]["restarts"]

    def finish(self) -> None:
        """Whatever a test left: the launcher stopped, every process of its folder ended."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._master is not None:
            self._reading.clear()
            if self._reader is not None:
                self._reader.join()
            os.close(self._master)
        self.cli("stop")


def _take_terminal() -> None:
    """In the launcher, before exec: make the pseudo-terminal on stdin its controlling terminal, with
    a hang-up's default action, as in a terminal window (a test run under nohup ignores SIGHUP, and
    an ignored signal stays ignored across exec)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


# -- talking to a stack ---------------------------------------------------------------------------

class Proposals:
    """The /management API as the agent uses it, and the backend's fault switch."""

    def __init__(self, api_url: str, hms_url: str, state: Path) -> None:
        import json

        credentials = json.loads((state / "credentials.json").read_text())
        self.api = httpx.Client(base_url=api_url, timeout=30)
        self.hms = httpx.Client(base_url=hms_url, timeout=30,
                                headers={"Authorization": f"Bearer {credentials['hms_token']}"})
        self._login = AirflowLogin(api_url, "agent", credentials["airflow"]["agent"], timeout=30)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._login.authorized(lambda token: self.api.request(method, path, headers=bearer(token), **kwargs))

    def submit(self, proposal_id: str) -> None:
        proposal = {"id": proposal_id, "day": "Tue", "rule": {"queue": "foia", "strategy": "oldest-first"}}
        answer = self._call("POST", "/management/proposals", json=proposal)
        assert answer.status_code in (200, 202), answer.text

    def status(self, proposal_id: str) -> dict[str, Any]:
        try:
            answer = self._call("GET", f"/management/proposals/{proposal_id}")
        except httpx.TransportError:  # the api-server is being restarted
            return {"status": "unknown", "steps": []}
        return answer.json() if answer.status_code == 200 else {"status": "unknown", "steps": []}

    def steps_in(self, state: str, proposal_ids: list[str]) -> list[str]:
        """Steps of these proposals in this task state now (running: a task process is at work on it),
        as Airflow says (`proposal.step`)."""
        try:
            answer = self._call("GET", "/api/v2/dags/proposal_orchestration/dagRuns/~/taskInstances",
                                params={"state": state, "limit": 100})
        except httpx.TransportError:  # the api-server is being restarted
            return []
        runs = {f"proposal__{pid}": pid for pid in proposal_ids}
        return [f"{runs[ti['dag_run_id']]}.{ti['task_id']}" for ti in answer.json().get("task_instances", [])
                if ti["dag_run_id"] in runs] if answer.status_code == 200 else []

    def slow_policy_calls(self, milliseconds: int) -> None:
        """Every POST /svc/policy answers after a delay (a latency fault; status None: no error)."""
        answer = self.hms.put("/admin/faults", json={"route": "/svc/policy", "status": None,
                                                     "latency_ms": milliseconds, "times": -1})
        answer.raise_for_status()

    def clear_faults(self) -> None:
        self.hms.delete("/admin/faults").raise_for_status()

    def wait_completed(self, proposal_ids: list[str], timeout: float = 240.0) -> None:
        def done() -> bool:
            return all(self.status(pid).get("status") == "completed" for pid in proposal_ids)

        try:
            wait_for(done, timeout, f"proposals {proposal_ids} did not all complete", poll=1.0)
        except TimeoutError as error:  # say where each one stands
            where = {pid: (answer["status"], [(step["task_id"], step.get("state")) for step in answer["steps"]])
                     for pid in proposal_ids for answer in [self.status(pid)]}
            raise TimeoutError(f"{error}: {where}") from None

    def close(self) -> None:
        self.api.close()
        self.hms.close()


def proposal_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{int(time.time())}-{i}" for i in range(n)]
