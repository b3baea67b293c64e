"""`python -m hms_stack run|stop|status|submit`: the local stack behind `make run`, `make stop`,
`make status` and `make submit`.

Ports: --api-port / --backend-port (--redis-port with --distributed), or HMS_API_PORT,
HMS_BACKEND_PORT, HMS_REDIS_PORT in the environment; Airflow's metrics for Prometheus (off unless given):
--metrics-port or HMS_METRICS_PORT. Crash loop: --crash-loop-restarts /
--crash-loop-seconds, or HMS_CRASH_LOOP_RESTARTS, HMS_CRASH_LOOP_SECONDS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from hms_stack import processes, status
from hms_stack.console import Console, CrashLoop, StackError, describe_group, ordered, running, summary, when
from hms_stack.lock import is_launcher
from hms_stack.stack import ROOT, Stack

SAMPLE_PROPOSAL = ROOT / "config" / "sample_proposal.json"
# How long `make stop` lets a launcher stop its own stack before it ends the launcher itself.
LAUNCHER_STOP_TIMEOUT = 120.0


def run(stack: Stack) -> int:
    console = Console(stack.log_dir / "launcher.log")
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not received:  # a second Ctrl-C must not cut the clean-up short
            received.append(signal.Signals(signum).name)
            raise KeyboardInterrupt

    # Ctrl-C, `make stop` and a closed terminal (SIGHUP) all stop the stack cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    processes.become_subreaper()  # orphans of a crashed component re-parent to the launcher, which reaps them
    try:
        stack.start(log=console.say, launcher=True)
    except KeyboardInterrupt:  # start() has stopped whatever it had started
        left = stack.find_processes()
        console.say(f"\n{received[0] if received else 'interrupted'} while starting: stopped"
                    + (f"; still running: {summary(left)}" if left else ", no process left behind."))
        return 0
    except StackError as err:  # start() has stopped whatever it had started
        print(err, file=sys.stderr)
        return 1
    console.say(running(stack))
    # A closed terminal sends SIGHUP to its session leader only: where that is make itself (`ssh -t
    # host make run`), make waits and the launcher hears nothing, but its terminal stops being one.
    terminal = [fd for fd in (0, 1, 2) if os.isatty(fd)]

    def terminal_closed() -> str | None:
        return "the terminal was closed" if terminal and not any(os.isatty(fd) for fd in terminal) else None

    code = 0
    try:
        reason = stack.supervise(log=console.say, until=terminal_closed)
        console.say(f"\n{reason}: stopping …")
    except KeyboardInterrupt:
        console.say(f"\n{received[0] if received else 'interrupted'}: stopping …")
    except CrashLoop as err:
        console.say(str(err))
        code = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        left = stack.find_processes()
        console.say(f"still running: {summary(left)}" if left else "stopped: no process left behind.")
    return code


def stop(stack: Stack) -> int:
    """Stop the folder's stack: its launcher first (it stops its own stack), then every process
    that carries the folder's marker, whatever happened before."""
    import psutil

    holder = stack.holder()
    stopped = {name: describe_group(group) for name, group in stack.find_processes().items()}
    lines: list[str] = []
    if holder and is_launcher(holder) and (launcher := processes.live(holder["pid"])):
        print(f"stopping the launcher (pid {launcher.pid}, running since {when(holder.get('since'))}) …", flush=True)
        launcher.terminate()
        if not _wait_until(lambda: stack.holder() is None, LAUNCHER_STOP_TIMEOUT):
            print(f"the launcher did not stop within {LAUNCHER_STOP_TIMEOUT:.0f} s; killing it", flush=True)
            launcher.kill()
        psutil.wait_procs([launcher], timeout=10)
        lines.append(f"stopped the launcher (pid {launcher.pid})")
    elif holder:
        print(f"the stack is run by pid {holder['pid']} (a test or a benchmark, not `make run`); "
              f"stopping its processes", flush=True)
    stopped.update({name: text for name, text in stack.stop().items() if name not in stopped})
    lines += [f"stopped {name} ({stopped[name]})" for name in ordered(stopped)]
    if not lines:
        print(f"no stack is running from {stack.state}")
        return 0
    print("\n".join(lines))
    return 0


