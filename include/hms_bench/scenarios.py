"""The benchmark's scenarios, each against a running stack; each returns its part of results.json.

Every scenario marks its runs with a unique tag (in the run id), so it reads back exactly its own
runs from Airflow's records, whatever else the stack holds.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hms_bench import measure
from hms_management.client import TERMINAL_STATES, AirflowClient
from hms_management.domain.proposal import DAG_ID, run_id_for
from hms_management.domain.services import DECISION_FEED
from hms_management.domain.steps import RECORD_AUDIT
from hms_management.sweep.plan import SWEEP_DAG_ID
from hms_stack.probe import StackProbe
from hms_stack.stack import Stack

RULE = {"optimise": "FOIA backlog", "max_days": 20}
# Several targets: the scopes and the groups (config/officer_groups.json) a proposal of that shape names.
SCOPES = ("foia/dhs", "foia/doj", "foia/state")
GROUPS = ("foia-officers", "privacy-office", "records-management", "permits-office")
# Governance sends high-impact proposals to a human reviewer (include/hms_backend/governance.py).
IN_REVIEW = {"impact": "high"}
# Dated ahead of the queue of runs waiting to start by the admission check (domain/priority.py).
HIGH_PRIORITY = {"priority": "high"}


@dataclass(frozen=True)
class Sizes:
    latency: int = 30
    burst: int = 500
    # The naive baseline runs ~40 proposals a minute here: 500 would take the whole benchmark's
    # 20-minute budget on their own. Its rate is measured on 100 (docs/performance.md).
    naive_burst: int = 100
    # The high-priority proposal goes into a burst of `burst` once this many of it have ended.
    priority_after: int = 50
    parked: int = 1000
    ordinary: int = 200
    # Seconds of quiet with the parked proposals and nothing else, counting the HMS requests.
    idle: int = 60
    backlog: int = 5000
    # Proposals in the burst under a binding policy budget (design.md §10: 200 at 5 a second).
    budget: int = 200


# The smoke run of `make test`: every scenario once, each as small as still says something.
QUICK = Sizes(latency=3, burst=12, naive_burst=6, priority_after=4, parked=10, ordinary=6, idle=5, backlog=30,
              budget=12)


def tag(scenario: str) -> str:
    return f"bench-{scenario}-{uuid.uuid4().hex[:6]}"


def proposal(proposal_id: str, *, several: bool = False, **extra: Any) -> dict[str, Any]:
    """A proposal as agents send it: one rule (the seed's shape), or `several` targets: three policy
    scopes with a rule each and four officer groups to tell (design.md §11)."""
    if several:
        return {"id": proposal_id, "title": "Rebalance the FOIA queues", **extra,
                "targets": [{"scope": scope, "rule": {**RULE, "max_days": 10 + n}} for n, scope in enumerate(SCOPES)],
                "notify": list(GROUPS)}
    return {"id": proposal_id, "rule": RULE, "title": "Optimise the FOIA backlog", **extra}


def run_id(dag_id: str, proposal_id: str) -> str:
    """proposal_orchestration names its runs after the proposal; the benchmark DAGs take the id as is."""
    return run_id_for(proposal_id) if dag_id == DAG_ID else proposal_id


# -- latency ----------------------------------------------------------------------------------------

def latency(client: AirflowClient, dag_id: str, n: int, progress=print, *, api_log: Path | None = None,
            several: bool = False) -> dict[str, Any]:
    """n proposals one after another; trigger → terminal from each run's queued_at and end_date.
    With the api-server's log: the Execution-API calls each proposal made, by route."""
    mark = tag(f"latency-{dag_id}{'-several' if several else ''}")
    calls = measure.ExecutionApiCalls(api_log).start() if api_log else None
    for i in range(n):
        proposal_id = f"{mark}-{i:03d}"
        measure.run_to_end(client, dag_id, run_id(dag_id, proposal_id), proposal(proposal_id, several=several),
                           poll=0.1)
    time.sleep(1.0 if calls else 0)  # the last task's last report reaches the log
    records = measure.runs(client, dag_id, mark)
    execution_api = calls.stop(task_instance_ids(client, dag_id, records)).per(n) if calls else {}
    failed = [r["dag_run_id"] for r in records if r["state"] != "success"]
    if failed:
        raise RuntimeError(f"{len(failed)} {dag_id} runs did not succeed: {failed[:3]}")
    durations = [measure.seconds_between(r["queued_at"], r["end_date"]) for r in records]
    progress(f"    p50 {measure.summary(durations)['p50']:.2f} s over {n}"
             + (f"; Execution-API calls per proposal {execution_api['calls_per_proposal']}" if execution_api else ""))
    return {"label": dag_id, **measure.summary(durations), **({"execution_api": execution_api} if calls else {})}


def task_instance_ids(client: AirflowClient, dag_id: str, records: list[dict[str, Any]]) -> set[str]:
    """The ids of every task instance of these runs."""
    return {ti["id"] for record in records
            for ti in client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{record['dag_run_id']}/taskInstances",
                                     params={"limit": 100}).raise_for_status().json()["task_instances"]}


