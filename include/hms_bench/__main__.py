"""`make bench` (`python -m hms_bench [--quick]`): every scenario, side by side, in one run.

1. The project's stack (its airflow.cfg, plus the floor DAG): the no-orchestrator floor, latency of
   proposal_orchestration and of the floor, the burst, a high-priority proposal into a burst,
   parked proposals, the sweep drain, a burst under a binding policy budget (the calls each second).
2. The naive baseline's stack (Airflow's defaults, a hand-written DAG): latency and burst.
   Capabilities, each one's price: latency and burst of proposals with several targets on the
   project's stack, and on a fresh stack each with the governance check, then the rate budgets,
   switched off.
3. Only when asked (`--only max_running`, `make bench-max-running`; always in a quick run): the
   burst again on one fresh stack per value of `[hms_management] max_running_proposals`.
Then results.json, results.md and the plots in bench-results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from hms_bench import report, scenarios
from hms_bench.dags.proposal_floor import FLOOR_DAG_ID
from hms_bench.scenarios import QUICK, Sizes
from hms_management.domain.proposal import DAG_ID
from hms_management.sweep.plan import SWEEP_DAG_ID
from hms_stack.probe import StackProbe
from hms_stack.stack import AIRFLOW_CFG, ROOT, Stack, free_port

BENCH = Path(__file__).resolve().parent
NAIVE_CFG = BENCH / "naive" / "airflow.cfg"
NAIVE_DAG_ID = "naive_proposal"
RESULTS = ROOT / "bench-results"
# Generous ceilings: a scenario that needs longer is reported as failed, and the run goes on.
TIMEOUT_S = 900.0
SCENARIOS = ("latency", "burst", "priority", "parked", "sweep_drain", "budget", "capabilities", "naive",
             "max_running")
# The capabilities switched off one at a time, each on a stack of its own (domain/settings.py).
CAPABILITIES_OFF = {"governance_checks_off": {"AIRFLOW__HMS_MANAGEMENT__GOVERNANCE_CHECKS": "False"},
                    "rate_budgets_off": {"AIRFLOW__HMS_MANAGEMENT__RATE_BUDGETS": "False"}}
# max_running starts a stack per value (four bursts of 500, about 20 minutes): its own command.
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s != "max_running")
MAX_RUNNING_ENV = "AIRFLOW__HMS_MANAGEMENT__MAX_RUNNING_PROPOSALS"
MAX_RUNNING_VALUES = (8, 16, 24, 48)
QUICK_MAX_RUNNING_VALUES = (4,)
# A quick run proves the switched-off path on one stack of its own; each stack costs a minute of CI.
QUICK_CAPABILITIES_OFF = ("governance_checks_off",)

_started = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.0f} s] {message}", flush=True)


def attempt(results: dict[str, Any], key: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run one measurement; a failure is recorded in the results instead of ending the benchmark."""
    try:
        value = run()
    except Exception as err:
        traceback.print_exc()
        results[key] = {"error": f"{type(err).__name__}: {err}"}
        return None
    results[key] = value
    return value


def product_stack(state: Path, env: dict[str, str] | None = None) -> Stack:
    """The project as deployed, with the floor DAG beside its DAGs (symlinks: one copy of each)."""
    dags = state / "dags"
    dags.mkdir(parents=True)
    for dag_file in [*(ROOT / "dags").glob("*.py"), BENCH / "dags" / "proposal_floor.py"]:
        (dags / dag_file.name).symlink_to(dag_file)
    return Stack(state=state / "stack", api_port=free_port(), hms_port=free_port(),
                 extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                            # Sweeps start when the drain scenario says, not on a clock.
                            "AIRFLOW__HMS_MANAGEMENT__BACKLOG_SWEEP_SCHEDULE": "none", **(env or {})},
                 ready_dag_ids=(DAG_ID, FLOOR_DAG_ID, SWEEP_DAG_ID))


