"""The operators' metrics as a real Prometheus sees them (docs/metrics.md): Debian's Prometheus scrapes
the live stack's /management/metrics with the metrics token and Airflow's own metrics from its StatsD
bridge, and every value here is read back through Prometheus's query API — after a burst of nine
approved proposals and one denied, the proposals by status agree with /management/counts, each
ending and each step is counted, and a scrape without the token is refused."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from hms_management.domain.outcome import COMPLETED, DENIED, STATUSES
from hms_management.domain.steps import APPLY_POLICY, NOTIFY_OFFICERS
from tests.live_stack import wait_for_status
from tests.prometheus import alert_queries, dashboard_queries, metrics_named

JOB = 'job="hms-management"'


def submit_burst(management, tag: str) -> tuple[list[str], list[str]]:
    approved = [f"metrics-{tag}-{n}" for n in range(9)]
    denied = [f"metrics-{tag}-weekend"]
    for proposal_id in approved:
        management.submit({"id": proposal_id, "rule": {"queue": "foia"}, "day": "Tue"})
    management.submit({"id": denied[0], "rule": {"queue": "foia"}, "day": "Sat"})
    return approved, denied


def test_a_burst_reads_back_through_prometheus(prometheus, management, idle):
    idle()
    prometheus.next_scrape("hms-management")
    before = {
        "completed": prometheus.wait_for(f'hms_proposals{{{JOB},status="{COMPLETED}"}}'),
        "denied": prometheus.wait_for(f'hms_proposals{{{JOB},status="{DENIED}"}}'),
        "ended completed": prometheus.wait_for(f'hms_proposals_ended_total{{{JOB},outcome="{COMPLETED}"}}'),
        "ended denied": prometheus.wait_for(f'hms_proposals_ended_total{{{JOB},outcome="{DENIED}"}}'),
        "policy steps": prometheus.wait_for(f'hms_step_duration_seconds_count{{{JOB},step="{APPLY_POLICY}"}}'),
    }

    approved, denied = submit_burst(management, uuid.uuid4().hex[:6])
    for proposal_id in approved:
        wait_for_status(management, proposal_id, COMPLETED)
    wait_for_status(management, denied[0], DENIED)
    idle()

    assert prometheus.wait_for(f'hms_proposals{{{JOB},status="{COMPLETED}"}}', before["completed"] + 9)
    assert prometheus.wait_for(f'hms_proposals{{{JOB},status="{DENIED}"}}', before["denied"] + 1)
    assert prometheus.wait_for(f'hms_proposals_ended_total{{{JOB},outcome="{COMPLETED}"}}',
                               before["ended completed"] + 9)
    assert prometheus.wait_for(f'hms_proposals_ended_total{{{JOB},outcome="{DENIED}"}}', before["ended denied"] + 1)
    # Each approved proposal's policy step ended once; a denied one never reached it.
    assert prometheus.wait_for(f'hms_step_duration_seconds_count{{{JOB},step="{APPLY_POLICY}"}}',
                               before["policy steps"] + 9)
    # Latency quantiles are there to compute (what the dashboard's p50/p95 panels ask).
    p95 = prometheus.value(f'histogram_quantile(0.95, sum by (le) (hms_step_duration_seconds_bucket{{{JOB},'
                           f'step="{NOTIFY_OFFICERS}"}}))')
    assert p95 is not None and p95 > 0


def test_proposals_by_status_agree_with_the_counts(prometheus, analyst, idle):
    idle()
    for _ in range(5):  # a parked review timing out between the two reads moves a count: read again
        counts = analyst.counts()
        prometheus.next_scrape("hms-management")
        scraped = {entry["metric"]["status"]: float(entry["value"][1])
                   for entry in prometheus.query(f"hms_proposals{{{JOB}}}")}
        if scraped == {status: float(counts[status]) for status in STATUSES}:
            return
        time.sleep(1)
    pytest.fail(f"Prometheus has {scraped}, /management/counts {counts}")


def test_every_part_was_read_and_budgets_and_suspensions_are_there(prometheus):
    assert prometheus.wait_for(f"hms_records_up{{{JOB}}}") == 1
    assert prometheus.wait_for(f"hms_governance_up{{{JOB}}}") == 1
    assert prometheus.wait_for(f'hms_suspension_active{{{JOB},service="policy"}}') == 0
    assert prometheus.wait_for(f'hms_rate_budget_tokens{{{JOB},service="policy"}}') >= 0
    assert prometheus.wait_for(f"hms_review_oldest_age_seconds{{{JOB}}}") >= 0


def test_a_suspension_shows_while_it_lasts(prometheus, hms):
    hms.put("/gov/suspensions/notifications", json={"reason": "metrics test", "by": "ops"}).raise_for_status()
    try:
        assert prometheus.wait_for(f'hms_suspension_active{{{JOB},service="notifications"}}', 1)
    finally:
        hms.delete("/gov/suspensions/notifications").raise_for_status()
    assert prometheus.wait_for(f'hms_suspension_active{{{JOB},service="notifications"}}', 0) == 0


def test_a_scrape_without_the_token_is_refused(prometheus, stack):
    assert prometheus.wait_for('up{job="hms-management-without-token"}') == 0
    assert prometheus.wait_for('up{job="hms-management"}') == 1
    # The same, asked directly: 401 without a token, 403 for an Airflow user who is not an admin.
    assert httpx.get(f"{stack.api_url}/management/metrics").status_code == 401
    analyst = httpx.get(f"{stack.api_url}/management/metrics",
                        headers={"Authorization": f"Bearer {stack.token('analyst')}"})
    assert analyst.status_code == 403


def test_airflows_own_metrics_sit_beside_ours(prometheus):
    """The scheduler's heartbeat and the executor's slots, from Airflow's StatsD through the bridge."""
    assert prometheus.wait_for('up{job="airflow"}') == 1
    assert prometheus.wait_for('airflow_scheduler_heartbeat{job="airflow"}') > 0
    assert prometheus.wait_for('sum(airflow_executor_open_slots{job="airflow"})') >= 0
    assert prometheus.wait_for('count(airflow_pool_open_slots{job="airflow"})') >= 1
    # Every Airflow metric the committed dashboard and alerts ask for is one Airflow sends.
    for name in sorted(metrics_named({**dashboard_queries(), **alert_queries()}, "airflow_")):
        assert prometheus.wait_for(f'count({name}{{job="airflow"}})') >= 1, name
