"""Where an approved proposal's time and CPU go: `python -m hms_bench.profile [--proposals N]`.

Starts the project's stack with the profilers of `profile_hooks` loaded (`profile_site` first on
its PYTHONPATH), warms it up, then opens three windows of N proposals one after another:

- `orchestration` (CPU clock): every task process of the proposal DAG under cProfile, the
  api-server under yappi by route;
- `floor` (CPU clock): the same for the floor DAG of the same shape, whose tasks do nothing
  (include/hms_bench/dags/proposal_floor.py): what Airflow costs a step, to set each step against;
- `orchestration-wall` (wall clock): where a task process's time goes, waits included, which is
  what the single-proposal latency is made of.

Each window also takes the kernel's CPU count by component, to set the profilers' against (they
slow what they profile). Prints Markdown tables and writes them (profile.md), profile.json and the
raw cProfile files (open one with `python -m pstats`) to bench-results/profile/. `make bench-profile`
runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hms_bench import measure, profile_hooks, scenarios
from hms_bench.__main__ import BENCH, client_of, commit, product_stack, progress
from hms_bench.dags.proposal_floor import FLOOR_DAG_ID
from hms_management.domain.proposal import DAG_ID
from hms_stack.stack import ROOT

RESULTS = ROOT / "bench-results" / "profile"
WINDOWS = (("orchestration", DAG_ID, "cpu"), ("floor", FLOOR_DAG_ID, "cpu"), ("orchestration-wall", DAG_ID, "wall"))

# A task process's phases, in the order Airflow's task runner goes through them (its functions,
# inclusive): together they make nearly all of `main`, the rest is shown as such.
RUNNER = "airflow/sdk/execution_time/task_runner.py"
PHASES = [
    ("start-up message from the supervisor", RUNNER, "get_startup_details"),
    ("start-up: find the DAG, build the task instance", RUNNER, "startup"),
    ("prepare: render the template fields, store them (rtif)", RUNNER, "_prepare"),
    ("execute (the operator's work)", RUNNER, "_execute_task"),
    ("push the return value (XCom)", RUNNER, "_push_xcom_if_needed"),
    ("report success (the state call)", RUNNER, "_handle_current_task_success"),
    ("finalize (listeners, callbacks)", RUNNER, "finalize"),
]
REST = "the rest of main (logging set-up, spans, exit)"
# Inside a step of ours, and across phases (inclusive, so these overlap the phases above).
PARTS = [
    ("ours: read the record, build the calls (render)", "hms_management/orchestration/operators.py",
     "render_template_fields"),
    ("ours: governance check before the step", "hms_management/orchestration/operators.py", "ask_governance"),
    ("ours: the calls with their budget slots (fan-out)", "hms_management/orchestration/fanout.py", "send_all"),
    ("ours: write the step's result to the record", "hms_management/orchestration/progress.py", "succeeded"),
    ("Execution-API round trips through the supervisor", "airflow/sdk/execution_time/comms.py", "send"),
    ("imports at run time", "<frozen importlib._bootstrap>", "_find_and_load"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=20, help="proposals per window (default 20)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: bench-results/profile/)")
    args = parser.parse_args(argv)
    raw = args.out / "raw"
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    results = run(args.proposals, raw)
    text = markdown(results)
    (args.out / "profile.md").write_text(text, encoding="utf-8")
    (args.out / "profile.json").write_text(json.dumps(results, indent=2))
    print(text)
    progress(f"wrote {args.out / 'profile.md'}, profile.json and the raw profiles in {raw}")
    return 0


def run(n: int, raw: Path) -> dict[str, Any]:
    site = BENCH / "profile_site"
    env = {"HMS_PROFILE_DIR": str(raw),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    results: dict[str, Any] = {"meta": {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                                        "commit": commit(), "proposals_per_window": n}, "windows": {}}
    with tempfile.TemporaryDirectory(prefix="hms-bench-profile-") as tmp:
        stack = product_stack(Path(tmp), env)
        progress("starting the project's stack with the profilers loaded …")
        stack.start(log=lambda m: progress(f"  {m}"))
        try:
            client = client_of(stack)
            scenarios.warm_up(client)
            roots = measure.stack_roots(stack)
            for label, dag_id, clock in WINDOWS:
                progress(f"{label}: {n} {dag_id} proposals one after another, task processes on the {clock} clock")
                results["windows"][label] = window(raw / label, clock, lambda d=dag_id: scenarios.latency(
                    client, d, n, progress, api_log=stack.log_dir / "api-server.log"), roots, n)
        finally:
            progress("stopping the project's stack")
            stack.stop()
    return results


def window(raw: Path, clock: str, measured, roots: dict[str, int], n: int) -> dict[str, Any]:
    """Open the profiling window, run `measured`, close it, collect every process's figures."""
    raw.mkdir()  # the profilers write beside it (the stack's HMS_PROFILE_DIR); moved in at the end
    cpu_before = measure.cpu_by_component(roots)
    (raw.parent / profile_hooks.WINDOW).write_text(clock)
    latency = measured()
    (raw.parent / profile_hooks.CLOSED).touch()
    api_files = settled(raw.parent, "api-*.json")
    (raw.parent / profile_hooks.WINDOW).unlink()
    cpu_after = measure.cpu_by_component(roots)
    time.sleep(1.0)  # every profiled process sees the window closed before the next one opens
    (raw.parent / profile_hooks.CLOSED).unlink()
    for made in [*raw.parent.glob("task-*"), *api_files]:
        made.rename(raw / made.name)
    return {"clock": clock,
            "latency": {key: latency[key] for key in ("p50", "p95", "mean", "execution_api") if key in latency},
            "kernel_cpu_s_per_proposal": {name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / n, 4)
                                          for name in cpu_after},
            "task_processes": task_processes(raw),
            "api_server": api_server(raw, n)}


