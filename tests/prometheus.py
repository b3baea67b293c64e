"""A real Prometheus scraping the session's live stack: Debian's `prometheus` (`make prometheus`),
started on 127.0.0.1 and a free port with a scrape config of the test's own, as an operator would
write it (docs/metrics.md): `/management/metrics` with the stack's metrics token as a bearer
`credentials_file`, Airflow's own metrics from the stack's StatsD bridge, and, to prove a scrape
without the token is refused, the same target without it. Stopped at the end of the session.

Registered as a plugin in tests/conftest.py, for tests/e2e and tests/browser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from hms_stack.secrets import metrics_token_file
from hms_stack.stack import Stack, free_port

PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_INTERVAL_S = 1


@dataclass
class Prometheus:
    url: str
    http: httpx.Client

    def query(self, promql: str) -> list[dict]:
        """The instant vector PromQL gives now: [{"metric": {labels}, "value": [time, "text"]}, …]."""
        answer = self.http.get("/api/v1/query", params={"query": promql}).raise_for_status().json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of a query (None: no series)."""
        found = self.query(promql)
        assert len(found) <= 1, found
        return float(found[0]["value"][1]) if found else None

    def wait_for(self, promql: str, expected: float | None = None, timeout: float = 60) -> float:
        """The query's value once there is one (equal to `expected`, when given)."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            last = self.value(promql)
            if last is not None and (expected is None or last == expected):
                return last
            time.sleep(0.5)
        raise AssertionError(f"{promql} = {last}, not {expected} after {timeout:.0f} s")

    def next_scrape(self, job: str) -> None:
        """Return once every target of the job has been scraped again since this call."""
        since = time.time()
        deadline = since + 30
        while time.time() < deadline:
            targets = self.http.get("/api/v1/targets").json()["data"]["activeTargets"]
            mine = [t for t in targets if t["labels"]["job"] == job]
            if mine and all(_seconds(t["lastScrape"]) > since for t in mine):
                return
            time.sleep(0.2)
        raise AssertionError(f"{job} was not scraped within 30 s")


def _seconds(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def scrape_config(stack: Stack) -> dict:
    """What an operator writes for this stack (config/prometheus/prometheus.yml has the compose one)."""
    target = f"127.0.0.1:{stack.api_port}"
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "scrape_configs": [
            {"job_name": "hms-management", "metrics_path": "/management/metrics",
             "authorization": {"type": "Bearer", "credentials_file": str(metrics_token_file(stack.state))},
             "static_configs": [{"targets": [target]}]},
            {"job_name": "hms-management-without-token", "metrics_path": "/management/metrics",
             "static_configs": [{"targets": [target]}]},
        ],
    }
    if stack.metrics_port is not None:
        config["scrape_configs"].append({"job_name": "airflow",
                                         "static_configs": [{"targets": [f"127.0.0.1:{stack.metrics_port}"]}]})
    return config


@pytest.fixture(scope="session")
def prometheus(stack: Stack) -> Iterator[Prometheus]:
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"{PROMETHEUS} is missing: `make prometheus` installs Debian's Prometheus")
    home = Path(tempfile.mkdtemp(prefix="hms-prometheus-"))
    config = home / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(stack)))
    port = free_port()
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.console.templates=/etc/prometheus/consoles",
         "--web.console.libraries=/etc/prometheus/console_libraries"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while not _ready(http):
            assert process.poll() is None, (home / "prometheus.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Prometheus did not get ready in 60 s"
            time.sleep(0.3)
        yield Prometheus(url, http)
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


# -- what the committed dashboard and alerts ask Prometheus for (tests/compose and tests/e2e check it) --

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "hms.json"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
METRIC_NAME = re.compile(r"\b((?:hms|airflow)_[a-zA-Z0-9_]+)\b")


def dashboard_queries() -> dict[str, str]:
    """Each query of the dashboard: "panel title / refId" → PromQL."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {f"{panel['title']} / {target['refId']}": target["expr"] for panel in panels for target in panel["targets"]}


def alert_queries() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in rules for rule in group["rules"]}


def metrics_named(queries: dict[str, str], prefix: str) -> set[str]:
    return {name for expr in queries.values() for name in METRIC_NAME.findall(expr) if name.startswith(prefix)}
