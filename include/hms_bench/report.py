"""The benchmark's report: `results.md` (targets, one table per scenario, settings) and three plots.

`python -m hms_bench.report path/to/results.json` renders it again next to the JSON, so the report
can change without running the benchmark again.

A scenario that did not run (a quick run) or failed (`{"error": ...}`) still gets its section,
saying so: a report with a hole in it is more useful than no report.
"""

from __future__ import annotations

import argparse
import json
import random
import textwrap
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

RESULTS_MD = "results.md"
LATENCY_PNG = "latency.png"
BUDGET_PNG = "budget.png"
BURST_PNG = "burst.png"
MAX_RUNNING_PNG = "max_running.png"

# The variants each scenario is meant to have, in the order the tables show them; a missing one
# gets a "not run" row instead of silently disappearing.
LATENCY_VARIANTS = ("orchestration", "floor", "naive", "direct")
BURST_VARIANTS = ("orchestration", "naive")

NOT_RUN = "not run"
MISSING = "—"

Results = dict[str, Any]


def render(results: Results, out_dir: Path) -> list[Path]:
    """Write results.md, latency.png, burst.png, max_running.png and budget.png into out_dir; return
    their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenarios = results.get("scenarios") or {}
    report = out_dir / RESULTS_MD
    report.write_text(markdown(results), encoding="utf-8")
    latency = plot_latency(scenarios.get("latency"), out_dir / LATENCY_PNG)
    burst = plot_burst(scenarios.get("burst"), out_dir / BURST_PNG)
    max_running = plot_max_running(scenarios.get("max_running"), out_dir / MAX_RUNNING_PNG)
    budget = plot_budget(scenarios.get("budget"), out_dir / BUDGET_PNG)
    return [report, latency, burst, max_running, budget]


# -- Markdown ---------------------------------------------------------------------------------------


def markdown(results: Results) -> str:
    meta = results.get("meta") or {}
    scenarios = results.get("scenarios") or {}
    parts = ["# HMS Management Layer benchmark", _header(meta), "## Targets",
             _targets(results.get("targets"), meta.get("before"))]
    for key, (title, section) in SECTIONS.items():
        parts += [f"## {title}", _scenario_absence(scenarios.get(key)) or section(scenarios[key])]
    # Scenarios this report does not know yet still show, as plain facts.
    for key, scenario in scenarios.items():
        if key not in SECTIONS:
            parts += [f"## {key}", _scenario_absence(scenario) or _facts(scenario, {})]
    parts += ["## Non-default Airflow settings", _settings(meta.get("settings"), meta.get("max_running_proposals"))]
    return "\n\n".join(parts) + "\n"


def _header(meta: dict[str, Any]) -> str:
    when = _when(meta.get("started"), meta.get("finished"))
    if meta.get("quick"):
        when += " (quick run)"
    machine = meta.get("machine")
    host = (
        ", ".join(
            [
                f"{_show(machine.get('cpus'), str)} CPUs",
                f"{_show(machine.get('memory_gib'), lambda v: f'{v:.1f}')} GiB memory",
                f"Python {_show(machine.get('python'), str)}",
                _show(machine.get("platform"), str),
            ]
        )
        if machine
        else "machine not recorded"
    )
    versions = ", ".join(f"{name} {version}" for name, version in (meta.get("versions") or {}).items())
    return " · ".join([when, host, versions or "versions not recorded"])


def _when(started: str | None, finished: str | None) -> str:
    if not started:
        return "date not recorded"
    start = datetime.fromisoformat(started)
    text = start.strftime("%Y-%m-%d %H:%M %Z").strip()
    if finished:
        minutes = (datetime.fromisoformat(finished) - start).total_seconds() / 60
        text += f", {minutes:.0f} min"
    return text


def _targets(targets: list[dict[str, Any]] | None, before: str | None = None) -> str:
    if not targets:
        return "No targets recorded."
    rows = [[t.get("name"), t.get("goal"), t.get("before", MISSING), t.get("measured"), _mark(t.get("met"))]
            for t in targets]
    table = _table(["target", "goal", "before", "measured", "met"], rows)
    return f"{table}\n\nBefore: {before}" if before else table


def _mark(met: bool | None) -> str:
    return MISSING if met is None else "✅" if met else "❌"


def _latency(scenario: dict[str, Any]) -> str:
    rows = []
    for name, variant in _variants(scenario, LATENCY_VARIANTS):
        if problem := _absence(variant):
            rows.append([name, problem, "", "", "", ""])
            continue
        rows.append(
            [
                name,
                variant.get("label"),
                _show(len(variant.get("durations") or []), _count),
                _show(variant.get("p50"), _seconds),
                _show(variant.get("p95"), _seconds),
                _show(variant.get("mean"), _seconds),
                _show((variant.get("execution_api") or {}).get("calls_per_proposal"), _count),
            ]
        )
    table = _table(["variant", "DAG", "runs", "p50", "p95", "mean", "Execution-API calls per proposal"], rows)
    routes = [[route, _show(calls, _count)] for name, variant in _variants(scenario, LATENCY_VARIANTS)
              if name == "orchestration" and variant
              for route, calls in ((variant.get("execution_api") or {}).get("by_route_per_proposal") or {}).items()]
    by_route = ("\n\nThe orchestration's Execution-API calls per proposal by route, from the api-server's "
                f"access log:\n\n{_table(['route', 'calls per proposal'], routes)}" if routes else "")
    return (f"n = {scenario.get('n', MISSING)} per variant.\n\n{table}{by_route}\n\n"
            f"![Latency per variant]({LATENCY_PNG})")


BURST_HEADER = ["wall time", "per minute", "first completion", "latency p50", "latency p95", "CPU per proposal",
                "peak memory", "states", "failed"]


def _burst_cells(run: dict[str, Any]) -> list[str]:
    latency = run.get("latency") or {}
    return [
        _show(run.get("wall_s"), _seconds),
        _show(run.get("per_min"), _rate),
        _show(run.get("first_completion_s"), _seconds),
        _show(latency.get("p50"), _seconds),
        _show(latency.get("p95"), _seconds),
        _show(run.get("cpu_s_per_proposal"), _seconds),
        _show(run.get("peak_mem_mb"), _megabytes),
        _show(run.get("states"), _states),
        _show(run.get("failed"), _count),
    ]


def _burst(scenario: dict[str, Any]) -> str:
    rows = []
    for name, variant in _variants(scenario, BURST_VARIANTS):
        if problem := _absence(variant):
            rows.append([name, problem, *[""] * len(BURST_HEADER)])
            continue
        rows.append([name, variant.get("label"), *_burst_cells(variant)])
    table = _table(["variant", "DAG", *BURST_HEADER], rows)
    return (f"n = {scenario.get('n', MISSING)} proposals at once. First completion: the first run queued → the "
            "first run ended; latency: each run's own queued_at → end_date (queue included).\n\n"
            f"{table}\n\n{_cpu_split(scenario)}![Completions in the burst]({BURST_PNG})")


def _max_running(scenario: dict[str, Any]) -> str:
    """One burst per value of max_running_proposals, each on a fresh stack."""
    rows = []
    for value, run in (scenario.get("values") or {}).items():
        if problem := _absence(run):
            rows.append([value, problem, *[""] * len(BURST_HEADER)])
            continue
        rows.append([value, _show(run.get("max_active_runs"), _count), *_burst_cells(run)])
    if not rows:
        return "No values measured."
    table = _table(["max_running_proposals", "DAG's max_active_runs", *BURST_HEADER], rows)
    return (f"n = {scenario.get('n', MISSING)} proposals at once, on a fresh stack per value (three proposals "
            f"first, to warm it).\n\n{table}\n\n![Completions per max_running_proposals]({MAX_RUNNING_PNG})")


def _cpu_split(scenario: dict[str, Any]) -> str:
    """Where the burst's CPU went, per component and per proposal: the profile behind the totals."""
    splits = {name: (v["cpu_s_by_component"], len(v.get("completions") or []) or 1)
              for name, v in _variants(scenario, BURST_VARIANTS) if v and "cpu_s_by_component" in v}
    if not splits:
        return ""
    components = list(dict.fromkeys(c for split, _ in splits.values() for c in split))
    rows = [[c, *(_show(split.get(c, 0.0) / n, _seconds) for split, n in splits.values())] for c in components]
    return "CPU-seconds per proposal, by component:\n\n" + _table(["component", *splits], rows) + "\n\n"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:,.0f} s"