def submit(stack: Stack, proposal_file: Path) -> int:
    """Submit a proposal through the Management API as the agent user and show its steps live."""
    import httpx

    from hms_management.client import ApiError, ManagementClient
    from hms_management.domain.outcome import COMPLETED, OUTCOMES

    if stack.holder() is None:
        raise StackError(f"no stack is running from {stack.state}: `make run` first")
    try:
        proposal = json.loads(proposal_file.read_text())
        password = stack.credentials()["airflow"]["agent"]
    except (OSError, ValueError, KeyError) as err:
        raise StackError(f"cannot read {getattr(err, 'filename', None) or proposal_file}: {err}") from None
    if not isinstance(proposal, dict) or "id" not in proposal:
        raise StackError(f"{proposal_file} is not a proposal: a JSON object with an id is expected")
    if proposal_file == SAMPLE_PROPOSAL:  # a fresh id each time, so the sample can be sent again
        proposal["id"] = f"{proposal['id']}-{int(time.time())}"
    try:
        with ManagementClient(stack.api_url, "agent", password) as hms:
            try:
                answer = hms.submit(proposal)
            except ApiError as err:
                print(f"refused with {err.status}: {err.body}", file=sys.stderr)
                return 1
            print(f"submitted {answer['id']}: {answer['status']}\n  {answer['links']['ui']}")
            shown: dict[str, str] = {}
            while True:
                answer = hms.status(proposal["id"])
                for step in answer.get("steps", []):
                    state = step["state"] or "waiting"
                    if shown.get(step["task_id"]) != state:
                        shown[step["task_id"]] = state
                        tries = f" (try {step['tries']})" if step["tries"] > 1 else ""
                        print(f"  {time.strftime('%H:%M:%S')}  {step['task_id']:28} {state}{tries}")
                if answer["status"] in OUTCOMES:
                    break
                time.sleep(0.5)
    except httpx.TransportError as err:
        raise StackError(f"the stack at {stack.api_url} does not answer ({err}); `make status` shows it") from None
    print(f"{answer['status']}: {answer.get('reason')}")
    return 0 if answer["status"] == COMPLETED else 1


# -- helpers ----------------------------------------------------------------------------------------

def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _port(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise StackError(f"{name}={value!r} is not a port number") from None


def _number(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise StackError(f"{name}={value!r} is not a number") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hms_stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "stop", "status", "submit"])
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE_PROPOSAL, help="proposal JSON (submit)")
    parser.add_argument("--state", type=Path, default=ROOT / ".state", help="state folder (default .state)")
    parser.add_argument("--api-port", type=int, help="Airflow's api-server (default HMS_API_PORT or 8080)")
    parser.add_argument("--backend-port", "--hms-port", dest="backend_port", type=int,
                        help="the HMS backend (default HMS_BACKEND_PORT or 8090)")
    parser.add_argument("--metrics-port", type=int,
                        help="Airflow's own metrics for Prometheus: StatsD on this UDP port, /metrics on this TCP "
                             "port (default HMS_METRICS_PORT; none: Airflow sends no metrics)")
    parser.add_argument("--distributed", action="store_true",
                        help="run: CeleryExecutor with Redis and Celery workers (hms_stack.distributed)")
    parser.add_argument("--redis-port", type=int, help="with --distributed (default HMS_REDIS_PORT or 6379)")
    parser.add_argument("--crash-loop-restarts", type=int,
                        help="restarts of one component allowed within --crash-loop-seconds before the stack "
                             "stops (default HMS_CRASH_LOOP_RESTARTS or 5)")
    parser.add_argument("--crash-loop-seconds", type=float,
                        help="the crash-loop window (default HMS_CRASH_LOOP_SECONDS or 120)")
    return parser.parse_args(argv)


def make_stack(args: argparse.Namespace) -> Stack:
    def given(value, fallback):
        return fallback() if value is None else value

    settings = {
        "state": args.state.resolve(),
        "api_port": given(args.api_port, lambda: _port("HMS_API_PORT", 8080)),
        "hms_port": given(args.backend_port, lambda: _port("HMS_BACKEND_PORT", 8090)),
        "metrics_port": given(args.metrics_port,
                              lambda: _port("HMS_METRICS_PORT", 0) if os.environ.get("HMS_METRICS_PORT") else None),
        "crash_loop_restarts": int(given(args.crash_loop_restarts, lambda: _number("HMS_CRASH_LOOP_RESTARTS", 5))),
        "crash_loop_seconds": given(args.crash_loop_seconds, lambda: _number("HMS_CRASH_LOOP_SECONDS", 120)),
    }
    if settings["crash_loop_restarts"] < 0 or settings["crash_loop_seconds"] <= 0:
        raise StackError("the crash-loop limit needs restarts ≥ 0 and seconds > 0")
    if args.state.exists() and not args.state.is_dir():
        raise StackError(f"{args.state} is not a folder")
    if args.distributed:
        from hms_stack.distributed import DistributedStack

        return DistributedStack(**settings, redis_port=given(args.redis_port, lambda: _port("HMS_REDIS_PORT", 6379)))
    stack = Stack(**settings)
    if args.command in ("submit", "status") and (api_url := status.read(stack).get("api_url")):
        stack.api_port = int(str(api_url).rsplit(":", 1)[1])  # where the running stack listens
    return stack


def main() -> int:
    args = parse_args()
    try:
        stack = make_stack(args)
        if args.command == "submit":
            return submit(stack, args.file)
        return {"run": run, "stop": stop, "status": status.show}[args.command](stack)
    except StackError as err:
        print(err, file=sys.stderr)
        return 1
    except BrokenPipeError:  # `make status | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