def direct(hms_url: str, hms_token: str, n: int, progress=print) -> dict[str, Any]:
    """The no-orchestrator floor: the workflow's HTTP calls made one after another in one process,
    as the original synchronous Express service made them."""
    durations = []
    mark = tag("direct")
    with httpx.Client(base_url=hms_url, headers={"Authorization": f"Bearer {hms_token}"}, timeout=10) as hms:
        for i in range(n):
            body = proposal(f"{mark}-{i:03d}")
            started = time.perf_counter()
            decision = hms.post("/gov/validate", json={"proposal": body}).raise_for_status().json()
            if decision["status"] != "approved":
                raise RuntimeError(f"governance did not approve {body['id']}: {decision}")
            policy = hms.post("/svc/policy", json=body).raise_for_status().json()
            hms.post("/notifications", json={"message": f"Policy #{body['id']} live", "proposalId": body["id"],
                                             "policy": policy}).raise_for_status()
            hms.post("/audit/log", json={"proposalId": body["id"], "action": "proposal.orchestrated",
                                         "outcome": "completed"}).raise_for_status()
            durations.append(time.perf_counter() - started)
    progress(f"    p50 {measure.summary(durations)['p50'] * 1000:.1f} ms over {n}")
    return {"label": "direct HTTP calls (no orchestrator)", **measure.summary(durations)}


def warm_up(client: AirflowClient, n: int = 3) -> None:
    """A few proposals one after another on a fresh stack, so that a measure starts as warm as it
    would after the latency scenario."""
    mark = tag("warm-up")
    for i in range(n):
        proposal_id = f"{mark}-{i}"
        measure.run_to_end(client, DAG_ID, run_id_for(proposal_id), proposal(proposal_id), poll=0.2)


# -- burst ------------------------------------------------------------------------------------------

def burst(stack: Stack, client: AirflowClient, dag_id: str, n: int, *, timeout: float,
          progress=print, several: bool = False) -> dict[str, Any]:
    """n proposals at once: throughput until all are terminal, first completion, each proposal's
    latency, CPU per proposal, peak memory."""
    mark = tag(f"burst-{dag_id}{'-several' if several else ''}")
    ids = [f"{mark}-{i:04d}" for i in range(n)]
    resources = measure.Resources(measure.stack_roots(stack)).start()
    measure.trigger_all(client, dag_id, {run_id(dag_id, pid): proposal(pid, several=several) for pid in ids})
    progress(f"    {n} triggered")
    measure.wait_until_terminal(client, dag_id, mark, n, timeout=timeout, progress=progress)
    resources.stop()
    result = throughput(measure.runs(client, dag_id, mark))
    progress(f"    first completion {result['first_completion_s']:.1f} s, {result['per_min']:.1f}/min, "
             f"latency p50 {result['latency']['p50']:.1f} s, p95 {result['latency']['p95']:.1f} s")
    return {"label": dag_id, **result,
            "cpu_s_per_proposal": round(resources.cpu_s / n, 3), "cpu_s_by_component": resources.cpu_split,
            "peak_mem_mb": round(resources.peak_mb, 1), "start_mem_mb": round(resources.start_mb, 1)}


