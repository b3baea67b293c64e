"""`make run`, `make stop` and `make status` as people drive them: in a terminal they close or
press Ctrl-C in, twice in the same folder, on a port another program holds, after a crash of the
launcher itself. What they must see: one clear line for each mistake, a second start refused
without touching the running stack, and no process of the stack left after any way of stopping.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hms_stack.console import AlreadyRunning, PortBusy
from hms_stack.stack import Stack, free_port

from .launcher import Launcher, Proposals, count, proposal_ids, stack_processes, still_running, wait_for

COMPONENTS = ("postgres", "hms-backend", "api-server", "scheduler", "dag-processor", "triggerer")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def everything(state: Path) -> list[psutil.Process]:
    return [proc for group in stack_processes(state).values() for proc in group]


def kill_scheduler_mid_task(launcher: Launcher, prefix: str) -> dict[str, int]:
    """SIGKILL the scheduler while its workers run tasks; the stack's process count before."""
    proposals = Proposals(launcher.api_url, launcher.hms_url, launcher.state)
    try:
        proposals.slow_policy_calls(3000)
        ids = proposal_ids(prefix, 3)
        for proposal_id in ids:
            proposals.submit(proposal_id)
        wait_for(lambda: proposals.steps_in("running", ids), 120, "no step of the proposals was running")
    finally:
        proposals.close()
    before = count(stack_processes(launcher.state))
    os.kill(launcher.pid("scheduler"), signal.SIGKILL)
    return before


# -- mistakes: one line, nothing started ----------------------------------------------------------

def test_a_busy_port_is_refused_at_once_with_one_line_naming_the_program_on_it(folder):
    launcher = Launcher(folder)
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        busy = other_program.getsockname()[1]

        result = launcher.cli("run", "--api-port", str(busy), "--backend-port", str(free_port()), timeout=60)

    line = one_line(result.stderr)
    assert result.returncode == 1
    assert f"port {busy}" in line and f"pid {os.getpid()}" in line and "API_PORT=" in line
    assert stack_processes(launcher.state) == {}
    assert not (launcher.state / "postgres").exists()


def test_an_answer_from_another_program_on_the_port_never_makes_the_stack_ready(folder):
    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    other_program = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=other_program.serve_forever, daemon=True).start()
    port = other_program.server_address[1]
    stack = Stack(state=folder / ".state", api_port=free_port(), hms_port=port)
    stack.log_dir.mkdir(parents=True)
    # This stack's backend is starting (here: a process that never listens), and the port answers.
    stack._spawn("hms-backend", [sys.executable, "-c", "import time; time.sleep(120)"], dict(os.environ))
    try:
        with pytest.raises(PortBusy, match=rf"port {port}, .* is answered by pid {os.getpid()} .*not by this stack"):
            stack._wait_ready()
    finally:
        stack.stop()
        other_program.shutdown()
    assert stack_processes(stack.state) == {}


@pytest.mark.parametrize("args, env, mishap, expected", [
    (["stop"], {}, None, "no stack is running from"),
    (["status"], {}, None, "no stack is running from"),
    (["submit"], {}, None, "no stack is running from"),
    (["run", "--backend-port", "0"], {"HMS_API_PORT": "eighty"}, None, "HMS_API_PORT='eighty' is not a port number"),
    (["run", "--api-port", "0"], {}, None, "is not a TCP port"),
    (["run", "--api-port", "18555", "--backend-port", "18555"], {}, None, "are both set to port 18555"),
    (["run"], {}, "broken secrets", "secrets.json is broken"),
    (["run"], {}, "state is a file", "is not a folder"),
])
def test_each_mistake_gets_one_line_and_no_traceback(folder, args, env, mishap, expected):
    launcher = Launcher(folder, env=env)
    launcher.state.mkdir()
    (launcher.state / "stack.json").write_text("{half a file")  # a state file left broken: never read blindly
    if mishap == "broken secrets":
        (launcher.state / "secrets.json").write_text("{not json")
    if mishap == "state is a file":
        launcher.state = folder / "a-file"
        launcher.state.write_text("")
    if args == ["run"]:
        args = [*args, "--api-port", str(free_port()), "--backend-port", str(free_port())]

    result = launcher.cli(*args, timeout=60)

    assert expected in one_line(result.stdout + result.stderr)
    assert result.returncode == (0 if args[0] == "stop" else 1)
    assert stack_processes(launcher.state) == {}


# -- a stack in a terminal: status, a second start, Ctrl-C -----------------------------------------