def _megabytes(value: float) -> str:
    return f"{value:,.0f} MB"


def _rate(value: float) -> str:
    return f"{value:,.1f}"


def _count(value: int) -> str:
    return f"{value:,}"


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{state} {count:,}" for state, count in states.items())


def _ratio(value: float) -> str:
    return f"{value:.2f} ×"


def _split(split: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in split.items())


def _per_second(value: float) -> str:
    return f"{value:,.2f}/s"


def _calls(window: dict[str, Any]) -> str:
    routes = ", ".join(f"{route} {calls:,}" for route, calls in (window.get("by_route") or {}).items())
    return f"{window.get('calls', 0):,} in {window.get('seconds', 0):.0f} s ({routes or 'none'})"


# The single-measurement scenarios: field -> (what it is, how to show it).
PRIORITY_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "seconds": ("the high-priority proposal: queued_at → end_date", _seconds),
    "queued_s": ("… of which waiting to start (queued_at → start_date)", _seconds),
    "state": ("its run's state", str),
    "burst": ("burst it went into", _count),
    "ended_before": ("burst proposals ended before it was submitted", _count),
    "queued_ahead": ("burst proposals waiting to start when it was submitted", _count),
    "burst_ended_meanwhile": ("burst proposals that ended while it ran", _count),
}
PARKED_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "parked": ("proposals parked in review", _count),
    "ordinary": ("ordinary proposals run meanwhile", _count),
    "slots_held": ("worker slots held by parked proposals", _count),
    "triggers_held": ("triggers held by parked proposals (deferred tasks)", _count),
    "gate_states": ("still parked after the ordinary ones ran", _states),
    "extra_mem_mb": ("extra memory", _megabytes),
    "parking_s": ("time to park (first queued → last parked run ended)", _seconds),
    "parking_per_min": ("parked per minute", _rate),
    "parking_cpu_s_per_proposal": ("CPU-seconds per parked proposal (whole stack, while parking)", _seconds),
    "hms_per_s_idle": ("HMS requests while parked, nothing else running", _per_second),
    "hms_calls_idle": ("… counted by the backend", _calls),
    "idle_cpu_s_by_component": ("CPU-seconds of the stack in that quiet spell, by component", _split),
    "hms_per_s_beside": ("HMS requests while the ordinary ones ran", _per_second),
    "feed_per_s_beside": ("… of which the review watcher's feed (GET /gov/decisions)", _per_second),
    "hms_calls_beside": ("… counted by the backend", _calls),
    "per_min": ("ordinary proposals per minute", _rate),
    "first_completion_s": ("first ordinary proposal ended after", _seconds),
    "burst_per_min_same_n": ("the burst's rate over its first as many proposals", _rate),
    "vs_burst": ("throughput relative to the burst (same number of proposals)", _ratio),
    "vs_whole_burst": ("… relative to the whole burst (as the previous design's 59 % was computed)", _ratio),
}
SWEEP_DRAIN_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "queued": ("proposals queued in the backlog", _count),
    "runs": ("runs started by the sweep", _count),
    "duplicates": ("duplicate runs", _count),
    "pending_left": ("proposals left pending", _count),
    "sweeps": ("sweeps", _count),
    "seconds": ("first sweep queued → last run created", _seconds),
    "per_min": ("proposals per minute", _rate),
}