def throughput(records: list[dict[str, Any]]) -> dict[str, Any]:
    """From Airflow's records: first queued → last terminal, first queued → first terminal (the
    first completion), each run's own queued_at → end_date, and when each run ended."""
    first = min(r["queued_at"] for r in records)
    ends = sorted(measure.seconds_between(first, r["end_date"]) for r in records)
    states: dict[str, int] = {}
    for r in records:
        states[r["state"]] = states.get(r["state"], 0) + 1
    latency = measure.latencies(records)
    return {"wall_s": round(ends[-1], 2), "per_min": round(len(records) / ends[-1] * 60, 1),
            "first_completion_s": round(ends[0], 2),
            "latency": {k: latency[k] for k in ("p50", "p95", "mean")}, "states": states,
            "failed": len(records) - states.get("success", 0), "completions": [round(e, 2) for e in ends]}


# -- a high-priority proposal into a burst --------------------------------------------------------

def priority(client: AirflowClient, sizes: Sizes, *, timeout: float, progress=print) -> dict[str, Any]:
    """A burst of `sizes.burst`; once `sizes.priority_after` of it have ended, one `priority: high`
    proposal, submitted through the REST API like any agent's. Its queued_at → end_date is the
    measure. Then the burst runs still waiting are deleted (the burst scenario measures a whole
    burst) and those at work are let finish, so the next scenario starts on a quiet stack."""
    mark = tag("priority")
    ids = [f"{mark}-{i:04d}" for i in range(sizes.burst)]
    measure.trigger_all(client, DAG_ID, {run_id_for(pid): proposal(pid) for pid in ids})
    progress(f"    {len(ids)} triggered; waiting for {sizes.priority_after} to end")
    deadline = time.monotonic() + timeout
    while (ended := measure.count_runs(client, DAG_ID, mark, TERMINAL_STATES)) < sizes.priority_after:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {ended} of the burst ended in {timeout:.0f} s")
        time.sleep(0.5)
    waiting = measure.count_runs(client, DAG_ID, mark, ("queued",))
    urgent = f"{mark}-high"
    measure.trigger_all(client, DAG_ID, {run_id_for(urgent): proposal(urgent, **HIGH_PRIORITY)}, threads=1)
    record = measure.wait_for_run(client, DAG_ID, run_id_for(urgent), timeout=timeout)
    ended_meanwhile = measure.count_runs(client, DAG_ID, mark, TERMINAL_STATES) - 1 - ended
    _release(client, mark, states=("queued",))
    measure.wait_until_none(client, DAG_ID, mark, ("running",), timeout=timeout)
    seconds = measure.seconds_between(record["queued_at"], record["end_date"])
    progress(f"    the high-priority proposal: {seconds:.1f} s, ahead of {waiting} queued")
    return {"burst": len(ids), "ended_before": ended, "queued_ahead": waiting, "state": record["state"],
            "seconds": round(seconds, 2),
            "queued_s": round(measure.seconds_between(record["queued_at"], record["start_date"]), 2),
            "burst_ended_meanwhile": ended_meanwhile}


# -- parked -----------------------------------------------------------------------------------------

