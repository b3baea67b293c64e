"""The benchmark report: results.md and the two plots, from full results and from partial ones."""

from __future__ import annotations

import json
from typing import Any

from hms_bench.report import (
    BUDGET_PNG,
    BURST_PNG,
    LATENCY_PNG,
    MAX_RUNNING_PNG,
    RESULTS_MD,
    SECTIONS,
    main,
    markdown,
    render,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
P50 = {"orchestration": 2.1, "floor": 1.4, "naive": 3.7, "direct": 0.05}


def latency_variant(label: str, p50: float) -> dict[str, Any]:
    durations = [p50 * (0.8 + 0.4 * i / 29) for i in range(30)]
    return {"label": label, "durations": durations, "p50": p50, "p95": p50 * 1.2, "mean": p50 * 1.01}


def burst_variant(label: str, per_min: float, first_completion_s: float = 4.5) -> dict[str, Any]:
    completions = [first_completion_s + i * 60 / per_min for i in range(500)]
    return {
        "label": label,
        "wall_s": completions[-1],
        "per_min": per_min,
        "first_completion_s": first_completion_s,
        "latency": {"p50": 12.5, "p95": 21.25, "mean": 13.0},
        "cpu_s_per_proposal": 0.8,
        "peak_mem_mb": 2100.0,
        "states": {"success": 500},
        "failed": 0,
        "completions": completions,
    }


# max_running_proposals → (per minute, first completion); the DAG's max_active_runs as parsed.
MAX_RUNNING = {"8": (118.0, 3.25), "24": (131.0, 6.75), "48": (126.0, 17.5)}


def full_results() -> dict[str, Any]:
    return {
        "meta": {
            "started": "2026-11-27T13:00:00+00:00",
            "finished": "2026-11-27T13:40:00+00:00",
            "quick": False,
            "before": "the previous design, make bench of commit bbc421f",
            "max_running_proposals": 24,
            "machine": {"cpus": 2, "memory_gib": 23.4, "python": "3.11.9", "platform": "Linux-6.8-x86_64"},
            "versions": {"apache-airflow": "3.3.2", "apache-airflow-providers-http": "6.3.0", "commit": "abc1234"},
            "settings": {
                "orchestration": {"scheduler.scheduler_idle_sleep_time": "0.05", "core.parallelism": "64"},
                "naive": {"core.parallelism": "32"},
            },
        },
        "targets": [
            {"name": "p50 latency", "goal": "≤ 1.2 s", "before": "1.16–1.34 s", "measured": "1.10 s", "met": True},
            {"name": "burst throughput", "goal": "≥ 130/min", "before": "103–110/min", "measured": "125/min",
             "met": False},
        ],
        "scenarios": {
            "latency": {
                "n": 30,
                "variants": {name: latency_variant(f"{name}_dag", p50) for name, p50 in P50.items()},
            },
            "burst": {
                "n": 500,
                "variants": {
                    "orchestration": burst_variant("proposal_orchestration", 125.0),
                    "naive": burst_variant("naive_orchestration", 60.0),
                },
            },
            "priority": {
                "burst": 500,
                "ended_before": 52,
                "queued_ahead": 424,
                "state": "success",
                "seconds": 7.75,
                "queued_s": 1.5,
                "burst_ended_meanwhile": 17,
            },
            "parked": {
                "parked": 1000,
                "ordinary": 200,
                "slots_held": 0,
                "triggers_held": 0,
                "gate_states": {"parked": 1000},
                "extra_mem_mb": 120.0,
                "parking_s": 300.0,
                "parking_per_min": 200.0,
                "parking_cpu_s_per_proposal": 0.31,
                "hms_per_s_idle": 0.517,
                "hms_calls_idle": {"seconds": 60.0, "calls": 31, "per_s": 0.517,
                                   "by_route": {"GET /gov/decisions": 31}},
                "idle_cpu_s_by_component": {"scheduler": 15.5, "postgres": 4.8, "triggerer": 0.9},
                "hms_per_s_beside": 9.25,
                "feed_per_s_beside": 0.5,
                "hms_calls_beside": {"seconds": 100.0, "calls": 925, "per_s": 9.25,
                                     "by_route": {"GET /gov/decisions": 50, "POST /svc/policy": 200}},
                "per_min": 110.0,
                "first_completion_s": 5.0,
                "burst_per_min_same_n": 125.0,
                "vs_burst": 0.88,
                "vs_whole_burst": 0.85,
            },
            "sweep_drain": {"queued": 5000, "runs": 5000, "duplicates": 0, "seconds": 150.0, "per_min": 2000.0},
            "budget": {"n": 200, "per_second": 5, "burst": 5, "bound": 10.25, "max_per_second": 6,
                       "side_effects": 200, "policy_calls": 200, "succeeded": 200, "per_min": 290.0,
                       "calls_each_second": {"policy": [5] * 40, "notifications": [4, 6] * 20}},
            "max_running": {
                "n": 500,
                "values": {value: {"max_active_runs": int(value),
                                   **burst_variant("proposal_orchestration", per_min, first)}
                           for value, (per_min, first) in MAX_RUNNING.items()},
            },
        },
    }


def row(report: str, first_cell: str) -> str:
    return next(line for line in report.splitlines() if line.startswith(f"| {first_cell} |"))


def test_a_full_run_renders_the_report_and_every_plot_into_the_folder(tmp_path):
    written = render(full_results(), tmp_path / "bench")

    assert [p.name for p in written] == [RESULTS_MD, LATENCY_PNG, BURST_PNG, MAX_RUNNING_PNG, BUDGET_PNG]
    assert all(p.parent == tmp_path / "bench" for p in written)
    for plot in written[1:]:
        assert plot.read_bytes().startswith(PNG_MAGIC)
        assert plot.stat().st_size > 20_000, f"{plot.name} looks empty"


def test_the_report_shows_each_latency_variants_p50():
    report = markdown(full_results())

    for variant, p50 in P50.items():
        assert f"{p50:.2f} s" in row(report, variant)


def test_the_report_marks_targets_met_and_missed_beside_the_previous_designs_figure():
    report = markdown(full_results())

    assert row(report, "p50 latency") == "| p50 latency | ≤ 1.2 s | 1.16–1.34 s | 1.10 s | ✅ |"
    assert row(report, "burst throughput").endswith("| 103–110/min | 125/min | ❌ |")
    assert "Before: the previous design, make bench of commit bbc421f" in report


def test_the_burst_row_shows_first_completion_and_each_proposals_latency():
    burst = markdown(full_results()).split("## Burst", 1)[1]

    cells = row(burst, "orchestration").split(" | ")

    # wall time (4.5 s + 499 completions 0.48 s apart), per minute, first completion, latency p50, p95
    assert cells[2:7] == ["244 s", "125.0", "4.50 s", "12.50 s", "21.25 s"]


def test_the_priority_section_shows_the_high_priority_proposals_time_and_the_queue_it_jumped():
    report = markdown(full_results())

    assert row(report, "the high-priority proposal: queued_at → end_date") == (
        "| the high-priority proposal: queued_at → end_date | 7.75 s |")
    assert row(report, "burst proposals waiting to start when it was submitted").endswith("| 424 |")


def test_the_parked_section_shows_the_hms_requests_the_backend_counted():
    report = markdown(full_results())

    assert row(report, "HMS requests while parked, nothing else running").endswith("| 0.52/s |")
    idle = report.split("| … counted by the backend |", 1)[1].splitlines()[0]
    assert idle == " 31 in 60 s (GET /gov/decisions 31) |"
    assert row(report, "… of which the review watcher's feed (GET /gov/decisions)").endswith("| 0.50/s |")
    assert row(report, "CPU-seconds of the stack in that quiet spell, by component").endswith(
        "| scheduler 15.5, postgres 4.8, triggerer 0.9 |")


def test_the_max_running_section_has_a_row_per_value_with_what_the_dag_parsed():
    report = markdown(full_results())
    section = report.split("## Running proposals at once", 1)[1]

    for value, (per_min, first) in MAX_RUNNING.items():
        cells = row(section, value).split(" | ")
        assert cells[1] == value  # the DAG's max_active_runs
        assert cells[3:5] == [f"{per_min:.1f}", f"{first:.2f} s"]
    assert f"]({MAX_RUNNING_PNG})" in report
    assert "`max_active_runs` as the stack parsed it: 24" in report


def test_the_report_says_when_where_and_on_what_it_ran_and_links_the_plots():
    report = markdown(full_results())

    header = report.splitlines()[2]
    facts = ("2026-11-27 13:00", "40 min", "2 CPUs", "23.4 GiB", "Python 3.11.9", "apache-airflow 3.3.2", "abc1234")
    assert all(fact in header for fact in facts), header
    assert f"]({LATENCY_PNG})" in report
    assert f"]({BURST_PNG})" in report


def test_the_report_lists_both_stacks_non_default_settings_side_by_side():
    report = markdown(full_results())

    assert row(report, "`core.parallelism`") == "| `core.parallelism` | 64 | 32 |"
    assert row(report, "`scheduler.scheduler_idle_sleep_time`") == (
        "| `scheduler.scheduler_idle_sleep_time` | 0.05 | default |"
    )


def test_missing_and_failed_scenarios_still_render_and_say_so(tmp_path):
    results = full_results()
    results["meta"]["quick"] = True
    results["scenarios"] = {"burst": {"error": "the stack did not start | port 8080 in use"}}

    written = render(results, tmp_path)

    report = written[0].read_text(encoding="utf-8")
    assert "quick run" in report
    assert "the stack did not start | port 8080 in use" in report
    for title in ("## Latency", "## A high-priority proposal into a burst", "## Parked proposals",
                  "## Backlog sweep drain", "## Running proposals at once (`max_running_proposals`)"):
        assert report.split(title, 1)[1].lstrip().startswith("Not run.")
    # The plots are still written (replacing any from an earlier run) and say why they are empty.
    assert all(p.exists() and p.read_bytes().startswith(PNG_MAGIC) for p in written[1:])


def test_a_missing_or_failed_variant_gets_its_row():
    results = full_results()
    latency = results["scenarios"]["latency"]["variants"]
    del latency["floor"]
    latency["naive"] = {"error": "naive DAG import error"}

    report = markdown(results)

    assert "not run" in row(report, "floor")
    assert "naive DAG import error" in row(report, "naive")
    assert "2.10 s" in row(report, "orchestration")


def test_an_empty_results_dict_still_renders(tmp_path):
    written = render({}, tmp_path)

    report = written[0].read_text(encoding="utf-8")
    assert "No targets recorded." in report
    assert report.count("Not run.") == len(SECTIONS)  # one per scenario


def test_each_capabilitys_price_is_shown_and_judged_against_the_same_run_without_it():
    from hms_bench.__main__ import targets

    results = full_results()
    scenarios = results["scenarios"]
    all_in = scenarios["burst"]["variants"]["orchestration"]  # 0.8 CPU-s per proposal
    scenarios["capabilities"] = {"variants": {
        "all_in": {"latency": scenarios["latency"]["variants"]["orchestration"], "burst": all_in},
        "several_targets": {"latency": latency_variant("several", 2.2),
                            "burst": {**all_in, "cpu_s_per_proposal": 0.84}},
        "governance_checks_off": {"latency": latency_variant("off", 2.0),
                                  "burst": {**all_in, "cpu_s_per_proposal": 0.78}},
        "rate_budgets_off": {"error": "the stack did not start"}}}

    report = markdown(results)
    assert "| 3 scopes × 4 groups, same stack | 2.20 s |" in report
    assert "failed: the stack did not start" in row(report, "no rate budgets (own stack)")
    judged = {t["before"]: t for t in targets(scenarios)}
    assert (judged["one target only"]["measured"], judged["one target only"]["met"]) == ("+5.0%", True)
    assert (judged["no check before each step"]["measured"], judged["no check before each step"]["met"]) == \
        ("+2.6%", True)
    assert judged["no rate budgets"]["measured"] is None


def test_the_command_line_renders_again_next_to_the_json(tmp_path, capsys):
    results_json = tmp_path / "run" / "results.json"
    results_json.parent.mkdir()
    results_json.write_text(json.dumps(full_results()), encoding="utf-8")

    assert main([str(results_json)]) == 0

    for name in (RESULTS_MD, LATENCY_PNG, BURST_PNG, MAX_RUNNING_PNG):
        assert (results_json.parent / name).exists()
    assert RESULTS_MD in capsys.readouterr().out


ACCESS_LOG = """\
2026-12-04T14:55:20.618196Z [info ] request finished [http.access] client_addr=127.0.0.1:51794 duration_us=11444 \
method=PATCH path=/execution/task-instances/01a2418d-76c9-7c90-8a74-526b471b2c78/run query= status_code=200
2026-12-04T14:55:20.626507Z [info ] request finished [http.access] client_addr=127.0.0.1:51794 duration_us=4657 \
method=PUT path=/execution/task-instances/01a2418d-76c9-7c90-8a74-526b471b2c78/heartbeat query= status_code=204
2026-12-04T14:55:20.630000Z [info ] request finished [http.access] client_addr=127.0.0.1:51794 duration_us=4657 \
method=GET path=/execution/connections/hms_policy query= status_code=200
2026-12-04T14:55:20.640000Z [info ] request finished [http.access] client_addr=127.0.0.1:51795 duration_us=900 \
method=GET path=/api/v2/dags query= status_code=200
2026-12-04T14:55:21.618196Z [info ] request finished [http.access] client_addr=127.0.0.1:51794 duration_us=11444 \
method=PATCH path=/execution/task-instances/01a2418d-76ca-7c90-8a74-526b471b2c78/run query= status_code=200
"""


def test_execution_api_calls_are_counted_by_route_from_the_api_servers_access_log_since_start(tmp_path):
    from hms_bench.measure import ExecutionApiCalls

    log = tmp_path / "api-server.log"
    log.write_text("method=PATCH path=/execution/task-instances/x/run before the start\n")
    calls = ExecutionApiCalls(log).start()
    with log.open("a") as more:
        more.write(ACCESS_LOG)
    counted = calls.stop()
    assert counted.by_route == {"PATCH /execution/task-instances/{id}/run": 2,
                                "PUT /execution/task-instances/{id}/heartbeat": 1,
                                "GET /execution/connections/{conn_id}": 1}
    assert counted.per(2)["calls_per_proposal"] == 2.0
    # Only the measured runs' task instances: the other one's start is left out.
    assert calls.stop({"01a2418d-76c9-7c90-8a74-526b471b2c78"}).by_route == {
        "PATCH /execution/task-instances/{id}/run": 1, "PUT /execution/task-instances/{id}/heartbeat": 1,
        "GET /execution/connections/{conn_id}": 1}


def test_the_latency_section_lists_execution_api_calls_per_proposal_by_route():
    results = full_results()
    results["scenarios"]["latency"]["variants"]["orchestration"]["execution_api"] = {
        "calls_per_proposal": 15.0, "by_route_per_proposal": {"PATCH /execution/task-instances/{id}/run": 4.0}}
    report = markdown(results)
    assert row(report, "orchestration").endswith("| 15.0 |")
    route = "PATCH /execution/task-instances/{id}/run"
    assert row(report, route) == f"| {route} | 4.0 |"


def test_the_budget_section_shows_the_most_calls_a_second_beside_the_bound():
    report = markdown(full_results())
    assert row(report, "most policy calls the backend received in any one-second window") .endswith("| 6 |")
    assert "![Calls each second under the policy budget](budget.png)" in report