def _facts(scenario: dict[str, Any], fields: dict[str, tuple[str, Callable[[Any], str]]]) -> str:
    rows = [[label, _show(scenario.get(key), fmt)] for key, (label, fmt) in fields.items()]
    rows += [[key, _show(value, str)] for key, value in scenario.items() if key not in fields]
    return _table(["measure", "value"], rows)


BUDGET_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "n": ("proposals at once", _count),
    "per_second": ("policy budget (calls a second)", _count),
    "burst": ("… its burst", _count),
    "max_per_second": ("most policy calls the backend received in any one-second window", _count),
    "bound": ("design.md §10's bound: the rate with 5 % to spare, plus the burst once", _count),
    "side_effects": ("policies applied", _count),
    "policy_calls": ("policy calls", _count),
    "succeeded": ("runs that succeeded", _count),
    "wall_s": ("first queued → last ended", _seconds),
    "limiter": ("the limiter's time per call, not binding (one reservation)",
                lambda v: f"p50 {v['p50_ms']:.2f} ms, p95 {v['p95_ms']:.2f} ms over {v['n']}"),
    "per_min": ("proposals per minute", _rate),
}


def _budget(scenario: dict[str, Any]) -> str:
    shown = {key: value for key, value in scenario.items() if key != "calls_each_second"}
    return f"{_facts(shown, BUDGET_FIELDS)}\n\n![Calls each second under the policy budget]({BUDGET_PNG})"