def parked(stack: Stack, client: StackProbe, sizes: Sizes, reference: dict[str, Any] | None, *, timeout: float,
           progress=print) -> dict[str, Any]:
    """Proposals held in governance review (parked: their runs end), a quiet spell with them and
    nothing else, then ordinary proposals beside them; the HMS requests counted in both spells.

    The ordinary proposals' throughput is set against the burst's (`reference`) over the same
    number of proposals: the burst's first `sizes.ordinary` completions. A whole burst of 500
    spreads its fixed start (first completion) over more proposals than 200 do, which alone would
    make the ordinary ones look slower."""
    mark = tag("parked")
    roots = measure.stack_roots(stack)
    before = measure.pss_by_component(roots)
    ids = [f"{mark}-{i:04d}" for i in range(sizes.parked)]
    resources = measure.Resources(roots).start()
    measure.trigger_all(client, DAG_ID, {run_id_for(pid): proposal(pid, **IN_REVIEW) for pid in ids})
    progress(f"    {len(ids)} triggered")
    deadline = time.monotonic() + timeout
    said = time.monotonic()
    while (waiting := parked_count(client, mark)) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {waiting} of {len(ids)} proposals reached review in {timeout:.0f} s")
        if time.monotonic() - said > 15:
            progress(f"    {waiting}/{len(ids)} parked")
            said = time.monotonic()
        time.sleep(2)
    resources.stop()
    # From Airflow's records: the first parked run queued → the last parked run ended.
    records = measure.runs(client, DAG_ID, mark)
    parking_s = max(measure.seconds_between(min(r["queued_at"] for r in records), r["end_date"]) for r in records)
    # Let the last task processes exit before counting what the parked proposals hold.
    time.sleep(20)
    held = measure.count_task_instances(client, DAG_ID, ("running", "queued", "scheduled"), tag=mark)
    deferred = measure.count_task_instances(client, DAG_ID, ("deferred",), tag=mark)
    gate_pool = client.pool("hms_governance")
    after = measure.pss_by_component(roots)
    extra = {name: round(after[name] - before.get(name, 0.0), 1) for name in after}
    progress(f"    {len(ids)} parked in {parking_s:.0f} s; slots held {held}, triggers {deferred}; "
             f"+{sum(extra.values()):.0f} MB {extra}")

    progress(f"    {sizes.idle} s with the {len(ids)} parked and nothing else")
    quiet, quiet_cpu = measure.HmsCalls(stack.hms_url).start(), measure.Resources(roots).start()
    time.sleep(sizes.idle)
    quiet.stop()
    quiet_cpu.stop()
    progress(f"    HMS requests: {quiet.per_s():.2f}/s {quiet.by_route}; CPU-s {quiet_cpu.cpu_split}")

    beside = measure.HmsCalls(stack.hms_url).start()
    ordinary = burst(stack, client, DAG_ID, sizes.ordinary, timeout=timeout, progress=progress)
    beside.stop()
    still_parked = parked_count(client, mark)
    _release(client, mark)
    return {"parked": len(ids), "ordinary": sizes.ordinary, "slots_held": held, "triggers_held": deferred,
            "gate_pool": {k: gate_pool.get(k) for k in ("running_slots", "queued_slots", "deferred_slots")},
            "gate_states": {"parked": still_parked},
            "extra_mem_mb": round(sum(extra.values()), 1), "extra_mem_mb_by_component": extra,
            "parking_s": round(parking_s, 1), "parking_per_min": round(len(ids) / parking_s * 60, 1),
            "parking_cpu_s_per_proposal": round(resources.cpu_s / len(ids), 3),
            "parking_cpu_s_by_component": resources.cpu_split,
            "hms_per_s_idle": quiet.per_s(), "hms_calls_idle": quiet.as_dict(),
            "idle_cpu_s_by_component": quiet_cpu.cpu_split, "idle_seconds": round(quiet.seconds, 1),
            "hms_per_s_beside": beside.per_s(), "feed_per_s_beside": beside.per_s(f"GET {DECISION_FEED}"),
            "hms_calls_beside": beside.as_dict(),
            "per_min": ordinary["per_min"], "first_completion_s": ordinary["first_completion_s"],
            "failed": ordinary["failed"],
            **relative_throughput(ordinary, reference)}