def naive_stack(state: Path) -> Stack:
    (state / "stack" / "plugins").mkdir(parents=True)
    return Stack(state=state / "stack", api_port=free_port(), hms_port=free_port(),
                 extra_env={"AIRFLOW_CONFIG": str(NAIVE_CFG)}, ready_dag_ids=(NAIVE_DAG_ID,),
                 serves_management_api=False)


def client_of(stack: Stack) -> StackProbe:
    return StackProbe(stack.api_url, "admin", stack.credentials()["airflow"]["admin"], timeout=60)


def max_running_of(client: StackProbe) -> int:
    """The proposal DAG's max_active_runs as the stack parsed it: proof that a setting reached it."""
    return client.request("GET", f"/api/v2/dags/{DAG_ID}").raise_for_status().json()["max_active_runs"]


def run_product(sizes: Sizes, results: dict[str, Any], env: dict[str, str], only: set[str]) -> None:
    latency, burst = results["latency"]["variants"], results["burst"]["variants"]
    with tempfile.TemporaryDirectory(prefix="hms-bench-") as tmp:
        stack = product_stack(Path(tmp), env)
        progress("starting the project's stack …")
        stack.start(log=lambda m: progress(f"  {m}"))
        try:
            client, hms_token = client_of(stack), stack.credentials()["hms_token"]
            results["meta"]["max_running_proposals"] = max_running_of(client)
            if "latency" in only:
                progress(f"latency: no orchestrator, {sizes.latency} proposals")
                attempt(latency, "direct", lambda: scenarios.direct(stack.hms_url, hms_token, sizes.latency, progress))
                for key, dag_id in (("orchestration", DAG_ID), ("floor", FLOOR_DAG_ID)):
                    progress(f"latency: {dag_id}, {sizes.latency} proposals one after another")
                    attempt(latency, key, lambda d=dag_id: scenarios.latency(
                        client, d, sizes.latency, progress, api_log=stack.log_dir / "api-server.log"))
            if "burst" in only:
                progress(f"burst: {sizes.burst} proposals at once")
                attempt(burst, "orchestration", lambda: scenarios.burst(stack, client, DAG_ID, sizes.burst,
                                                                       timeout=TIMEOUT_S, progress=progress))
            if "priority" in only:
                progress(f"priority: one high-priority proposal into a burst of {sizes.burst}")
                attempt(results, "priority", lambda: scenarios.priority(client, sizes, timeout=TIMEOUT_S,
                                                                        progress=progress))
            if "parked" in only:
                progress(f"parked: {sizes.parked} in review, then {sizes.ordinary} ordinary")
                reference = burst.get("orchestration")
                attempt(results, "parked", lambda: scenarios.parked(stack, client, sizes, reference,
                                                                    timeout=TIMEOUT_S, progress=progress))
            if "budget" in only:
                progress(f"budget: {sizes.budget} proposals at once under a policy budget of "
                         f"{scenarios.BUDGET['per_second']}/s")
                attempt(results, "budget", lambda: scenarios.budget(stack, client, hms_token, sizes.budget,
                                                                    timeout=TIMEOUT_S, progress=progress))
            if "capabilities" in only:
                progress(f"capabilities: {sizes.latency} proposals with 3 scopes and 4 groups one after another, "
                         f"then {sizes.burst} at once")
                attempt(results["capabilities"]["variants"], "several_targets",
                        lambda: latency_and_burst(stack, client, sizes, several=True))
            if "sweep_drain" in only:
                progress(f"sweep drain: {sizes.backlog} queued in the backlog")
                attempt(results, "sweep_drain", lambda: scenarios.sweep_drain(client, stack.hms_url, hms_token,
                                                                              sizes.backlog, timeout=TIMEOUT_S,
                                                                              progress=progress))
        finally:
            progress("stopping the project's stack")
            stack.stop()


