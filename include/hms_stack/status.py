"""What a running stack says about itself: `<state>/stack.json`, and `make status`, which shows it.

The lock says who runs a folder's stack (hms_stack.lock); stack.json says what it runs: its
addresses and ports, and each component's pid, start time and restarts, rewritten whenever one
starts or is restarted. `make status` and `make submit` read it from another terminal; the
processes themselves are looked up live (hms_stack.processes), so a lost or stale stack.json
never hides one.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import psutil

from hms_stack.console import duration, ordered, when
from hms_stack.lock import is_launcher
from hms_stack.postgres import POSTGRES

if TYPE_CHECKING:
    from hms_stack.stack import Stack


def write(stack: Stack) -> None:
    """stack.json: what `make status` and `make submit` read (the lock says who runs it)."""
    components = {name: {"pid": stack.pid(name), "started": stack.started_at.get(name),
                         "restarts": stack.supervisor.restarts.get(name, 0)}
                  for name in stack.supervised() if stack.pid(name) is not None}
    info = {"api_url": stack.api_url, "hms_url": stack.hms_url, "launcher_pid": os.getpid(),
            "ports": stack.ports(), "components": components}
    tmp = stack.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(stack.state_file)


def read(stack: Stack) -> dict[str, Any]:
    """stack.json as the running stack wrote it; {} when missing or unreadable."""
    try:
        info = json.loads(stack.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def show(stack: Stack) -> int:
    """`make status`: who runs the folder's stack, and each component's pid, uptime, restarts,
    processes and ports; 1 when no stack runs (or only what a killed launcher left does)."""
    holder = stack.holder()
    found = stack.find_processes()
    if holder is None and not found:
        print(f"no stack is running from {stack.state}")
        return 1
    info = read(stack)
    if holder and is_launcher(holder):
        print(f"running from {stack.state}: launcher pid {holder['pid']} since {when(holder.get('since'))}")
    elif holder:
        print(f"running from {stack.state}: run by pid {holder['pid']} (a test or a benchmark) "
              f"since {when(holder.get('since'))}")
    else:
        print(f"no launcher runs for {stack.state}, but processes of its stack are left: `make stop` ends them")
    if info.get("api_url"):
        print(f"UI {info['api_url']}   HMS backend {info.get('hms_url', '?')}")
    listening: dict[int, list[str]] = {}
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.pid:
                listening.setdefault(conn.pid, []).append(f"{conn.laddr.ip}:{conn.laddr.port}")
    except psutil.AccessDenied:
        pass
    components = info.get("components", {}) if isinstance(info.get("components"), dict) else {}
    print(f"{'component':14} {'pid':>8} {'uptime':>9} {'restarts':>8} {'processes':>9}  ports")
    for name in ordered({**components, **found}):
        group = found.get(name, [])
        recorded = components.get(name, {}) if isinstance(components.get(name), dict) else {}
        restarts = recorded.get("restarts", "?")
        if not group:
            print(f"{name:14} {'-':>8} {'DOWN':>9} {restarts:>8} {0:>9}")
            continue
        root = next((p for p in group if p.pid == recorded.get("pid")), None)
        if root is None and recorded:  # what a dead process left behind
            print(f"{name:14} {'dead':>8} {'-':>9} {restarts:>8} {len(group):>9}  its orphans: `make stop` ends them")
            continue
        root = root or group[0]
        ports = sorted({port for proc in group for port in listening.get(proc.pid, [])})
        if name == POSTGRES:
            ports = [f"socket in {stack.pgdata}"]
        print(f"{name:14} {root.pid:>8} {duration(time.time() - root.create_time()):>9} {restarts:>8} "
              f"{len(group):>9}  {', '.join(ports)}")
    return 0 if holder else 1