def relative_throughput(ordinary: dict[str, Any], burst: dict[str, Any] | None) -> dict[str, Any]:
    """The ordinary proposals' rate against the burst's, over as many proposals (and against the
    whole burst, as the previous design's figure was computed)."""
    completions = (burst or {}).get("completions") or []
    n = len(ordinary["completions"])
    if len(completions) < n or not completions[n - 1]:
        return {"burst_per_min_same_n": None, "vs_burst": None, "vs_whole_burst": None}
    same_n = n / completions[n - 1] * 60
    return {"burst_per_min_same_n": round(same_n, 1), "vs_burst": round(ordinary["per_min"] / same_n, 3),
            "vs_whole_burst": round(ordinary["per_min"] / burst["per_min"], 3)}


def parked_count(client: AirflowClient, mark: str) -> int:
    """Proposals parked in review: their run ended with every step after the gate skipped."""
    return measure.count_task_instances(client, DAG_ID, ("skipped",), RECORD_AUDIT, mark)


def _release(client: AirflowClient, mark: str, states: tuple[str, ...] = ()) -> None:
    """Delete the scenario's runs (those in `states`, when given), so that the next scenarios meet a
    DAG holding their own runs only. Not marked failed: the sweep drain's sweeps would then look at
    each of them for a re-drive."""
    records = [r for r in measure.runs(client, DAG_ID, mark) if not states or r["state"] in states]
    client.token()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda r: client.request("DELETE", f"/api/v2/dags/{DAG_ID}/dagRuns/{r['dag_run_id']}"),
                      records))


# -- sweep drain ------------------------------------------------------------------------------------

def sweep_drain(client: AirflowClient, hms_url: str, hms_token: str, n: int, *, timeout: float,
                progress=print) -> dict[str, Any]:
    """n queued proposals in the backlog → sweeps, one after another, until every one has its run.

    The proposal DAG is paused meanwhile: this measures how fast sweeps turn a backlog into runs;
    running them is the burst's measure.
    """
    mark = tag("drain")
    with httpx.Client(base_url=hms_url, headers={"Authorization": f"Bearer {hms_token}"}, timeout=30) as hms:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: hms.post("/backlog/proposals", json=proposal(f"{mark}-{i:05d}")
                                             ).raise_for_status(), range(n)))
        progress(f"    {n} queued in the backlog")
        # Left paused: this is the last scenario, and the stack is thrown away with its queued runs.
        client.request("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": True}).raise_for_status()
        sweeps = 0
        deadline = time.monotonic() + timeout
        while measure.count_runs(client, DAG_ID, mark) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the backlog was not drained in {timeout:.0f} s")
            sweep_id = f"{mark}-sweep-{sweeps:03d}"
            measure.run_to_end(client, SWEEP_DAG_ID, sweep_id, {}, poll=0.5)
            sweeps += 1
            if sweeps % 5 == 1:
                progress(f"    sweep {sweeps}: {measure.count_runs(client, DAG_ID, mark)}/{n} runs exist")
        pending = hms.get("/backlog/proposals", params={"status": "pending", "limit": 10}).json()["items"]
    records = measure.runs(client, DAG_ID, mark)
    sweep_records = measure.runs(client, SWEEP_DAG_ID, mark)
    first = min(r["queued_at"] for r in sweep_records)
    seconds = max(measure.seconds_between(first, r["queued_at"]) for r in records)
    proposals = {r["conf"]["id"] for r in records}
    return {"queued": n, "runs": len(records), "duplicates": len(records) - len(proposals),
            "pending_left": len([p for p in pending if mark in p["id"]]), "sweeps": sweeps,
            "seconds": round(seconds, 1), "per_min": round(len(records) / seconds * 60, 1)}


# -- a binding rate budget ---------------------------------------------------------------------------

BUDGET = {"per_second": 5, "burst": 5}  # the policy budget the scenario sets (design.md §10's example)