def run_max_running(sizes: Sizes, results: dict[str, Any], env: dict[str, str], values: list[int]) -> None:
    """The burst on a fresh stack per value of max_running_proposals, set as the benchmark's --env does."""
    part = results.setdefault("max_running", {"n": sizes.burst, "values": {}})["values"]
    for value in values:
        key = str(value)
        with tempfile.TemporaryDirectory(prefix=f"hms-bench-mr{value}-") as tmp:
            stack = product_stack(Path(tmp), {**env, MAX_RUNNING_ENV: key})
            progress(f"max_running {value}: starting a stack …")
            try:
                stack.start(log=lambda m: progress(f"  {m}"))
                client = client_of(stack)
                effective = max_running_of(client)
                if effective != value:
                    raise RuntimeError(f"{MAX_RUNNING_ENV}={value} did not reach the DAG: max_active_runs {effective}")
                scenarios.warm_up(client)
                progress(f"max_running {value}: burst of {sizes.burst}")
                part[key] = {"max_active_runs": effective,
                             **scenarios.burst(stack, client, DAG_ID, sizes.burst, timeout=TIMEOUT_S,
                                               progress=progress)}
            except Exception as err:  # recorded; the next value still runs on a stack of its own
                traceback.print_exc()
                part[key] = {"error": f"{type(err).__name__}: {err}"}
            finally:
                stack.stop()


def latency_and_burst(stack: Stack, client: StackProbe, sizes: Sizes, *, several: bool = False) -> dict[str, Any]:
    return {"latency": scenarios.latency(client, DAG_ID, sizes.latency, progress, several=several),
            "burst": scenarios.burst(stack, client, DAG_ID, sizes.burst, timeout=TIMEOUT_S, progress=progress,
                                     several=several)}


def run_capabilities_off(sizes: Sizes, results: dict[str, Any], env: dict[str, str], names: tuple[str, ...]) -> None:
    """Latency and burst on a fresh stack per capability switched off."""
    part = results["capabilities"]["variants"]
    for name in names:
        switched_off = CAPABILITIES_OFF[name]
        with tempfile.TemporaryDirectory(prefix=f"hms-bench-{name}-") as tmp:
            stack = product_stack(Path(tmp), {**env, **switched_off})
            progress(f"capabilities: {name}: starting a stack …")
            try:
                stack.start(log=lambda m: progress(f"  {m}"))
                client = client_of(stack)
                scenarios.warm_up(client)
                attempt(part, name, lambda s=stack, c=client: latency_and_burst(s, c, sizes))
            except Exception as err:  # recorded; the next one still runs on a stack of its own
                traceback.print_exc()
                part[name] = {"error": f"{type(err).__name__}: {err}"}
            finally:
                stack.stop()


def run_naive(sizes: Sizes, results: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="hms-bench-naive-") as tmp:
        stack = naive_stack(Path(tmp))
        progress("starting the naive baseline's stack (Airflow defaults) …")
        stack.start(log=lambda m: progress(f"  {m}"))
        try:
            client = client_of(stack)
            progress(f"latency: {NAIVE_DAG_ID}, {sizes.latency} proposals one after another")
            attempt(results["latency"]["variants"], "naive",
                    lambda: scenarios.latency(client, NAIVE_DAG_ID, sizes.latency, progress))
            progress(f"burst: {sizes.naive_burst} naive proposals at once")
            attempt(results["burst"]["variants"], "naive",
                    lambda: scenarios.burst(stack, client, NAIVE_DAG_ID, sizes.naive_burst, timeout=TIMEOUT_S,
                                            progress=progress))
        finally:
            progress("stopping the naive baseline's stack")
            stack.stop()


# -- results --------------------------------------------------------------------------------------