def settled(folder: Path, pattern: str, quiet_s: float = 1.5, timeout_s: float = 30.0) -> list[Path]:
    """The files matching `pattern` once no new one has appeared for `quiet_s` (each api-server
    process writes one when it sees the window closed)."""
    deadline, seen, since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if len(found) != seen:
            seen, since = len(found), time.monotonic()
        elif found and time.monotonic() - since >= quiet_s:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"no api-server process wrote its profile to {folder} within {timeout_s:.0f} s")


# -- task processes ---------------------------------------------------------------------------------

def task_processes(raw: Path) -> dict[str, Any]:
    """Per step: how many processes, their mean total, and the mean of each phase and part."""
    by_step: dict[str, list[Path]] = defaultdict(list)
    for meta_file in raw.glob("task-*.json"):
        meta = json.loads(meta_file.read_text())
        if "task_id" in meta:  # a process that never got its start-up message is no step's
            by_step[meta["task_id"]].append(meta_file)
    steps = {}
    for task_id, meta_files in sorted(by_step.items()):
        stats = pstats.Stats(*(str(f.with_suffix(".prof")) for f in meta_files))
        metas = [json.loads(f.read_text()) for f in meta_files]
        k = len(meta_files)
        profiled = sum(entry[2] for entry in stats.stats.values()) / k  # every function's own time
        phases = {label: inclusive(stats, path, name) / k for label, path, name in PHASES}
        phases[REST] = profiled - sum(phases.values())
        steps[task_id] = {
            "processes": k,
            "profiled_s": round(profiled, 4),
            "process_cpu_s": round(sum(m["cpu_s"] for m in metas) / k, 4),
            "process_wall_s": round(sum(m["wall_s"] for m in metas) / k, 4),
            "phases_s": {label: round(value, 4) for label, value in phases.items()},
            "parts_s": {label: round(seconds / k, 4) for label, path, name in PARTS
                        if (seconds := inclusive(stats, path, name))},
            "top_own_time": top(stats, k),
        }
    return steps


def inclusive(stats: pstats.Stats, path: str, name: str) -> float:
    """The inclusive time of the functions called `name` in a file ending with `path`."""
    return sum(entry[3] for (filename, _, function), entry in stats.stats.items()
               if function == name and filename.endswith(path))


