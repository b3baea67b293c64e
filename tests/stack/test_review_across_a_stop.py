"""A reviewer decides while the Management Layer is down (at the governance service, as HMS's own
tools do): the proposal goes on once the stack is started again, and its policy is applied once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.stack.launcher import Launcher, Proposals, wait_for


@pytest.fixture
def launcher(folder: Path) -> Iterator[Launcher]:
    launcher = Launcher(folder, env={"AIRFLOW__HMS_MANAGEMENT__REVIEW_WATCH_POLL_SECONDS": "1"})
    try:
        yield launcher.start().wait_ready()
    finally:
        launcher.finish()


def governance_service_alone(launcher: Launcher) -> subprocess.Popen:
    """The HMS backend on its own data, with the Management Layer stopped."""
    return subprocess.Popen(
        [sys.executable, "-m", "hms_backend", "serve", "--host", "127.0.0.1", "--port", str(launcher.hms_port),
         "--data-dir", str(launcher.state / "hms"), "--secret-file", str(launcher.state / "hms_jwt_secret")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_decision_taken_while_the_stack_is_down_is_picked_up_after_it_starts(launcher):
    proposals = Proposals(launcher.api_url, launcher.hms_url, launcher.state)
    proposal_id = f"down-{int(time.time())}"
    answer = proposals._call("POST", "/management/proposals", json={
        "id": proposal_id, "day": "Tue", "impact": "high", "rule": {"queue": "foia", "strategy": "oldest-first"}})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: proposals.status(proposal_id)["status"] == "awaiting_governance", 120,
             "the proposal never reached review")
    decision_id = proposals.status(proposal_id)["governance"]["decision_id"]
    proposals.close()

    assert launcher.cli("stop").returncode == 0
    launcher.exit_code()
    backend = governance_service_alone(launcher)
    try:
        wait_for(lambda: answers(f"{launcher.hms_url}/health"), 60, "the backend did not start alone")
        token = proposals.hms.headers["Authorization"]
        decided = httpx.post(f"{launcher.hms_url}/gov/decisions/{decision_id}", headers={"Authorization": token},
                             json={"approved": True, "reviewer": "rita"})
        assert decided.status_code == 200, decided.text
    finally:
        backend.terminate()
        backend.wait(timeout=30)

    launcher.start().wait_ready()
    proposals = Proposals(launcher.api_url, launcher.hms_url, launcher.state)
    try:
        proposals.wait_completed([proposal_id], timeout=180)
        versions = proposals.hms.get(f"/svc/policy/{proposal_id}").json()["versions"]
        assert len(versions) == 1
        assert proposals.status(proposal_id)["governance"]["reviewer"] == "rita"
    finally:
        proposals.close()
