"""What the benchmark measures with: Airflow's own run records, the stack's CPU and memory, and
the HMS backend's own call counters.

Durations come from the records Airflow keeps (a run's queued_at, start_date, end_date), never
from the benchmark's own polling, which only decides when to look. CPU and memory cover every
process of the stack: PostgreSQL, the HMS backend, each Airflow component and every task process.
Requests to the HMS services are counted by the backend as it receives them (`GET /stats`).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from hms_bench.routes import TASK_INSTANCE_ID, execution_route
from hms_management.client import TERMINAL_STATES, AirflowClient
from hms_stack.stack import Stack, process_tree

PAGE = 100  # the REST API's largest page


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return (moment(end) - moment(start)).total_seconds()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(durations: list[float]) -> dict[str, Any]:
    return {"durations": [round(d, 3) for d in durations], "p50": round(statistics.median(durations), 3),
            "p95": round(percentile(durations, 0.95), 3), "mean": round(statistics.fmean(durations), 3)}


# -- Airflow's records ----------------------------------------------------------------------------

def runs(client: AirflowClient, dag_id: str, tag: str) -> list[dict[str, Any]]:
    """Every run of `dag_id` whose id contains `tag` (a scenario's unique mark), as Airflow recorded it."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                              params={"limit": PAGE, "offset": offset, "order_by": "id",
                                      "run_id_pattern": tag}).json()["dag_runs"]
        found += [run for run in page if tag in run["dag_run_id"]]
        offset += len(page)
        if len(page) < PAGE:
            return found


def count_runs(client: AirflowClient, dag_id: str, tag: str, states: tuple[str, ...] = ()) -> int:
    params: dict[str, Any] = {"limit": 1, "run_id_pattern": tag}
    if states:
        params["state"] = list(states)
    return client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params).json()["total_entries"]


def count_task_instances(client: AirflowClient, dag_id: str, states: tuple[str, ...], task_id: str | None = None,
                         tag: str | None = None) -> int:
    params: dict[str, Any] = {"limit": 1, "state": list(states)}
    if task_id:
        params["task_id"] = task_id
    if tag:
        params["run_id_pattern"] = tag
    return client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", params=params).json()[
        "total_entries"]


def trigger_all(client: AirflowClient, dag_id: str, confs: dict[str, dict[str, Any]], threads: int = 4) -> None:
    """Create one run per (run id, conf), a few requests at a time, as agents would."""
    client.token()  # one token for all threads

    def trigger(item: tuple[str, dict[str, Any]]) -> None:
        run_id, conf = item
        response = client.request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                  json={"dag_run_id": run_id, "logical_date": None, "conf": conf})
        if response.status_code != 200:
            raise RuntimeError(f"triggering {run_id} answered {response.status_code}: {response.text[:300]}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(trigger, confs.items()))


def run_to_end(client: AirflowClient, dag_id: str, run_id: str, conf: dict[str, Any], *, poll: float) -> None:
    """Trigger one run and return once it is terminal (the caller reads its times from the records)."""
    trigger_all(client, dag_id, {run_id: conf}, threads=1)
    while client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"] not in TERMINAL_STATES:
        time.sleep(poll)


def wait_for_run(client: AirflowClient, dag_id: str, run_id: str, *, timeout: float, poll: float = 0.2
                 ) -> dict[str, Any]:
    """The run's record once it is terminal."""
    deadline = time.monotonic() + timeout
    while (record := client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json())["state"] \
            not in TERMINAL_STATES:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run_id} was still {record['state']} after {timeout:.0f} s")
        time.sleep(poll)
    return record


def wait_until_none(client: AirflowClient, dag_id: str, tag: str, states: tuple[str, ...], *,
                    timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (left := count_runs(client, dag_id, tag, states)) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} {dag_id} runs still {'/'.join(states)} after {timeout:.0f} s")
        time.sleep(1.0)


def wait_until_terminal(client: AirflowClient, dag_id: str, tag: str, total: int, *, timeout: float,
                        progress=print) -> None:
    deadline = time.monotonic() + timeout
    said = time.monotonic()
    while (done := count_runs(client, dag_id, tag, TERMINAL_STATES)) < total:
        if time.monotonic() - said > 15:
            progress(f"    {done}/{total} terminal")
            said = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {total} {dag_id} runs were terminal after {timeout:.0f} s")
        time.sleep(1.0)


