"""The profile of `python -m hms_bench.profile`: a task process's profiler as the hook installs it
after a fork, what the analysis makes of its files, and the api-server's routes."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from hms_bench import profile, profile_hooks

RUNNER_FILE = "/venv/site-packages/airflow/sdk/execution_time/task_runner.py"
# A task runner in miniature, compiled under the real one's file name so that the analysis finds
# its phases: each phase does some work, execute the most.
RUNNER_SOURCE = '''
def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def get_startup_details():
    return work(2_000)

def startup(msg):
    work(5_000)
    return TI, {}, None

def _execute_task():
    return work(60_000)

def _handle_current_task_success():
    return work(1_000)

def main():
    startup(get_startup_details())
    _execute_task()
    _handle_current_task_success()
'''


@pytest.fixture
def task_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> types.ModuleType:
    """A stand-in for Airflow's task runner, in sys.modules as a worker has it before it forks."""
    module = types.ModuleType(profile_hooks.TASK_RUNNER)
    module.TI = SimpleNamespace(dag_id="proposal_orchestration", task_id="apply_policy", run_id="proposal__p-1",
                                try_number=1)
    exec(compile(RUNNER_SOURCE, RUNNER_FILE, "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, profile_hooks.TASK_RUNNER, module)
    monkeypatch.setenv("HMS_PROFILE_DIR", str(tmp_path))
    return module


def test_a_task_process_is_profiled_only_while_the_window_is_open(task_runner, tmp_path):
    profile_hooks._profile_task_processes()  # in the worker, after its fork
    profile_hooks._profile_task_processes()  # in the task process, forked from it: once is enough
    task_runner.main()
    assert not list(tmp_path.glob("task-*")), "profiled with no window open"

    (tmp_path / profile_hooks.WINDOW).write_text("cpu")
    task_runner.main()

    (meta_file,) = tmp_path.glob("task-*.json")
    meta = json.loads(meta_file.read_text())
    assert (meta["dag_id"], meta["task_id"], meta["clock"]) == ("proposal_orchestration", "apply_policy", "cpu")
    assert meta_file.with_suffix(".prof").exists()


def test_the_analysis_splits_a_step_into_its_phases_largest_where_the_work_is(task_runner, tmp_path):
    (tmp_path / profile_hooks.WINDOW).write_text("cpu")
    profile_hooks._profile_task_processes()
    task_runner.main()
    task_runner.main()

    step = profile.task_processes(tmp_path)["apply_policy"]

    assert step["processes"] == 2
    phases = step["phases_s"]
    assert set(phases) == {label for label, *_ in profile.PHASES} | {profile.REST}
    assert max(phases, key=phases.get) == "execute (the operator's work)"
    assert phases["prepare: render the template fields, store them (rtif)"] == 0  # this runner has none
    assert step["top_own_time"][0]["function"].startswith("work (")


@pytest.mark.parametrize(("method", "path", "route"), [
    ("PATCH", "/execution/task-instances/0190c3d1-97a8-7b3e-9a48-8f6a3c2b1d00/run",
     "PATCH /execution/task-instances/{id}/run"),
    ("GET", "/execution/connections/hms_policy", "GET /execution/connections/{conn_id}"),
    ("GET", "/execution/dag-runs/proposal_orchestration/proposal__p-1/state",
     "GET /execution/dag-runs/{dag_id}/{run_id}/state"),
    ("GET", "/management/proposals/p-1", "/management (ours)"),
    ("POST", "/api/v2/dags/proposal_orchestration/dagRuns", "REST API /api/v2 (the benchmark's triggers and polls)"),
])
def test_an_api_server_request_is_profiled_under_its_route(method, path, route):
    assert profile_hooks.route_of(method, path) == route


def test_the_report_sets_each_step_beside_the_others_and_the_api_server_by_route(task_runner, tmp_path):
    (tmp_path / profile_hooks.WINDOW).write_text("cpu")
    profile_hooks._profile_task_processes()
    task_runner.main()
    (tmp_path / "api-1.json").write_text(json.dumps({"process_cpu_s": 2.0, "by_route": {
        "PATCH /execution/task-instances/{id}/run": {"cpu_s": 1.0, "top": [
            {"function": "solve_dependencies (fastapi/dependencies/utils.py:598)", "self_s": 0.4}]}}}))
    results = {"meta": {"started": "2026-12-04T22:58:10+00:00", "commit": "beca40c", "proposals_per_window": 2},
               "windows": {"orchestration": {"clock": "cpu", "latency": {"p50": 0.93},
                                             "kernel_cpu_s_per_proposal": {"task processes": 0.4},
                                             "task_processes": profile.task_processes(tmp_path),
                                             "api_server": profile.api_server(tmp_path, 2)}}}

    report = profile.markdown(results)

    assert "| phase or part | apply_policy |" in report
    assert "| execute (the operator's work) |" in report
    assert ("| PATCH /execution/task-instances/{id}/run | 0.5000 | "
            "solve_dependencies (fastapi/dependencies/utils.py:598) 200.0 ms |") in report
    assert "commit beca40c" in report
