"""Whether the stack may listen, and when it is ready: the two ends of a start.

Before anything starts, each of the stack's TCP ports must be free (`check_ports`), so that a
taken port is refused with one line and nothing to stop. After the start, `ready` means what a
user would check: this stack's own backend and api-server answer on its ports (an answer from
another program on the port never counts), the DAGs are parsed, the scheduler and triggerer
heartbeat and `/management` answers. A part that exits meanwhile fails the start at once, with
the end of its log.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import httpx

from hms_management.airflow_login import ApiError
from hms_stack import processes
from hms_stack.console import PortBusy, StackError, port_advice, port_user, tail

if TYPE_CHECKING:
    from hms_stack.stack import Stack

READY_TIMEOUT = 180.0


def check_ports(ports: dict[str, int]) -> None:
    """Raise PortBusy, naming the port and the program on it, if the stack cannot listen."""
    for component, port in ports.items():
        if not 0 < port < 65536:
            raise PortBusy(f"port {port}, for {port_user(component)}, is not a TCP port (1–65535)")
        if len(same := [port_user(name) for name, other in ports.items() if other == port]) > 1:
            raise PortBusy(f"{' and '.join(same)} are both set to port {port}; give each its own")
        if processes.port_in_use(port):
            holders = processes.listeners(port) or [None]
            raise PortBusy(f"port {port}, for {port_user(component)}, is in use by "
                           f"{processes.describe(holders[0])}; {port_advice(component, port)}")


def wait_ready(stack: Stack) -> None:
    """Return once the stack is ready; StackError when a part exits or READY_TIMEOUT runs out."""
    deadline = time.monotonic() + READY_TIMEOUT
    checks = {
        "hms-backend": (stack.hms_port, f"{stack.hms_url}/health"),
        "api-server": (stack.api_port, f"{stack.api_url}/api/v2/monitor/health"),
    }
    for component, (port, url) in checks.items():
        while not serves(stack, component, port, url):
            check_alive(stack)
            if time.monotonic() > deadline:
                raise StackError(f"the {component} did not answer at {url} within {READY_TIMEOUT:.0f} s; "
                                 f"its log: {stack.log_file(component)}")
            time.sleep(0.2)
    # The DAG must be parsed and the scheduler and triggerer must heartbeat before a trigger
    # is worth sending.
    while not dags_ready(stack):
        check_alive(stack)
        if time.monotonic() > deadline:
            raise StackError(f"the DAGs were not parsed in time; see {stack.log_file('dag-processor')}")
        time.sleep(0.3)


def serves(stack: Stack, component: str, port: int, url: str) -> bool:
    """Whether this stack's own component answers at url: an answer from another program on
    the port (an earlier stack's, anything) never counts, and fails the start at once."""
    if not _answers(url):
        return False
    holders = processes.listeners(port)
    if any(pid is not None and processes.belongs(pid, stack.state, component) for pid in holders):
        return True
    if not holders:  # it answered and closed since: look again
        return False
    raise PortBusy(f"port {port}, for {port_user(component)}, is answered by {processes.describe(holders[0])}, "
                   f"not by this stack; {port_advice(component, port)}")


def dags_ready(stack: Stack) -> bool:
    """Whether the scheduler and triggerer heartbeat, the DAGs the stack waits for are parsed and,
    where it serves it, /management answers."""
    from hms_management.domain.proposal import DAG_ID

    try:
        health = json.loads(urllib.request.urlopen(f"{stack.api_url}/api/v2/monitor/health", timeout=5).read())
    except (OSError, ValueError):
        return False
    healthy = all(health.get(part, {}).get("status") == "healthy" for part in ("scheduler", "triggerer"))
    if not healthy:
        return False
    # The /management app is imported at its first request: make that request part of start-up.
    try:
        token = stack.token()
    except httpx.TransportError:  # health answered, the login did not (yet): a busy or restarting worker
        return False
    except ApiError as err:  # a worker still starting may answer 5xx; a refused password is the stack's fault
        if err.status < 500:
            raise
        return False
    dag_ids = stack.ready_dag_ids or (DAG_ID,)
    if not all(_api_status(stack, f"/api/v2/dags/{dag_id}", token) == 200 for dag_id in dag_ids):
        return False
    return not stack.serves_management_api or _api_status(stack, "/management/openapi.json", token) == 200


def check_alive(stack: Stack) -> None:
    """Raise StackError, with the end of its log, if a process the stack started has exited."""
    for name, proc in stack.processes.items():
        if proc.poll() is not None:
            log = stack.log_file(name)
            raise StackError(f"the {name} {processes.how_it_ended(proc.returncode)} while starting; "
                             f"its log: {log}\n{tail(log)}")


def _api_status(stack: Stack, path: str, token: str) -> int:
    request = urllib.request.Request(f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except (OSError, ValueError):
        return False