def settings(cfg: Path) -> dict[str, str]:
    """The non-default Airflow settings of a configuration file (paths and users left out)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg)
    skip = {"dags_folder", "plugins_folder", "base_log_folder", "dag_processor_child_process_log_directory",
            "simple_auth_manager_users", "simple_auth_manager_passwords_file"}
    return {f"{section}.{key}": value for section in parser.sections() if section != "hms_management"
            for key, value in parser.items(section) if key not in skip}


def commit() -> str:
    """The checkout's commit (a run of uncommitted changes says so in its notes, not here)."""
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def meta(quick: bool, sizes: Sizes) -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick, "sizes": vars(sizes),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                                                * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "python": platform.python_version(), "platform": platform.platform()},
        "versions": {**{name: metadata.version(name) for name in ("apache-airflow", "apache-airflow-providers-http")},
                     "commit": commit()},
        "settings": {"orchestration": settings(AIRFLOW_CFG), "naive": settings(NAIVE_CFG)},
        "before": BEFORE_SOURCE,
    }


# The previous design's figures, as the README's "The latest run" recorded them then (that section
# is docs/performance.md now). Re-running that design is not cheap, so they stand beside the new
# figures as the "before" column.
BEFORE_SOURCE = ("the previous design (proposals in review kept their runs running, one trigger each; no bound "
                 "on running runs), as README \"The latest run\" recorded it: `make bench` of commit bbc421f, "
                 "2026-11-27 13:45 UTC, and latency and burst re-run alone at 14:31 UTC on 738cf11 plus the change "
                 "committed as 7f69ea8; the first completion read off that run's burst plot, the requests per "
                 "second computed from the back-off. Not re-run here.")
BEFORE = {
    "p50": "1.16–1.34 s",
    "p50_vs_floor": "1.43–1.69×",
    "p50_vs_naive": "4.9× faster",
    "burst_vs_naive": "2.3×",
    "per_min": "103–110/min",
    "first_completion": "≈ 195 s (plot)",
    "cpu": "0.996–1.05 CPU-s",
    "failed": "0",
    "priority": "not measured",
    "vs_burst": "59%",
    "parking": "176 s",
    "hms_per_s": "≈ 17/s (computed)",
    "extra_mem": "204 MB",
    "slots": "0",
    "budget_max": "no rate budgets (8 policy calls in flight, any rate)",
    "limiter": "no limiter",
    "check_cpu": "no check before each step",
    "budgets_rate": "no rate budgets",
    "several_cpu": "one target only",
    "execution_api": "≈ 25 (read in the Task SDK, 2026-12-04)",
    "idle_cpu": "31 CPU-s/min (2026-12-04)",
}


def _burst_figure(run: Any, key: str) -> float | None:
    value = run.get(key) if isinstance(run, dict) else None
    return value if isinstance(value, int | float) and value else None


def price(burst: dict[str, Any], caps: dict[str, Any], switched_off: str, key: str) -> float | None:
    """What the capability adds to a burst figure: all in over the stack without it, minus one."""
    with_it, without = _burst_figure(burst.get("orchestration"), key), _burst_figure(
        (caps.get(switched_off) or {}).get("burst"), key)
    return with_it / without - 1 if with_it and without else None


def kept(burst: dict[str, Any], caps: dict[str, Any], switched_off: str, key: str) -> float | None:
    """The share of a burst figure kept with the capability: all in over the stack without it."""
    with_it, without = _burst_figure(burst.get("orchestration"), key), _burst_figure(
        (caps.get(switched_off) or {}).get("burst"), key)
    return with_it / without if with_it and without else None


def several_price(burst: dict[str, Any], caps: dict[str, Any], key: str) -> float | None:
    """What 3 scopes and 4 groups add to a burst figure against one target, on the same stack."""
    one, several = _burst_figure(burst.get("orchestration"), key), _burst_figure(
        (caps.get("several_targets") or {}).get("burst"), key)
    return several / one - 1 if one and several else None