CAPABILITY_VARIANTS = ("all_in", "several_targets", "governance_checks_off", "rate_budgets_off")
CAPABILITY_LABELS = {"all_in": "all in (one target; the burst and latency above)",
                     "several_targets": "3 scopes × 4 groups, same stack",
                     "governance_checks_off": "no check before each step (own stack)",
                     "rate_budgets_off": "no rate budgets (own stack)"}


def _capabilities(scenario: dict[str, Any]) -> str:
    rows = []
    for name, variant in _variants(scenario, CAPABILITY_VARIANTS):
        label = CAPABILITY_LABELS.get(name, name)
        if problem := _absence(variant):
            rows.append([label, problem, "", "", ""])
            continue
        latency, burst = variant.get("latency") or {}, variant.get("burst") or {}
        rows.append([label, _show(latency.get("p50"), _seconds), _show(burst.get("per_min"), _rate),
                     _show(burst.get("first_completion_s"), _seconds),
                     _show(burst.get("cpu_s_per_proposal"), _seconds)])
    return ("Each capability's price: the same latency and burst with it and without it, in this run.\n\n"
            + _table(["variant", "latency p50", "burst per minute", "first completion", "CPU-s per proposal"], rows))


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "latency": ("Latency", _latency),
    "burst": ("Burst", _burst),
    "priority": ("A high-priority proposal into a burst", lambda s: _facts(s, PRIORITY_FIELDS)),
    "parked": ("Parked proposals", lambda s: _facts(s, PARKED_FIELDS)),
    "sweep_drain": ("Backlog sweep drain", lambda s: _facts(s, SWEEP_DRAIN_FIELDS)),
    "budget": ("A burst under a binding rate budget", _budget),
    "capabilities": ("Capabilities, each one's price", _capabilities),
    "max_running": ("Running proposals at once (`max_running_proposals`)", _max_running),
}


def _settings(settings: dict[str, dict[str, str]] | None, max_running: int | None = None) -> str:
    product = (settings or {}).get("orchestration") or {}
    naive = (settings or {}).get("naive") or {}
    if not product and not naive:
        return "Not recorded."
    rows = [[f"`{key}`", product.get(key, "default"), naive.get(key, "default")] for key in sorted({*product, *naive})]
    table = _table(["setting", "product (orchestration)", "naive baseline"], rows)
    if max_running is not None:
        table += f"\n\nThe proposal DAG's `max_active_runs` as the stack parsed it: {max_running}."
    return table


def _scenario_absence(scenario: dict[str, Any] | None) -> str | None:
    if scenario is None:
        return "Not run."
    if "error" in scenario:
        # A block keeps a traceback readable.
        return f"Failed:\n\n```\n{scenario['error']}\n```"
    return None


def _absence(part: dict[str, Any] | None) -> str | None:
    """Why a scenario or variant has no numbers, or None when it has them."""
    if part is None:
        return NOT_RUN
    if "error" in part:
        return f"failed: {part['error']}"
    return None


def _variants(scenario: dict[str, Any] | None, expected: Iterable[str]) -> list[tuple[str, dict[str, Any] | None]]:
    found = (scenario or {}).get("variants") or {}
    names = [*expected]
    names += [name for name in found if name not in names]
    return [(name, found.get(name)) for name in names]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(_cell(c) for c in line) + " |" for line in lines)


def _cell(value: Any) -> str:
    # Error messages can hold pipes and tracebacks; either would break the table.
    return " ".join(str(MISSING if value is None else value).split()).replace("|", "\\|")


def _show(value: Any, fmt: Callable[[Any], str]) -> str:
    if value is None:
        return MISSING
    try:
        return fmt(value)
    except (TypeError, ValueError):
        # The runner is written separately: a field of an unexpected type shows as it is.
        return str(value)


# -- plots ------------------------------------------------------------------------------------------