def budget(stack: Stack, client: AirflowClient, hms_token: str, n: int, *, timeout: float,
           progress=print) -> dict[str, Any]:
    """n proposals at once under a policy budget of BUDGET: the most policy calls the backend
    received in any one-second window, against design.md §10's bound (the rate with 5 % to spare,
    plus the burst once), and the calls each second per service from what the backend stored (a
    policy version's applied_at, a notification's sent_at). The budget is restored afterwards."""
    path = "/management/budgets/policy"
    before = next(b for b in client.request("GET", "/management/budgets").raise_for_status().json()["budgets"]
                  if b["service"] == "policy")
    mark = tag("budget")
    ids = [f"{mark}-{i:04d}" for i in range(n)]
    limiter = limiter_overhead(stack)
    progress(f"    limiter: one reservation p50 {limiter['p50_ms']:.2f} ms, p95 {limiter['p95_ms']:.2f} ms")
    with httpx.Client(base_url=stack.hms_url, headers={"Authorization": f"Bearer {hms_token}"}, timeout=30) as hms:
        client.request("PUT", path, json=BUDGET).raise_for_status()
        try:
            hms.delete("/stats").raise_for_status()  # max_per_second counts from here
            measure.trigger_all(client, DAG_ID, {run_id_for(pid): proposal(pid) for pid in ids})
            progress(f"    {n} triggered under a policy budget of {BUDGET['per_second']}/s, burst {BUDGET['burst']}")
            measure.wait_until_terminal(client, DAG_ID, mark, n, timeout=timeout, progress=progress)
        finally:
            client.request("PUT", path, json={"per_second": before["per_second"], "burst": before["burst"]})
        policy = hms.get("/stats").raise_for_status().json()["routes"]["POST /svc/policy"]
        applied = [v["applied_at"] for pid in ids
                   for v in (hms.get(f"/svc/policy/{pid}").json().get("versions") or [])]
        told = [m["sent_at"] for pid in ids
                for m in hms.get("/notifications", params={"proposalId": pid}).json()["items"] if m.get("kind") is None]
    records = measure.runs(client, DAG_ID, mark)
    bound = BUDGET["per_second"] * 1.05 + BUDGET["burst"]
    result = {"n": n, **BUDGET, "bound": bound, "max_per_second": policy["max_per_second"],
              "policy_calls": policy["calls"], "side_effects": policy["side_effects"], "limiter": limiter,
              "succeeded": sum(r["state"] == "success" for r in records),
              "calls_each_second": {"policy": per_second(applied), "notifications": per_second(told)},
              **{key: value for key, value in throughput(records).items() if key in ("wall_s", "per_min")}}
    progress(f"    most policy calls in a second {result['max_per_second']} (bound {bound:.2f}); "
             f"{result['side_effects']} applied for {n}")
    return result


def limiter_overhead(stack: Stack, n: int = 500) -> dict[str, Any]:
    """What the limiter adds to one call when its budget does not bind: the time of one reservation
    (the one statement every HMS call makes first), n of them one after another from one connection,
    as a task makes them, on a budget of its own in the stack's records database."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from hms_management.records.budgets import Budgets

    engine = create_engine(make_url(stack.db_uri).set(database="hms_management"), pool_size=1)
    try:
        store = Budgets(engine)
        store.seed({"bench-limiter": (1_000_000.0, 1000)}, by="benchmark")
        store.reserve("bench-limiter")  # the connection is made here, as a task's first record write makes it
        took = []
        for _ in range(n):
            started = time.perf_counter()
            store.reserve("bench-limiter")
            took.append((time.perf_counter() - started) * 1000)
    finally:
        engine.dispose()
    return {"n": n, **{f"{key}_ms": round(value, 3) for key, value in measure.summary(took).items()
                       if key in ("p50", "p95", "mean")}}


def per_second(moments: list[str]) -> list[int]:
    """Calls in each second from the first one's: a histogram's bars."""
    if not moments:
        return []
    times = sorted(measure.moment(m).timestamp() for m in moments)
    bars = [0] * (int(times[-1] - times[0]) + 1)
    for t in times:
        bars[int(t - times[0])] += 1
    return bars