def idle_per_minute(parked: dict[str, Any]) -> float | None:
    """The quiet spell's CPU-seconds, all components, per minute."""
    split, seconds = parked.get("idle_cpu_s_by_component"), parked.get("idle_seconds")
    if not isinstance(split, dict) or not seconds:
        return None
    return sum(value for value in split.values() if isinstance(value, int | float)) * 60 / seconds


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals for proposal_orchestration, each met or not (never asserted by a test),
    beside the previous design's figure."""
    lat, bur = results["latency"]["variants"], results["burst"]["variants"]
    park, prio = results.get("parked", {}), results.get("priority", {})
    caps = results.get("capabilities", {}).get("variants", {})
    n_budget = results.get("budget", {}).get("n", "the")

    def get(part: dict[str, Any], *keys: str) -> float | None:
        for key in keys:
            part = part.get(key) if isinstance(part, dict) else None
        return part if isinstance(part, int | float) else None

    p50, floor, naive = get(lat, "orchestration", "p50"), get(lat, "floor", "p50"), get(lat, "naive", "p50")
    rate, naive_rate = get(bur, "orchestration", "per_min"), get(bur, "naive", "per_min")
    n_burst, n_parked = results["burst"]["n"], park.get("parked", "the")
    rows = [
        ("p50 latency (one proposal at a time)", "≤ 1.2 s", "p50", p50, lambda v: v <= 1.2, "{:.2f} s"),
        ("p50 vs the floor of the same shape", "≤ 1.3×", "p50_vs_floor", p50 / floor if p50 and floor else None,
         lambda v: v <= 1.3, "{:.2f}×"),
        ("p50 vs the naive baseline", "≥ 2× faster", "p50_vs_naive", naive / p50 if p50 and naive else None,
         lambda v: v >= 2, "{:.1f}× faster"),
        (f"first completion in a burst of {n_burst}", "≤ 10 s", "first_completion",
         get(bur, "orchestration", "first_completion_s"), lambda v: v <= 10, "{:.1f} s"),
        ("burst throughput", "≥ 130 proposals/min", "per_min", rate, lambda v: v >= 130, "{:.0f}/min"),
        ("burst throughput vs the naive baseline", "≥ 1.5×", "burst_vs_naive",
         rate / naive_rate if rate and naive_rate else None, lambda v: v >= 1.5, "{:.1f}×"),
        ("CPU per proposal (burst)", "≤ 1 CPU-s", "cpu", get(bur, "orchestration", "cpu_s_per_proposal"),
         lambda v: v <= 1, "{:.2f} CPU-s"),
        ("failed runs in the burst", "0", "failed", get(bur, "orchestration", "failed"), lambda v: v == 0, "{:.0f}"),
        (f"a high-priority proposal into a burst of {prio.get('burst', n_burst)}", "≤ 15 s", "priority",
         get(prio, "seconds"), lambda v: v <= 15, "{:.1f} s"),
        ("burst throughput kept beside parked ones", "≥ 95 %", "vs_burst", get(park, "vs_burst"),
         lambda v: v >= 0.95, "{:.0%}"),
        (f"time to park {n_parked} proposals", "≤ 60 s", "parking", get(park, "parking_s"), lambda v: v <= 60,
         "{:.0f} s"),
        ("HMS requests while parked (nothing else running)", "≤ 1/s", "hms_per_s", get(park, "hms_per_s_idle"),
         lambda v: v <= 1, "{:.2f}/s"),
        ("extra memory of parked proposals", "≤ 100 MB", "extra_mem", get(park, "extra_mem_mb"),
         lambda v: v <= 100, "{:.0f} MB"),
        ("worker slots held by parked proposals", "0", "slots", get(park, "slots_held"), lambda v: v == 0, "{:.0f}"),
        ("governance check before every step: CPU per proposal vs switched off", "≤ +5 %", "check_cpu",
         price(bur, caps, "governance_checks_off", "cpu_s_per_proposal"), lambda v: v <= 0.05, "{:+.1%}"),
        ("rate budgets (not binding): burst throughput vs switched off", "≥ 95 %", "budgets_rate",
         kept(bur, caps, "rate_budgets_off", "per_min"), lambda v: v >= 0.95, "{:.0%}"),
        ("3 scopes × 4 groups: CPU per proposal vs one target", "≤ +10 %", "several_cpu",
         several_price(bur, caps, "cpu_s_per_proposal"), lambda v: v <= 0.10, "{:+.1%}"),
        (f"most policy calls in a second, {n_budget} proposals under a budget of 5/s, burst 5", "≤ 5 × 1.05 + 5",
         "budget_max", get(results.get("budget", {}), "max_per_second"), lambda v: v <= 5 * 1.05 + 5, "{:.0f}"),
        ("rate limiter's time per call, not binding (p95 of one reservation)", "≤ 2 ms", "limiter",
         get(results.get("budget", {}), "limiter", "p95_ms"), lambda v: v <= 2, "{:.2f} ms"),
        ("Execution-API calls per approved proposal", "≤ 16", "execution_api",
         get(lat, "orchestration", "execution_api", "calls_per_proposal"), lambda v: v <= 16, "{:.1f}"),
        (f"idle stack with {n_parked} parked (quiet spell, all components)", "≤ 3 CPU-s/min", "idle_cpu",
         idle_per_minute(park), lambda v: v <= 3, "{:.2f} CPU-s/min"),
    ]
    return [{"name": name, "goal": goal, "before": BEFORE[before],
             "measured": fmt.format(value) if value is not None else None,
             "met": check(value) if value is not None else None} for name, goal, before, value, check, fmt in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: bench-results/)")
    parser.add_argument("--only", help=f"some of {','.join(SCENARIOS)} (default: all but max_running, "
                                       "which a quick run includes)")
    parser.add_argument("--size", action="append", default=[], metavar="SCENARIO=N",
                        help=f"override a size ({', '.join(f.name for f in fields(Sizes))}); repeatable")
    parser.add_argument("--max-running", default=None, metavar="N,N,…",
                        help="max_running's values (default: "
                             f"{','.join(map(str, MAX_RUNNING_VALUES))}; quick: "
                             f"{','.join(map(str, QUICK_MAX_RUNNING_VALUES))})")
    parser.add_argument("--env", action="append", default=[], metavar="AIRFLOW__SECTION__KEY=VALUE",
                        help="a setting for the project's stack, to measure a change before making it; repeatable")
    args = parser.parse_args(argv)
    sizes = replace(QUICK if args.quick else Sizes(), **{k: int(v) for k, v in (o.split("=") for o in args.size)})
    results: dict[str, Any] = {"meta": meta(args.quick, sizes), "latency": {"n": sizes.latency, "variants": {}},
                               "burst": {"n": sizes.burst, "variants": {}}, "capabilities": {"variants": {}}}
    env = dict(o.split("=", 1) for o in args.env)
    results["meta"]["settings"]["orchestration"].update({f"(--env) {k}": v for k, v in env.items()})
    only = set(args.only.split(",")) if args.only else set(SCENARIOS if args.quick else DEFAULT_SCENARIOS)
    if unknown := only - set(SCENARIOS):
        parser.error(f"unknown scenarios {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    values = ([int(v) for v in args.max_running.split(",")] if args.max_running
              else list(QUICK_MAX_RUNNING_VALUES if args.quick else MAX_RUNNING_VALUES))
    try:
        if only - {"naive", "max_running"}:
            run_product(sizes, results, env, only)
        if "capabilities" in only:
            run_capabilities_off(sizes, results, env, QUICK_CAPABILITIES_OFF if args.quick else tuple(CAPABILITIES_OFF))
        if "naive" in only:
            run_naive(sizes, results)
        if "max_running" in only:
            run_max_running(sizes, results, env, values)
    finally:  # an interrupted benchmark still leaves what it measured
        results["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        if results["capabilities"]["variants"]:  # the reference: the same shapes, everything on
            results["capabilities"]["variants"]["all_in"] = {
                "latency": results["latency"]["variants"].get("orchestration"),
                "burst": results["burst"]["variants"].get("orchestration")}
        else:
            del results["capabilities"]
        results = {"meta": results.pop("meta"), "targets": targets(results), "scenarios": results}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        written = report.render(results, args.out)
        print((args.out / report.RESULTS_MD).read_text())
        progress(f"wrote {args.out / 'results.json'} and {', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