@pytest.fixture(scope="module")
def in_terminal() -> Iterator[Launcher]:
    folder = Path(tempfile.mkdtemp(prefix="hms-stack-"))
    launcher = Launcher(folder, terminal=True).start()
    try:
        yield launcher.wait_ready()
    finally:
        launcher.finish()
        shutil.rmtree(folder, ignore_errors=True)


def test_status_lists_each_component_with_pid_uptime_restarts_and_ports(in_terminal):
    result = in_terminal.cli("status")

    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[3:]}
    assert set(rows) == set(COMPONENTS)
    for component in COMPONENTS:
        pid, uptime, restarts = rows[component][1:4]
        assert int(pid) == in_terminal.pid(component)
        assert uptime.endswith("s") and restarts == "0"
    assert f"127.0.0.1:{in_terminal.api_port}" in rows["api-server"]
    assert f"127.0.0.1:{in_terminal.hms_port}" in rows["hms-backend"]


def test_a_second_start_from_the_same_folder_is_refused_at_once_and_disturbs_nothing(in_terminal):
    roots = {component: psutil.Process(in_terminal.pid(component)) for component in COMPONENTS}
    state_file = (in_terminal.state / "stack.json").read_text()

    # The same ports, as a second `make run` in the same clone would use.
    second = in_terminal.cli("run", "--api-port", str(in_terminal.api_port),
                             "--backend-port", str(in_terminal.hms_port), timeout=60)
    with pytest.raises(AlreadyRunning):  # a test's or a benchmark's stack on the same folder
        Stack(state=in_terminal.state, api_port=free_port(), hms_port=free_port()).start()

    line = one_line(second.stderr)
    assert second.returncode == 1
    assert "already running" in line and in_terminal.api_url in line and "`make stop` first" in line
    assert still_running(list(roots.values())) == list(roots.values())
    assert (in_terminal.state / "stack.json").read_text() == state_file
    assert in_terminal.process.poll() is None


def test_ctrl_c_stops_everything_even_after_the_scheduler_was_killed_mid_task(in_terminal):
    before = kill_scheduler_mid_task(in_terminal, "ctrl-c")
    processes = everything(in_terminal.state)  # the orphaned workers and their tasks among them

    in_terminal.press_ctrl_c()

    assert in_terminal.exit_code() == 0, in_terminal.console()
    assert still_running(processes) == []
    assert stack_processes(in_terminal.state) == {}
    assert "no process left behind" in in_terminal.console()
    print(f"Ctrl-C after a SIGKILLed scheduler: {before} before the kill, "
          f"{len(processes)} processes at Ctrl-C, 0 after")


# -- other ways a stack ends -----------------------------------------------------------------------

@pytest.mark.parametrize("leader, heard", [
    ("launcher", "SIGHUP: stopping"),
    # The terminal's hang-up reaches only its session's leader: make, which waits for its recipe.
    ("make", "the terminal was closed: stopping"),
])
def test_closing_the_terminal_stops_everything(folder, leader, heard):
    launcher = Launcher(folder, terminal=True, via_make=leader == "make").start()
    try:
        launcher.wait_ready()
        processes = everything(launcher.state)

        launcher.close_terminal()

        assert launcher.exit_code() == (0 if leader == "launcher" else -signal.SIGHUP)
        assert still_running(processes) == []
        assert stack_processes(launcher.state) == {}
        said = (launcher.state / "logs" / "launcher.log").read_text()
        assert heard in said and "no process left behind" in said
        print(f"terminal closed ({leader} leading its session): {len(processes)} processes before, 0 after")
    finally:
        launcher.finish()


def test_stop_ends_what_a_killed_launcher_and_its_killed_scheduler_left(folder):
    launcher = Launcher(folder).start()
    try:
        launcher.wait_ready()
        before = kill_scheduler_mid_task(launcher, "launcher-killed")
        launcher.process.send_signal(signal.SIGKILL)
        launcher.process.wait()
        processes = everything(launcher.state)
        status = launcher.cli("status")

        stop = launcher.cli("stop")

        assert status.returncode == 1 and "no launcher runs" in status.stdout
        assert stop.returncode == 0, stop.stderr
        said = stop.stdout.splitlines()
        assert [line.split()[1] for line in said] == list(COMPONENTS)
        assert any(line.startswith("stopped scheduler (") and "whose parent died" in line for line in said), said
        assert still_running(processes) == []
        assert stack_processes(launcher.state) == {}
        assert one_line(launcher.cli("stop").stdout) == f"no stack is running from {launcher.state}"
        print(f"launcher and scheduler SIGKILLed: {before} before, {len(processes)} left behind "
              f"({count(stack_processes(launcher.state)) or 0} after `stop`):\n{stop.stdout}")
    finally:
        launcher.finish()
