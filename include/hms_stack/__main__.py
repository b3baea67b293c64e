"""`python -m hms_stack run|stop|status`: the local stack behind `make run` and `make stop`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from hms_stack.stack import ROOT, Stack

SAMPLE_PROPOSAL = ROOT / "config" / "sample_proposal.json"


def run(stack: Stack) -> int:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        creds = stack.state / "credentials.json"
        print(
            f"\nHMS Management Layer is running.\n"
            f"  Airflow UI and REST API  {stack.api_url}   (user admin; agent and analyst too)\n"
            f"  HMS reference backend    {stack.hms_url}\n"
            f"  credentials              {creds}\n"
            f"  logs                     {stack.log_dir}\n\n"
            f"Submit a sample proposal from another terminal:\n"
            f"  make submit\n\n"
            f"Ctrl-C stops everything (or `make stop` from another terminal).\n",
            flush=True,
        )
        exited = stack.wait()
        print(f"{exited} exited; stopping the stack (see {stack.log_dir / (exited + '.log')})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
        print("stopped: no process left behind.", flush=True)


def stop(stack: Stack) -> int:
    info_file = stack.state / "stack.json"
    if not info_file.exists():
        print("no stack is running from", stack.state)
        return 0
    launcher = json.loads(info_file.read_text()).get("launcher_pid")
    if launcher and _alive(launcher) and launcher != os.getpid():
        os.kill(launcher, signal.SIGTERM)  # the launcher stops its own stack, then exits
        deadline = time.monotonic() + 60
        while _alive(launcher) and time.monotonic() < deadline:
            time.sleep(0.2)
    stack.stop()  # whatever the launcher could not stop (or when it was killed)
    print("stopped.")
    return 0


def status(stack: Stack) -> int:
    info_file = stack.state / "stack.json"
    if not info_file.exists():
        print("not running")
        return 1
    info = json.loads(info_file.read_text())
    for name, pid in info["pids"].items():
        print(f"{name:14} pid {pid:<8} {'running' if _alive(pid) else 'NOT RUNNING'}")
    print(f"UI {info['api_url']}  backend {info['hms_url']}")
    return 0


def submit(stack: Stack, proposal_file: Path) -> int:
    """Submit a proposal through the Management API as the agent user and show its steps live."""
    from hms_management.client import ApiError, ManagementClient
    from hms_management.domain.outcome import COMPLETED, OUTCOMES

    proposal = json.loads(proposal_file.read_text())
    if proposal_file == SAMPLE_PROPOSAL:  # a fresh id each time, so the sample can be sent again
        proposal["id"] = f"{proposal['id']}-{int(time.time())}"
    with ManagementClient(stack.api_url, "agent", stack.credentials()["airflow"]["agent"]) as hms:
        try:
            status = hms.submit(proposal)
        except ApiError as err:
            print(f"refused with {err.status}: {err.body}", file=sys.stderr)
            return 1
        print(f"submitted {status['id']}: {status['status']}\n  {status['links']['ui']}")
        shown: dict[str, str] = {}
        while True:
            status = hms.status(proposal["id"])
            for step in status.get("steps", []):
                state = step["state"] or "waiting"
                if shown.get(step["task_id"]) != state:
                    shown[step["task_id"]] = state
                    tries = f" (try {step['tries']})" if step["tries"] > 1 else ""
                    print(f"  {time.strftime('%H:%M:%S')}  {step['task_id']:28} {state}{tries}")
            if status["status"] in OUTCOMES:
                break
            time.sleep(0.5)
    print(f"{status['status']}: {status.get('reason')}")
    return 0 if status["status"] == COMPLETED else 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hms_stack", description=__doc__)
    parser.add_argument("command", choices=["run", "stop", "status", "submit"])
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE_PROPOSAL, help="proposal JSON (submit)")
    parser.add_argument("--state", type=Path, default=ROOT / ".state", help="state folder (default .state)")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--hms-port", type=int, default=8090)
    parser.add_argument("--distributed", action="store_true",
                        help="run: CeleryExecutor with Redis and Celery workers (hms_stack.distributed)")
    parser.add_argument("--redis-port", type=int, default=6379, help="with --distributed (default 6379)")
    args = parser.parse_args()
    stack = Stack(state=args.state.resolve(), api_port=args.api_port, hms_port=args.hms_port)
    if args.distributed:
        from hms_stack.distributed import DistributedStack

        stack = DistributedStack(state=stack.state, api_port=args.api_port, hms_port=args.hms_port,
                                 redis_port=args.redis_port)
    if args.command == "submit" and (stack.state / "stack.json").exists():
        stack.api_port = int(json.loads((stack.state / "stack.json").read_text())["api_url"].rsplit(":", 1)[1])
    if args.command == "submit":
        return submit(stack, args.file)
    return {"run": run, "stop": stop, "status": status}[args.command](stack)


if __name__ == "__main__":
    sys.exit(main())