def latencies(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run's own queued_at → end_date: what one proposal waited, queue included."""
    return summary([seconds_between(r["queued_at"], r["end_date"]) for r in records])


# -- the HMS backend's counters -------------------------------------------------------------------

def hms_calls(hms_url: str) -> dict[str, int]:
    """Calls each route of the HMS backend has received so far (`GET /stats`, no token needed)."""
    routes = httpx.get(f"{hms_url}/stats", timeout=30).raise_for_status().json()["routes"]
    return {route: counters["calls"] for route, counters in routes.items()}


@dataclass
class HmsCalls:
    """Requests the HMS backend received between start() and stop(), per route and per second.
    The benchmark's own reads (`GET /stats`, `GET /health`) are left out."""

    hms_url: str
    seconds: float = 0.0
    by_route: dict[str, int] = field(default_factory=dict)

    OWN = ("GET /stats", "GET /health")

    def start(self) -> HmsCalls:
        self._before, self._t0 = hms_calls(self.hms_url), time.monotonic()
        return self

    def stop(self) -> HmsCalls:
        after = hms_calls(self.hms_url)
        self.seconds = time.monotonic() - self._t0
        self.by_route = {route: calls - self._before.get(route, 0) for route, calls in after.items()
                         if route not in self.OWN and calls - self._before.get(route, 0)}
        return self

    def per_s(self, route: str | None = None) -> float:
        calls = self.by_route.get(route, 0) if route else sum(self.by_route.values())
        return round(calls / self.seconds, 3) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "calls": sum(self.by_route.values()), "per_s": self.per_s(),
                "by_route": self.by_route}


# Task processes talk to the api-server's Execution API; its access log names each request.
_EXECUTION_ACCESS = re.compile(r"http\.access.* method=(\S+) path=(/execution/\S+)")


@dataclass
class ExecutionApiCalls:
    """Execution-API requests the api-server served between start() and stop(), by route, read
    from its own access log (the log file the stack writes, `http.access` lines)."""

    log: Path
    by_route: dict[str, int] = field(default_factory=dict)

    def start(self) -> ExecutionApiCalls:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        return self

    def stop(self, task_instances: set[str] | None = None) -> ExecutionApiCalls:
        """Count what was served since start(); with `task_instances` (their ids), a request about
        another task instance (another DAG's task meanwhile) is left out. Requests naming no task
        instance (a connection, a variable) are counted whoever made them."""
        with self.log.open(encoding="utf-8", errors="replace") as log:
            log.seek(self._offset)
            counted: dict[str, int] = {}
            for line in log:
                if found := _EXECUTION_ACCESS.search(line):
                    path = found.group(2)
                    named = TASK_INSTANCE_ID.search(path)
                    if task_instances is not None and named and named.group(0) not in task_instances:
                        continue
                    route = execution_route(found.group(1), path)
                    counted[route] = counted.get(route, 0) + 1
        self.by_route = dict(sorted(counted.items(), key=lambda item: -item[1]))
        return self

    def per(self, n: int) -> dict[str, Any]:
        """Calls per proposal, in all and by route, for n proposals."""
        return {"calls_per_proposal": round(sum(self.by_route.values()) / n, 2) if n else None,
                "by_route_per_proposal": {route: round(calls / n, 2) for route, calls in self.by_route.items()}}


# -- the stack's processes ------------------------------------------------------------------------

def stack_roots(stack: Stack) -> dict[str, int]:
    """The stack's top processes by name: those it started, and PostgreSQL (which daemonizes itself)."""
    roots = {name: proc.pid for name, proc in stack.processes.items()}
    postmaster = stack.pgdata / "postmaster.pid"
    if postmaster.exists():
        roots["postgres"] = int(postmaster.read_text().split()[0])
    return roots


def _cpu(proc: psutil.Process, *, reaped: bool = True) -> float:
    try:
        t = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system + (t.children_user + t.children_system if reaped else 0.0)


def cpu_by_component(roots: dict[str, int]) -> dict[str, float]:
    """CPU time used so far by each part of the stack: its live processes, plus the exited ones
    their parents reaped. The scheduler's own loop is told apart from the task processes the
    LocalExecutor forks below it."""
    used = {name: sum(_cpu(proc) for proc in process_tree(pid)) for name, pid in roots.items()}
    if "scheduler" in roots:
        loop = _cpu(psutil.Process(roots["scheduler"]), reaped=False)
        used["task processes"] = used["scheduler"] - loop
        used["scheduler"] = loop
    return used


def pss_by_component(roots: dict[str, int]) -> dict[str, float]:
    """Memory of each part of the stack in MB: the sum of proportional set sizes, so pages shared
    by forked processes count once."""
    used = {}
    for name, pid in roots.items():
        total_kb = 0
        for proc in process_tree(pid):
            try:
                for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
            except OSError:
                continue
        used[name] = round(total_kb / 1024, 1)
    return used


def pss_mb(roots: dict[str, int]) -> float:
    return sum(pss_by_component(roots).values())


@dataclass
class Resources:
    """CPU used (per component) and peak memory of the stack between start() and stop()."""

    roots: dict[str, int]
    interval: float = 2.0
    cpu_s: float = 0.0
    cpu_split: dict[str, float] = field(default_factory=dict)
    peak_mb: float = 0.0
    start_mb: float = 0.0

    def start(self) -> Resources:
        self._stop = threading.Event()
        self._cpu0 = cpu_by_component(self.roots)
        self.start_mb = self.peak_mb = pss_mb(self.roots)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, pss_mb(self.roots))

    def stop(self) -> Resources:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, pss_mb(self.roots))
        cpu1 = cpu_by_component(self.roots)
        self.cpu_split = {name: round(cpu1[name] - self._cpu0.get(name, 0.0), 1) for name in cpu1}
        self.cpu_s = sum(self.cpu_split.values())
        return self
