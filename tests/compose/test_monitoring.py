"""docker-compose's monitoring, held to docs/metrics.md without a Docker engine: Prometheus scrapes the
api-server's /management/metrics with the metrics token from a compose secret (the api-server checks
the same secret) and Airflow's metrics through statsd-exporter; its committed config and alerts pass
Prometheus's own `promtool`; Grafana gets its password from the env file, its data source and the
dashboard by provisioning; the dashboard is valid JSON whose every query is valid PromQL naming
metrics that GET /management/metrics really exports (checked against a scrape of a real records
database; Airflow's names are checked against a live Airflow in tests/e2e/test_metrics.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from hms_management.domain.metrics import METRICS_TOKEN_FILE_ENV
from tests.compose.test_docker_compose import ROOT
from tests.prometheus import ALERTS, DASHBOARD, alert_queries, dashboard_queries, metrics_named

PROMETHEUS_CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "config" / "grafana"
PROMTOOL = "/usr/bin/promtool"
TOKEN_SECRET = "/run/secrets/hms_metrics_token"
# What the issue asks the dashboard to show, each in some panel's title.
PANELS = ("Proposals by status", "Throughput", "p50", "p95", "Oldest review", "Rate budgets", "Suspensions")


@pytest.fixture(scope="module")
def promtool() -> str:
    if not Path(PROMTOOL).exists():
        pytest.fail(f"{PROMTOOL} is missing: `make prometheus` installs Debian's Prometheus (promtool comes with it)")
    return PROMTOOL


def mounts(service: dict) -> dict[str, str]:
    """target → source of a service's bind mounts and volumes."""
    return {volume["target"]: str(volume["source"]) for volume in service.get("volumes", [])}


def test_prometheus_and_grafana_publish_on_loopback_only(services):
    for name, port in (("prometheus", 9090), ("grafana", 3000)):
        assert [(p["host_ip"], p["target"]) for p in services[name]["ports"]] == [("127.0.0.1", port)], name


def test_prometheus_scrapes_the_management_metrics_with_the_token_of_a_compose_secret(services):
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    hms = jobs["hms-management"]

    assert hms["metrics_path"] == "/management/metrics"
    assert hms["static_configs"] == [{"targets": ["api-server:8080"]}]
    assert hms["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_SECRET}
    # The same secret at both ends, and no token in any file.
    prometheus, api_server = services["prometheus"], services["api-server"]
    assert [s["source"] for s in prometheus["secrets"]] == ["hms_metrics_token"]
    assert "hms_metrics_token" in [s["source"] for s in api_server["secrets"]]
    assert api_server["environment"][METRICS_TOKEN_FILE_ENV] == TOKEN_SECRET
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"] == str(PROMETHEUS_CONFIG)
    assert mounts(prometheus)["/etc/prometheus/alerts.yml"] == str(ALERTS)
    # Airflow's metrics: every component sends StatsD to statsd-exporter, which Prometheus scrapes.
    assert jobs["airflow"]["static_configs"] == [{"targets": ["statsd-exporter:9102"]}]
    for name in ("api-server", "scheduler", "worker", "triggerer", "dag-processor"):
        environment = services[name]["environment"]
        assert (environment["AIRFLOW__METRICS__STATSD_ON"], environment["AIRFLOW__METRICS__STATSD_HOST"],
                environment["AIRFLOW__METRICS__STATSD_PORT"]) == ("True", "statsd-exporter", "9125"), name


def test_promtool_accepts_the_committed_config_and_alerts(promtool, tmp_path):
    # As mounted in the container: the rule file and the token file where the config names them.
    (tmp_path / "token").write_text("not-a-real-token")
    text = PROMETHEUS_CONFIG.read_text().replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(text.replace(TOKEN_SECRET, str(tmp_path / "token")))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")

    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "9 rules found" in checked.stdout or "rules found" in checked.stdout


def test_grafana_has_its_password_from_the_env_file_and_its_dashboard_by_provisioning(services):
    grafana = services["grafana"]

    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "value-of-grafana_admin_password"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert mounts(grafana)["/etc/grafana/provisioning"] == str(GRAFANA / "provisioning")
    assert mounts(grafana)["/var/lib/grafana/dashboards"] == str(GRAFANA / "dashboards")
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "hms.yml").read_text())["providers"]
    assert [(s["type"], s["url"]) for s in source] == [("prometheus", "http://prometheus:9090")]
    assert provider[0]["options"]["path"] == "/var/lib/grafana/dashboards"
    # Every panel asks that data source.
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {panel["datasource"]["uid"] for panel in panels} == {source[0]["uid"]}


def test_the_dashboard_shows_what_operators_need(promtool, tmp_path):
    titles = " | ".join(panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"])
    assert [wanted for wanted in PANELS if wanted.lower() not in titles.lower()] == []

    # Valid PromQL: each query as a recording rule, which promtool parses.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query_{n}", "expr": expr}
                                                        for n, expr in enumerate(dashboard_queries().values())]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_query_of_the_dashboard_and_alerts_names_a_metric_we_export(proposal_records, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    from hms_management.api import desk
    from hms_management.api.metrics import scrape
    from hms_management.records.budgets import Budgets
    from hms_management.records.store import Admission

    # A record in review, so that the review figures are exported too; a rate budget; governance answering.
    monkeypatch.setattr(desk, "suspensions", lambda: desk.Suspensions([]))
    Budgets(proposal_records.engine).seed({"policy": (5.0, 3)}, by="test")
    now = datetime.now(UTC)
    proposal_records.admit(Admission.of({"id": "r-1", "rule": "r"}, run_id="proposal__r-1", triggered_by="agent",
                                        submitted_at=now))
    proposal_records.change("r-1", run_state="running", decision={
        "status": "review", "decision_id": "d", "created_at": now.isoformat(),
        "deadline": (now + timedelta(hours=72)).isoformat()})
    proposal_records.change("r-1", run_state="success", ended_at=now)
    exported = {sample.name for family in text_string_to_metric_families(scrape().decode())
                for sample in family.samples}

    queried = metrics_named({**dashboard_queries(), **alert_queries()}, "hms_")

    assert queried and queried - exported == set()
