"""`make bench QUICK=1` end to end: both stacks start and stop, every scenario reports, and the
results are complete and well formed. Timings are the benchmark's to report, never a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hms_bench.__main__ import QUICK_CAPABILITIES_OFF, QUICK_MAX_RUNNING_VALUES
from hms_bench.report import BUDGET_PNG, BURST_PNG, LATENCY_PNG, MAX_RUNNING_PNG, RESULTS_MD
from hms_bench.scenarios import QUICK

pytestmark = [pytest.mark.e2e, pytest.mark.bench]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench-results")
    done = subprocess.run([sys.executable, "-m", "hms_bench", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out, done.stdout


def test_every_scenario_reports_without_error(quick_run):
    results, _, _ = quick_run
    scenarios = results["scenarios"]
    assert set(scenarios) == {"latency", "burst", "priority", "parked", "sweep_drain", "budget", "capabilities",
                              "max_running"}
    assert set(scenarios["latency"]["variants"]) == {"direct", "orchestration", "floor", "naive"}
    assert set(scenarios["burst"]["variants"]) == {"orchestration", "naive"}
    assert set(scenarios["max_running"]["values"]) == {str(v) for v in QUICK_MAX_RUNNING_VALUES}
    capabilities = scenarios["capabilities"]["variants"]
    assert set(capabilities) == {"all_in", "several_targets", *QUICK_CAPABILITIES_OFF}
    parts = [scenarios["priority"], scenarios["parked"], scenarios["sweep_drain"], scenarios["budget"],
             *scenarios["latency"]["variants"].values(), *scenarios["burst"]["variants"].values(),
             *scenarios["max_running"]["values"].values(), *capabilities.values()]
    assert [part["error"] for part in parts if "error" in part] == []


def test_latency_has_one_duration_per_proposal_and_ordered_percentiles(quick_run):
    for variant in quick_run[0]["scenarios"]["latency"]["variants"].values():
        assert len(variant["durations"]) == QUICK.latency
        assert all(d > 0 for d in variant["durations"])
        assert min(variant["durations"]) <= variant["p50"] <= variant["p95"] <= max(variant["durations"])


def test_every_burst_proposal_succeeds_and_resources_are_accounted(quick_run):
    scenarios = quick_run[0]["scenarios"]
    bursts = [(scenarios["burst"]["variants"]["orchestration"], QUICK.burst),
              (scenarios["burst"]["variants"]["naive"], QUICK.naive_burst),
              *((run, QUICK.burst) for run in scenarios["max_running"]["values"].values())]
    for burst, n in bursts:
        assert burst["states"] == {"success": n}
        assert burst["failed"] == 0
        assert len(burst["completions"]) == n
        assert 0 < burst["first_completion_s"] == burst["completions"][0] <= burst["wall_s"]
        assert 0 < burst["latency"]["p50"] <= burst["latency"]["p95"] <= burst["wall_s"]
        assert burst["cpu_s_per_proposal"] > 0 and burst["peak_mem_mb"] > 0
        assert {"api-server", "scheduler", "task processes", "postgres"} <= set(burst["cpu_s_by_component"])


def test_the_max_running_setting_reaches_the_dag_of_each_stack(quick_run):
    results = quick_run[0]
    for value, run in results["scenarios"]["max_running"]["values"].items():
        assert run["max_active_runs"] == int(value)
    assert results["meta"]["max_running_proposals"] == 24  # airflow.cfg's, on the main stack


def test_the_high_priority_proposal_succeeds_inside_the_burst(quick_run):
    priority = quick_run[0]["scenarios"]["priority"]
    assert (priority["burst"], priority["state"]) == (QUICK.burst, "success")
    assert priority["ended_before"] >= QUICK.priority_after
    assert 0 <= priority["queued_s"] <= priority["seconds"]


def test_parked_proposals_hold_nothing_and_sweeps_drain_the_backlog_once(quick_run):
    parked, drain = quick_run[0]["scenarios"]["parked"], quick_run[0]["scenarios"]["sweep_drain"]
    assert (parked["parked"], parked["failed"]) == (QUICK.parked, 0)
    assert (parked["slots_held"], parked["triggers_held"]) == (0, 0)
    assert parked["gate_states"] == {"parked": QUICK.parked}  # still parked after the ordinary ones ran
    assert parked["vs_burst"] > 0 and parked["parking_cpu_s_per_proposal"] > 0
    # The backend counted the quiet spell's requests (the review watcher's polls at least) and the
    # ordinary proposals' own calls: one policy call each.
    assert parked["hms_calls_idle"]["seconds"] >= QUICK.idle and parked["hms_calls_idle"]["calls"] > 0
    assert parked["hms_calls_beside"]["by_route"]["POST /svc/policy"] == QUICK.ordinary
    assert (drain["queued"], drain["runs"]) == (QUICK.backlog, QUICK.backlog)
    assert (drain["duplicates"], drain["pending_left"]) == (0, 0)


def test_the_budget_burst_applies_each_policy_once_within_the_bound_and_counts_each_second(quick_run):
    budget = quick_run[0]["scenarios"]["budget"]
    assert (budget["side_effects"], budget["succeeded"]) == (QUICK.budget, QUICK.budget)
    assert budget["max_per_second"] <= budget["bound"]
    assert sum(budget["calls_each_second"]["policy"]) == QUICK.budget
    assert sum(budget["calls_each_second"]["notifications"]) == QUICK.budget


def test_targets_are_judged_and_the_report_and_plots_are_written(quick_run):
    results, out, stdout = quick_run
    assert len(results["targets"]) == 21
    # The Execution-API calls per proposal, counted in the api-server's access log.
    assert results["scenarios"]["latency"]["variants"]["orchestration"]["execution_api"]["calls_per_proposal"] > 0
    # A quick run switches off one capability (QUICK_CAPABILITIES_OFF): the other one's price is not measured.
    assert [t["name"] for t in results["targets"] if t["measured"] is None] == [
        "rate budgets (not binding): burst throughput vs switched off"]
    assert all(isinstance(t["met"], bool) and t["before"] for t in results["targets"] if t["measured"])
    assert results["meta"]["versions"]["apache-airflow"] == "3.3.2"
    report = (out / RESULTS_MD).read_text()
    assert "## Targets" in report and "naive_proposal" in report
    for png in (LATENCY_PNG, BURST_PNG, MAX_RUNNING_PNG, BUDGET_PNG):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)
    assert "latency: proposal_orchestration" in stdout  # progress is printed as it goes
