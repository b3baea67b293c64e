"""A proposal's record is repaired from Airflow's own records when the write of its run's end is
lost: the scheduler's listener cannot write it (the record is locked), gives up, Airflow ends the
run anyway, and the scheduler is then killed. The api-server's records keeper notices the record
disagrees with the run and settles it, within its interval and grace, without any scheduler.

Held still without a sleep: the audit answer is held until the scheduler is paused (SIGSTOP), so
nothing can end the run before the test has locked the record.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from hms_deploy.database import RECORDS_DATABASE
from hms_management.records.database import url_for
from tests.stack.launcher import Launcher, Proposals, wait_for

REPAIR_SECONDS = 2
# The keeper leaves a record written in its last ten seconds alone (api/keeper.py: GRACE), and
# looks every REPAIR_SECONDS: a lost write is repaired within their sum, plus a look.
REPAIRED_WITHIN = 10 + 2 * REPAIR_SECONDS + 10


@pytest.fixture
def launcher(folder: Path) -> Iterator[Launcher]:
    launcher = Launcher(folder, env={"AIRFLOW__HMS_MANAGEMENT__RECORDS_REPAIR_SECONDS": str(REPAIR_SECONDS)})
    try:
        yield launcher.start().wait_ready()
    finally:
        launcher.finish()


def test_a_record_whose_end_was_never_written_is_repaired_from_the_run(launcher):
    proposals = Proposals(launcher.api_url, launcher.hms_url, launcher.state)
    records = create_engine(url_for(host=str(launcher.state / "postgres"), port=None, login="postgres", password=None,
                                    database=RECORDS_DATABASE))
    proposal_id = f"lost-end-{int(time.time())}"
    proposals.hms.put("/admin/faults", json={"route": "/audit/log", "hold_answer_ms": 60_000,
                                             "times": 1}).raise_for_status()
    proposals.submit(proposal_id)
    wait_for(lambda: proposals.hms.get("/stats").json()["routes"]["POST /audit/log"]["held"], 120,
             "the audit step's answer held")

    scheduler = psutil.Process(launcher.pid("scheduler"))
    scheduler.send_signal(signal.SIGSTOP)  # nothing ends the run now
    proposals.clear_faults()  # the audit step gets its answer, records the outcome, and succeeds
    wait_for(lambda: audit_step_succeeded(proposals, proposal_id), 60, "the audit step's success")
    with records.connect() as holder:  # its transaction holds the record's row until the rollback
        holder.execute(text("SELECT 1 FROM proposals WHERE id = :id FOR UPDATE"), {"id": proposal_id})
        scheduler.send_signal(signal.SIGCONT)
        # The listener waits for the lock, gives up (its statement timeout) and Airflow ends the run.
        wait_for(lambda: run_state(proposals, proposal_id) == "success", 60, "Airflow ended the run")
        os.kill(scheduler.pid, signal.SIGKILL)
        holder.rollback()
    with records.connect() as db:
        stale = db.execute(text("SELECT status, run_state FROM proposals WHERE id = :id"), {"id": proposal_id}).one()
    assert tuple(stale) == ("running", "running")  # the lost write: the record disagrees with the run

    started = time.monotonic()
    wait_for(lambda: proposals.status(proposal_id)["status"] == "completed", REPAIRED_WITHIN,
             "the record repaired from Airflow's run")

    assert time.monotonic() - started <= REPAIRED_WITHIN
    repaired = proposals.status(proposal_id)
    assert repaired["reason"] == "policy applied and officers notified" and repaired["ended_at"]
    assert "records keeper: repaired 1 record(s)" in (launcher.state / "logs" / "api-server.log").read_text()
    records.dispose()
    proposals.close()


def audit_step_succeeded(proposals: Proposals, proposal_id: str) -> bool:
    answer = proposals._call("GET", f"/api/v2/dags/proposal_orchestration/dagRuns/proposal__{proposal_id}"
                                    "/taskInstances/record_audit")
    return answer.status_code == 200 and answer.json()["state"] == "success"


def run_state(proposals: Proposals, proposal_id: str) -> str:
    answer = proposals._call("GET", f"/api/v2/dags/proposal_orchestration/dagRuns/proposal__{proposal_id}")
    return answer.json()["state"]
