"""After the end-to-end suite: no secret appears anywhere a user, an analyst or an auditor can read.

Runs last in the e2e session (see conftest), so it sees what every other test left. It first sends
credential-like values of its own, at every depth and through every door (/management, Airflow's
trigger endpoint, the HMS backlog and its sweep), then looks for them and for every secret of the
stack's state folder in: the log files, every run's conf, every task's rendered fields and trigger
kwargs (/api/v2), the /management answers, every row of every table of Airflow's metadata database
(XCom values, run confs, notes, event logs …), and every row of the reference backend's database.
Zero hits.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from hms_management.domain.proposal import DAG_ID
from hms_stack.stack import Stack

pytestmark = pytest.mark.secrets_scan

# Long, random, recognisable: a hit is a leak, never a coincidence.
CANARIES = {name: f"canary-{name}-{uuid.uuid4().hex}" for name in ("rule", "metadata", "trigger", "backlog")}


def secrets_of(stack: Stack) -> dict[str, str]:
    """Every secret value the stack generated: keys, passwords, the HMS token and its signing secret."""
    kept = json.loads((stack.state / "secrets.json").read_text())
    found = {name: value for name, value in kept.items() if isinstance(value, str)}
    found.update({f"password of {user}": password for user, password in kept["passwords"].items()})
    found["hms_token"] = stack.credentials()["hms_token"]
    return found


def send_credentials_through_every_door(stack: Stack, agent, hms: httpx.Client, admin: httpx.Client) -> None:
    leaky = {"id": f"leak-{uuid.uuid4().hex[:6]}", "rule": {"steps": [{"apiKey": CANARIES["rule"]}]},
             "metadata": {"auth": {"client-secret": CANARIES["metadata"]}}}
    management = httpx.post(f"{stack.api_url}/management/proposals", json=leaky,
                            headers={"Authorization": f"Bearer {agent.token()}"})
    assert management.status_code == 400 and "rule.steps[0].apiKey" in management.text
    trigger = agent.trigger({**leaky, "metadata": {"Authorization": CANARIES["trigger"]}})
    assert trigger.status_code == 400 and "conf.metadata.Authorization" in trigger.text
    queued = {**leaky, "id": f"{leaky['id']}-backlog", "metadata": {"x": {"password": CANARIES["backlog"]}}}
    hms.post("/backlog/proposals", json=queued).raise_for_status()
    sweep = admin.post("/api/v2/dags/backlog_sweep/dagRuns", json={"logical_date": None}).raise_for_status().json()
    wait_for(lambda: admin.get(f"/api/v2/dags/backlog_sweep/dagRuns/{sweep['dag_run_id']}").json()["state"]
             in ("success", "failed"))
    rejected = hms.get("/backlog/proposals", params={"status": "rejected", "limit": 10_000}).json()["items"]
    assert any(entry["id"] == queued["id"] for entry in rejected)  # rejected, and its value not kept (below)


def wait_for(condition, timeout: float = 180) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)


def pages(client: httpx.Client, path: str, key: str, **params) -> Iterator[dict]:
    offset = 0
    while True:
        page = client.get(path, params={**params, "limit": 100, "offset": offset}).json()
        yield from page[key]
        if len(page[key]) < 100:
            return
        offset += 100


def readable_texts(stack: Stack, admin: httpx.Client, management_token: str) -> Iterator[tuple[str, str]]:
    """(where, text) for every place a user or an auditor can read."""
    for path in sorted(stack.log_dir.rglob("*")):
        if path.is_file():
            yield f"log {path.relative_to(stack.state)}", path.read_text(errors="replace")
    for dag_id in (DAG_ID, "backlog_sweep", "review_watch"):
        for run in pages(admin, f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs"):
            yield f"/api/v2 run {dag_id}/{run['dag_run_id']}", json.dumps(run)
    # Each task with its rendered fields and its trigger's kwargs (decrypted: the database holds them
    # encrypted); XCom values are read from the database below.
    for ti in pages(admin, "/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances"):
        yield f"/api/v2 task {ti['dag_id']}/{ti['dag_run_id']}/{ti['task_id']}", json.dumps(ti)
    management = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {management_token}"})
    page = management.get("/management/proposals", params={"limit": 200}).json()
    while True:
        yield "/management list", json.dumps(page)
        for item in page["items"]:
            yield f"/management {item['id']}", management.get(f"/management/proposals/{item['id']}").text
        if not page.get("next_cursor"):
            break
        page = management.get("/management/proposals", params={"limit": 200, "cursor": page["next_cursor"]}).json()
    yield from metadata_database(stack)
    yield from backend_database(stack)


def metadata_database(stack: Stack) -> Iterator[tuple[str, str]]:
    """Every row of every table of Airflow's metadata database, as text."""
    engine = create_engine(f"postgresql+psycopg2://postgres@/airflow?host={stack.pgdata}")
    with engine.connect() as db:
        for table in inspect(db).get_table_names():
            for row in db.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 (names from the catalogue)
                yield f"metadata table {table}", " ".join(map(str, row))
    engine.dispose()


def backend_database(stack: Stack) -> Iterator[tuple[str, str]]:
    path = next(Path(stack.state / "hms").glob("*.sqlite3"))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 (names from the catalogue)
                yield f"backend table {table}", " ".join(map(str, row))


def test_no_secret_and_no_refused_credential_can_be_read_anywhere(stack, agent, hms):
    admin = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token()}"}, timeout=60)
    send_credentials_through_every_door(stack, agent, hms, admin)
    secrets = {**secrets_of(stack), **{f"refused {name}": value for name, value in CANARIES.items()}}

    hits, places = [], 0
    for where, content in readable_texts(stack, admin, agent.token()):
        places += 1
        hits += [(name, where) for name, value in secrets.items() if value in content]

    assert places > 100  # it looked at the whole stack, not at an empty one
    assert hits == []