def top(stats: pstats.Stats, k: int, count: int = 10) -> list[dict[str, Any]]:
    entries = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:count]
    return [{"function": f"{function} ({profile_hooks.short_path(filename)}:{line})", "own_s": round(entry[2] / k, 5),
             "calls": round(entry[1] / k, 1)} for (filename, line, function), entry in entries]


# -- the api-server ---------------------------------------------------------------------------------

def api_server(raw: Path, n: int) -> dict[str, Any]:
    """Per route, summed over the api-server's processes: CPU-s per proposal and the functions
    with the most own time."""
    cpu: dict[str, float] = defaultdict(float)
    functions: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    process_cpu = 0.0
    for api_file in raw.glob("api-*.json"):
        figures = json.loads(api_file.read_text())
        process_cpu += figures["process_cpu_s"]
        for route, entry in figures["by_route"].items():
            cpu[route] += entry["cpu_s"]
            for function in entry["top"]:
                functions[route][function["function"]] += function["self_s"]
    routes = {route: {"cpu_s_per_proposal": round(seconds / n, 4),
                      "top": [{"function": name, "own_s_per_proposal": round(own / n, 5)} for name, own in
                              sorted(functions[route].items(), key=lambda item: -item[1])[:5]]}
              for route, seconds in sorted(cpu.items(), key=lambda item: -item[1])}
    return {"process_cpu_s_per_proposal": round(process_cpu / n, 4), "routes": routes}


# -- the report -------------------------------------------------------------------------------------

def markdown(results: dict[str, Any]) -> str:
    windows, n = results["windows"], results["meta"]["proposals_per_window"]
    lines = ["# Where an approved proposal's time and CPU go", "",
             f"{n} proposals per window, one after another, on a warm stack ({results['meta']['started']}, "
             f"commit {results['meta'].get('commit', 'unknown')}; `python -m hms_bench.profile`). Task processes "
             "under cProfile, the api-server under yappi; both slow what they profile, so compare shares and "
             "steps, and the kernel's counts beside them.", ""]
    for label, figures in windows.items():
        steps = figures["task_processes"]
        kernel = figures["kernel_cpu_s_per_proposal"]
        unit = "CPU-s" if figures["clock"] == "cpu" else "s (wall)"
        lines += [f"## {label}: task processes, {unit} per process", "",
                  f"Single-proposal p50 {figures['latency'].get('p50', float('nan')):.2f} s in this window. "
                  f"Kernel, CPU-s per proposal: task processes {kernel.get('task processes', 0):.3f}, "
                  f"api-server {kernel.get('api-server', 0):.3f}, scheduler {kernel.get('scheduler', 0):.3f}.", "",
                  "| phase or part | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
        for row in [*(phase for phase, *_ in PHASES), REST]:
            lines.append(f"| {row} | " + " | ".join(f"{s['phases_s'].get(row, 0):.3f}" for s in steps.values()) + " |")
        lines.append("| **profiled, all** | " + " | ".join(f"**{s['profiled_s']:.3f}**" for s in steps.values()) + " |")
        for row, *_ in PARTS:
            lines.append(f"| *{row}* | " + " | ".join(f"{s['parts_s'].get(row, 0):.3f}" for s in steps.values()) + " |")
        lines.append("| processes | " + " | ".join(str(s["processes"]) for s in steps.values()) + " |")
        api = figures["api_server"]
        lines += ["", f"### {label}: api-server by route, CPU-s per proposal "
                      f"(yappi {api['process_cpu_s_per_proposal']:.3f} in all)", "",
                  "| route | CPU-s | most own time in |", "|---|---:|---|"]
        for route, entry in api["routes"].items():
            where = "; ".join(f"{f['function']} {f['own_s_per_proposal'] * 1000:.1f} ms" for f in entry["top"][:3])
            lines.append(f"| {route} | {entry['cpu_s_per_proposal']:.4f} | {where} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
