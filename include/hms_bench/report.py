"""The benchmark's report: `results.md` (targets, one table per scenario, settings) and two plots.

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
BURST_PNG = "burst.png"

# The variants each scenario is meant to have, in the order the tables show them; a missing one
# gets a "not run" row instead of silently disappearing.
LATENCY_VARIANTS = ("orchestration", "floor", "naive", "direct")
BURST_VARIANTS = ("orchestration", "naive")

NOT_RUN = "not run"
MISSING = "—"

Results = dict[str, Any]


def render(results: Results, out_dir: Path) -> list[Path]:
    """Write results.md, latency.png and burst.png into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenarios = results.get("scenarios") or {}
    report = out_dir / RESULTS_MD
    report.write_text(markdown(results), encoding="utf-8")
    latency = plot_latency(scenarios.get("latency"), out_dir / LATENCY_PNG)
    burst = plot_burst(scenarios.get("burst"), out_dir / BURST_PNG)
    return [report, latency, burst]


# -- Markdown ---------------------------------------------------------------------------------------


def markdown(results: Results) -> str:
    meta = results.get("meta") or {}
    scenarios = results.get("scenarios") or {}
    parts = ["# HMS Management Layer benchmark", _header(meta), "## Targets", _targets(results.get("targets"))]
    for key, (title, section) in SECTIONS.items():
        parts += [f"## {title}", _scenario_absence(scenarios.get(key)) or section(scenarios[key])]
    # Scenarios this report does not know yet still show, as plain facts.
    for key, scenario in scenarios.items():
        if key not in SECTIONS:
            parts += [f"## {key}", _scenario_absence(scenario) or _facts(scenario, {})]
    parts += ["## Non-default Airflow settings", _settings(meta.get("settings"))]
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


def _targets(targets: list[dict[str, Any]] | None) -> str:
    if not targets:
        return "No targets recorded."
    rows = [[t.get("name"), t.get("goal"), t.get("measured"), _mark(t.get("met"))] for t in targets]
    return _table(["target", "goal", "measured", "met"], rows)


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
            ]
        )
    table = _table(["variant", "DAG", "runs", "p50", "p95", "mean"], rows)
    return f"n = {scenario.get('n', MISSING)} per variant.\n\n{table}\n\n![Latency per variant]({LATENCY_PNG})"


def _burst(scenario: dict[str, Any]) -> str:
    rows = []
    for name, variant in _variants(scenario, BURST_VARIANTS):
        if problem := _absence(variant):
            rows.append([name, problem, "", "", "", "", "", ""])
            continue
        rows.append(
            [
                name,
                variant.get("label"),
                _show(variant.get("wall_s"), _seconds),
                _show(variant.get("per_min"), _rate),
                _show(variant.get("cpu_s_per_proposal"), _seconds),
                _show(variant.get("peak_mem_mb"), _megabytes),
                _show(variant.get("states"), _states),
                _show(variant.get("failed"), _count),
            ]
        )
    header = ["variant", "DAG", "wall time", "per minute", "CPU per proposal", "peak memory", "states", "failed"]
    table = _table(header, rows)
    return (f"n = {scenario.get('n', MISSING)} proposals at once.\n\n{table}\n\n{_cpu_split(scenario)}"
            f"![Completions in the burst]({BURST_PNG})")


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


# The two single-measurement scenarios: field -> (what it is, how to show it).
PARKED_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "parked": ("proposals parked at the governance gate", _count),
    "ordinary": ("ordinary proposals run meanwhile", _count),
    "slots_held": ("worker slots held by parked proposals", _count),
    "gate_states": ("governance gate states", _states),
    "extra_mem_mb": ("extra memory", _megabytes),
    "per_min": ("ordinary proposals per minute", _rate),
    "vs_burst": ("throughput relative to the burst", _ratio),
    "parking_s": ("time to park", _seconds),
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


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "latency": ("Latency", _latency),
    "burst": ("Burst", _burst),
    "parked": ("Parked proposals", lambda s: _facts(s, PARKED_FIELDS)),
    "sweep_drain": ("Backlog sweep drain", lambda s: _facts(s, SWEEP_DRAIN_FIELDS)),
}


def _settings(settings: dict[str, dict[str, str]] | None) -> str:
    product = (settings or {}).get("orchestration") or {}
    naive = (settings or {}).get("naive") or {}
    if not product and not naive:
        return "Not recorded."
    rows = [[f"`{key}`", product.get(key, "default"), naive.get(key, "default")] for key in sorted({*product, *naive})]
    return _table(["setting", "product (orchestration)", "naive baseline"], rows)


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
    fig = _figure()
    ax = fig.add_subplot()
    variants = [(name, v) for name, v in _variants(scenario, BURST_VARIANTS) if v and v.get("completions")]
    if not variants:
        return _placeholder(fig, ax, "Burst", scenario, path)
    for name, variant in variants:
        times = sorted(variant["completions"])
        rate = f": {variant['per_min']:.0f} per minute" if variant.get("per_min") is not None else ""
        ax.step([0, *times], range(len(times) + 1), where="post", label=f"{name}{rate}")
    if (n := scenario.get("n")) is not None:
        ax.axhline(n, linestyle=":", color="grey", label=f"n = {n}")
    ax.set_xlabel("seconds since the burst started")
    ax.set_ylabel("terminal proposals")
    ax.set_title("Completions in the burst")
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