def plot_latency(scenario: dict[str, Any] | None, path: Path) -> Path:
    """Durations per variant: a box (median at the runner's p50) over the individual runs."""
    fig = _figure()
    ax = fig.add_subplot()
    variants = [(name, v) for name, v in _variants(scenario, LATENCY_VARIANTS) if v and v.get("durations")]
    if not variants:
        return _placeholder(fig, ax, "Latency", scenario, path)
    durations = [v["durations"] for _, v in variants]
    ax.boxplot(
        durations,
        tick_labels=[f"{name}\n{v.get('label', '')}" for name, v in variants],
        usermedians=[v.get("p50") for _, v in variants],
        showfliers=False,  # every run is drawn as a point below
        widths=0.5,
    )
    jitter = random.Random(0)  # the same picture for the same results
    for position, (_, variant) in enumerate(variants, start=1):
        runs = variant["durations"]
        ax.scatter([position + jitter.uniform(-0.15, 0.15) for _ in runs], runs, s=10, alpha=0.5, zorder=3)
        if variant.get("p50") is not None:
            ax.annotate(f"p50 {variant['p50']:.2f} s", (position + 0.28, variant["p50"]), va="center", fontsize=8)
    # Variants differ by orders of magnitude (a direct call against a whole DAG run).
    if min(min(runs) for runs in durations) > 0:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda seconds, _: f"{seconds:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("duration (s)")
    ax.set_title(f"Latency per variant (n = {(scenario or {}).get('n', MISSING)})")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.savefig(path)
    return path


def plot_burst(scenario: dict[str, Any] | None, path: Path) -> Path:
    """Cumulative terminal proposals against seconds since the burst started, one line per variant."""
    runs = [(name, v) for name, v in _variants(scenario, BURST_VARIANTS) if v and v.get("completions")]
    return _plot_completions(runs, scenario, path, "Completions in the burst")


def plot_budget(scenario: dict[str, Any] | None, path: Path) -> Path:
    """Calls each second per service under the policy budget, with the budget's rate and bound."""
    title = "Calls each second under a policy budget"
    fig = _figure()
    ax = fig.add_subplot()
    bars = (scenario or {}).get("calls_each_second") or {}
    if not any(bars.values()):
        return _placeholder(fig, ax, title, scenario, path)
    for offset, (service, counts) in enumerate(bars.items()):
        ax.bar([second + offset * 0.4 for second in range(len(counts))], counts, width=0.4, align="edge",
               label=f"{service}: {sum(counts)} calls")
    rate, bound = scenario["per_second"], scenario["bound"]
    ax.axhline(rate, linestyle="--", color="grey", label=f"policy budget {rate}/s")
    ax.axhline(bound, linestyle=":", color="red", label=f"bound {bound:.2f} (rate + 5 % + burst)")
    ax.set_xlabel("seconds since the first call")
    ax.set_ylabel("calls in that second")
    ax.set_title(f"{title}: {scenario.get('n')} proposals, budget {rate}/s, burst {scenario['burst']}")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper right")
    fig.savefig(path)
    return path


def plot_max_running(scenario: dict[str, Any] | None, path: Path) -> Path:
    """The same, one line per value of max_running_proposals."""
    runs = [(f"max_running_proposals {value}", v) for value, v in ((scenario or {}).get("values") or {}).items()
            if v and v.get("completions")]
    return _plot_completions(runs, scenario, path, "Completions per max_running_proposals")


def _plot_completions(runs: list[tuple[str, dict[str, Any]]], scenario: dict[str, Any] | None, path: Path,
                      title: str) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    if not runs:
        return _placeholder(fig, ax, title, scenario, path)
    for name, run in runs:
        times = sorted(run["completions"])
        rate = f": {run['per_min']:.0f} per minute" if run.get("per_min") is not None else ""
        first = f", first after {times[0]:.0f} s"
        ax.step([0, *times], range(len(times) + 1), where="post", label=f"{name}{rate}{first}")
    if (n := scenario.get("n")) is not None:
        ax.axhline(n, linestyle=":", color="grey", label=f"n = {n}")
    ax.set_xlabel("seconds since the burst started")
    ax.set_ylabel("terminal proposals")
    ax.set_title(title)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path)
    return path


def _figure() -> Figure:
    # No pyplot: an Agg canvas draws the PNG without a display and without pyplot's global figures.
    fig = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _placeholder(fig: Figure, ax: Axes, title: str, scenario: dict[str, Any] | None, path: Path) -> Path:
    # Written anyway, so that a plot from an earlier run in the same folder is not taken for this one.
    ax.set_axis_off()
    reason = _absence(scenario) or "no data"
    text = textwrap.fill(textwrap.shorten(f"{title}: {reason}", 400), 80)  # a traceback would not fit
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    fig.savefig(path)
    return path


# -- command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hms_bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results.json written by the benchmark")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    for path in render(results, args.results.parent):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
