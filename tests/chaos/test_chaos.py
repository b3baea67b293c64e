"""Chaos: a supervised stack (`python -m hms_stack run`) loses a part of itself in the middle of a
burst, one case at a time, and every proposal still ends right with each side effect exactly once.

Each case sends a burst of 100 proposals (10 sent to human review, 10 on a Saturday: denied): 90 at
once, and once a third have ended, SIGKILLs what the case names and sends the last 10 into the
outage. Then it checks, from what the reference backend stored durably (not its in-memory counters,
which restart with it):
- every proposal ends with its right outcome (the ten in review are decided by the reviewer once
  parked: five approved, five denied);
- each side effect exactly once: one policy version and one notification per completed proposal,
  none for the others;
- an audit record for every outcome, the last one saying the right outcome;
- no run left queued or running;
and reports the time to recover: from the kill until the killed part runs again (its new process
answers), and until the first proposal ends after the kill.

The agent submits the way an agent that lost an answer does: it sends the same proposal again until
it gets a 2xx, so a trigger refused or lost while the api-server is down is retried — and never
makes a second run. Figures go to `chaos-results.json` (git-ignored) and the console.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from hms_management.airflow_login import AirflowLogin, ApiError, bearer
from hms_management.domain.proposal import DAG_ID
from hms_stack import processes
from tests.stack.launcher import Launcher, stack_processes, wait_for

BURST = 100
IN_REVIEW = range(0, BURST, 10)  # every tenth: impact high, human review
WEEKEND = range(5, BURST, 10)  # every tenth, offset by five: a Saturday, denied
KILL_AFTER = BURST // 3  # proposals ended before the kill: "in the middle of the burst"
SENT_AT_THE_KILL = 10  # the last ten are submitted the moment the kill is done
CASE_TIMEOUT = 900.0
RESULTS = Path(__file__).resolve().parents[2] / "chaos-results.json"
RULE = {"queue": "foia", "strategy": "oldest-first"}


def expected_outcomes(prefix: str) -> dict[str, str]:
    outcomes = {}
    for n in range(BURST):
        if n in IN_REVIEW:
            outcomes[f"{prefix}-{n:03d}"] = "completed" if (n // 10) % 2 == 0 else "denied"
        elif n in WEEKEND:
            outcomes[f"{prefix}-{n:03d}"] = "denied"
        else:
            outcomes[f"{prefix}-{n:03d}"] = "completed"
    return outcomes


def proposal(proposal_id: str) -> dict[str, Any]:
    n = int(proposal_id.rsplit("-", 1)[1])
    return {"id": proposal_id, "rule": RULE, "title": f"chaos {n}", "day": "Sat" if n in WEEKEND else "Tue",
            **({"impact": "high"} if n in IN_REVIEW else {})}


class Stack:
    """The case's view of the launcher's stack: clients that ride out a restart of what they call."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        credentials = json.loads((launcher.state / "credentials.json").read_text())
        self.hms = httpx.Client(base_url=launcher.hms_url, timeout=30,
                                headers={"Authorization": f"Bearer {credentials['hms_token']}"})
        self.api = httpx.Client(base_url=launcher.api_url, timeout=60)
        self._logins = {user: AirflowLogin(launcher.api_url, user, password, timeout=60)
                        for user, password in credentials["airflow"].items()}
        # Set when a case fails: its agents stop resending (else they would for a quarter of an hour).
        self.giving_up = threading.Event()

    def close(self) -> None:
        self.api.close()
        self.hms.close()

    def token(self, user: str) -> str | None:
        try:
            return self._logins[user].token()
        except (ApiError, httpx.TransportError):
            return None

    def call(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One call as `user`; None when the api-server did not answer (it may be restarting)."""
        try:
            return self._logins[user].authorized(
                lambda token: self.api.request(method, path, headers=bearer(token), **kwargs))
        except (ApiError, httpx.TransportError):  # a login refused or unanswered while the api-server restarts
            return None

    def submit(self, proposal_id: str) -> int:
        """Send the proposal until it is accepted, as an agent that lost an answer does; how many sends."""
        for attempt in range(1, 1000):
            if self.giving_up.is_set():
                raise AssertionError(f"{proposal_id}: not resent any more, the case has failed")
            answer = self.call("agent", "POST", "/management/proposals", json=proposal(proposal_id))
            if answer is not None and answer.status_code in (200, 202):
                return attempt
            assert answer is None or answer.status_code >= 500 or answer.status_code == 401, answer.text
            time.sleep(1)
        raise AssertionError(f"{proposal_id} was never accepted")

    def statuses(self, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        cursor = None
        while True:
            params = {"q": prefix, "limit": 200, **({"cursor": cursor} if cursor else {})}
            answer = self.call("analyst", "GET", "/management/proposals", params=params)
            if answer is None or answer.status_code != 200:
                return found
            page = answer.json()
            found.update({item["id"]: item["status"] for item in page["items"]})
            if not (cursor := page.get("next_cursor")):
                return found

    def runs(self, prefix: str) -> list[dict[str, Any]]:
        """Every run whose id holds `prefix`, page by page (the REST API gives at most 100 a page)."""
        found: list[dict[str, Any]] = []
        while True:
            answer = self.call("admin", "GET", f"/api/v2/dags/{DAG_ID}/dagRuns",
                               params={"run_id_pattern": prefix, "limit": 100, "offset": len(found),
                                       "order_by": "run_id"})
            assert answer is not None and answer.status_code == 200, "the runs list did not answer"
            page = answer.json()
            found += page["dag_runs"]
            if not page["dag_runs"] or len(found) >= page["total_entries"]:
                return found

    def decide(self, proposal_id: str, approved: bool) -> bool:
        answer = self.call("reviewer", "POST", f"/management/proposals/{proposal_id}/decision",
                           json={"approved": approved, "reason": "chaos review"})
        return answer is not None and answer.status_code in (200, 409)

    def sweep(self) -> None:
        """A backlog sweep, as its schedule would start it: it re-drives transient failures."""
        answer = self.call("admin", "POST", "/api/v2/dags/backlog_sweep/dagRuns", json={"logical_date": None})
        if answer is None or answer.status_code != 200:
            return
        run_id = answer.json()["dag_run_id"]
        wait_for(lambda: (a := self.call("admin", "GET", f"/api/v2/dags/backlog_sweep/dagRuns/{run_id}")) is not None
                 and a.json().get("state") in ("success", "failed"), 300, "the sweep did not end", poll=1)

    # what the backend stored, durably
    def policy_versions(self, proposal_id: str) -> int:
        answer = self.hms.get(f"/svc/policy/{proposal_id}")
        return len(answer.json()["versions"]) if answer.status_code == 200 else 0

    def notifications(self, proposal_id: str) -> int:
        items = self.hms.get("/notifications", params={"proposalId": proposal_id}).json()["items"]
        return len([n for n in items if n.get("kind") is None])  # not the deadline or reminder notices

    def outcome_records(self, proposal_id: str) -> list[str]:
        items = self.hms.get("/audit/log", params={"proposalId": proposal_id}).json()["items"]
        return [i["outcome"] for i in items if i["action"] == "proposal.orchestrated"]


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def run_case(stack: Stack, name: str, kill: Callable[[], Callable[[], bool]]) -> dict[str, Any]:
    """The burst, the kill in its middle, and every check; `kill` returns a test of "back again"."""
    prefix = f"chaos-{name}-{uuid.uuid4().hex[:4]}"
    expected = expected_outcomes(prefix)
    sends: dict[str, int] = {}
    ids = list(expected)
    stack.giving_up.clear()
    with ThreadPoolExecutor(4) as submitters, _giving_up_on_failure(stack):
        futures = {pid: submitters.submit(stack.submit, pid) for pid in ids[:-SENT_AT_THE_KILL]}
        wait_for(lambda: sum(s in ("completed", "denied", "failed", "review_timeout", "awaiting_governance")
                             for s in stack.statuses(prefix).values()) >= KILL_AFTER, CASE_TIMEOUT,
                 f"{name}: a third of the burst never ended", poll=1)
        killed_at = time.monotonic()
        back = kill()
        # The rest are sent into the outage: refused or lost while the api-server is down, resent.
        futures |= {pid: submitters.submit(stack.submit, pid) for pid in ids[-SENT_AT_THE_KILL:]}
        wait_for(back, 300, f"{name}: what was killed did not come back", poll=0.5)
        recovered_s = time.monotonic() - killed_at
        sends = {pid: future.result() for pid, future in futures.items()}
    ended_before = set(pid for pid, s in stack.statuses(prefix).items() if s in ("completed", "denied"))
    first_end_s = wait_for(lambda: next((time.monotonic() - killed_at for pid, s in stack.statuses(prefix).items()
                                         if s in ("completed", "denied") and pid not in ended_before), None),
                           CASE_TIMEOUT, f"{name}: no proposal ended after the kill", poll=0.5)

    finish(stack, prefix, expected, name)
    return check(stack, prefix, expected, name) | {
        "recovered_s": round(recovered_s, 1), "first_end_after_kill_s": round(first_end_s, 1),
        "resends": sum(n - 1 for n in sends.values())}


@contextlib.contextmanager
def _giving_up_on_failure(stack: Stack) -> Generator[None]:
    try:
        yield
    except BaseException:
        stack.giving_up.set()
        raise


def finish(stack: Stack, prefix: str, expected: dict[str, str], name: str) -> None:
    """Decide the reviews once parked; re-drive what failed on the outage; until everything ended."""
    deadline = time.monotonic() + CASE_TIMEOUT
    decided: set[str] = set()
    while True:
        statuses = stack.statuses(prefix)
        for pid, status in statuses.items():
            if status == "awaiting_governance" and pid not in decided and stack.decide(
                    pid, approved=expected[pid] == "completed"):
                decided.add(pid)
        if len(statuses) == len(expected) and all(statuses[pid] == expected[pid] for pid in expected):
            return
        if any(s == "failed" for s in statuses.values()):
            stack.sweep()  # the sweep re-drives a transient failure, as its schedule would
        assert time.monotonic() < deadline, f"{name}: not every proposal ended right: " + str(
            {pid: s for pid, s in statuses.items() if s != expected.get(pid)})
        time.sleep(2)


def check(stack: Stack, prefix: str, expected: dict[str, str], name: str) -> dict[str, Any]:
    runs = stack.runs(prefix)
    assert len(runs) == len(expected), f"{name}: {len(runs)} runs for {len(expected)} proposals"  # never a second
    assert all(run["state"] in ("success", "failed") for run in runs), f"{name}: a run is left queued or running"
    wrong: dict[str, Any] = {}
    for pid, outcome in expected.items():
        once = 1 if outcome == "completed" else 0
        records = stack.outcome_records(pid)
        found = (stack.policy_versions(pid), stack.notifications(pid), records[-1] if records else None)
        if found != (once, once, outcome):
            wrong[pid] = found
    assert wrong == {}, f"{name}: (policy versions, notifications, last audit outcome) wrong for {wrong}"
    return {"proposals": len(expected), "completed": list(expected.values()).count("completed"),
            "denied": list(expected.values()).count("denied"), "runs": len(runs)}


# -- the stack and the cases ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def launcher(request: pytest.FixtureRequest) -> Iterator[Launcher]:
    folder = Path(tempfile.mkdtemp(prefix="hms-chaos-"))
    failed_before = request.session.testsfailed
    env = {"AIRFLOW__HMS_MANAGEMENT__BACKLOG_SWEEP_SCHEDULE": "none",  # the test sweeps itself
           "AIRFLOW__HMS_MANAGEMENT__REVIEW_WATCH_POLL_SECONDS": "1"}
    launcher = Launcher(folder, env=env).start()
    try:
        yield launcher.wait_ready()
    finally:
        launcher.finish()
        if request.session.testsfailed > failed_before:  # the logs, for the post-mortem
            print(f"kept for the post-mortem: {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(launcher: Launcher) -> Iterator[Stack]:
    view = Stack(launcher)
    yield view
    view.close()


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {}
    yield found
    RESULTS.write_text(json.dumps(found, indent=2))
    print("\nchaos:", json.dumps(found, indent=2))


def kill_component(launcher: Launcher, component: str) -> Callable[[], bool]:
    old = launcher.pid(component)
    os.kill(old, signal.SIGKILL)

    def back() -> bool:
        try:
            pid = launcher.pid(component)
        except (KeyError, ValueError, OSError):
            return False
        return pid != old and psutil.pid_exists(pid) and answers(f"{launcher.api_url}/api/v2/monitor/health")

    return back


@pytest.mark.parametrize("component", ["scheduler", "triggerer", "api-server", "dag-processor", "hms-backend",
                                       "postgres"])
def test_a_component_killed_mid_burst_loses_nothing_and_doubles_nothing(launcher, stack, figures, component):
    figures[component] = run_case(stack, component, lambda: kill_component(launcher, component))
    print(f"\n{component}: {figures[component]}")


SUSPENDED = 20  # proposals held by a suspension of the policy service when the scheduler is killed


def test_the_scheduler_killed_while_proposals_wait_on_a_suspension_loses_nothing(launcher, stack, figures):
    """Proposals whose policy step waits out a suspension (deferred: in the triggerer, holding no
    worker) when the scheduler is SIGKILLed: no policy call while it holds, and after the restart and
    the lift every one completes, each side effect once."""
    name = "suspension"
    prefix = f"chaos-{name}-{uuid.uuid4().hex[:4]}"
    expected = {f"{prefix}-{n:03d}": "completed" for n in range(2 * SUSPENDED) if n % 5}  # approved, weekdays
    assert len(expected) >= SUSPENDED
    expected = dict(list(expected.items())[:SUSPENDED])

    def waiting() -> int:
        answer = stack.call("admin", "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances",
                            params={"task_id": "apply_policy", "state": "deferred", "limit": 100})
        return 0 if answer is None or answer.status_code != 200 else sum(
            ti["dag_run_id"].startswith(f"proposal__{prefix}") for ti in answer.json()["task_instances"])

    stack.hms.put("/gov/suspensions/policy", json={"reason": "chaos: bad rules went live", "by": "ops"}
                  ).raise_for_status()
    try:
        with ThreadPoolExecutor(4) as submitters:
            list(submitters.map(stack.submit, expected))
        wait_for(lambda: waiting() == SUSPENDED, CASE_TIMEOUT, f"{name}: not every policy step waits", poll=1)
        killed_at = time.monotonic()
        wait_for(kill_component(launcher, "scheduler"), 300, f"{name}: the scheduler did not come back", poll=0.5)
        recovered_s = time.monotonic() - killed_at
        time.sleep(5)  # the new scheduler at work, the suspension still on
        applied_while_suspended = sum(stack.policy_versions(pid) for pid in expected)
        still_waiting = waiting()
    finally:
        stack.hms.delete("/gov/suspensions/policy")
    lifted_at = time.monotonic()
    finish(stack, prefix, expected, name)

    assert applied_while_suspended == 0
    assert still_waiting == SUSPENDED
    figures[name] = check(stack, prefix, expected, name) | {
        "recovered_s": round(recovered_s, 1), "all_ended_after_lift_s": round(time.monotonic() - lifted_at, 1)}
    print(f"\n{name}: {figures[name]}")


LOAD_REQUESTS = 2000
LOAD_CLIENTS = 50
SUBMIT_EVERY = 20  # one request in twenty submits a new proposal: a hundred more runs during the load
UI_LOOK_EVERY_S = 0.5


def test_2000_requests_from_50_clients_during_a_burst_never_5xx_and_each_accepted_proposal_runs_once(stack, figures):
    """Agents crowd `/management` during a burst while an analyst keeps the UI's runs list open."""
    prefix = f"load-{uuid.uuid4().hex[:4]}"
    burst = [f"{prefix}-burst-{n:03d}" for n in range(BURST)]
    with ThreadPoolExecutor(4) as submitters:
        list(submitters.map(stack.submit, burst))
    codes: dict[int, int] = {}
    accepted: set[str] = set()
    lock = threading.Lock()

    # Each of the 50 client threads is one agent with one HTTP client, its connection kept open as an
    # agent's is (a new client per request cost this process, on the server's 2 cores, 0.6 of one).
    agents, agent_of_thread = [], threading.local()

    def agent() -> httpx.Client:
        if not hasattr(agent_of_thread, "client"):
            agent_of_thread.client = httpx.Client(base_url=stack.launcher.api_url, timeout=120,
                                                  headers={"Authorization": f"Bearer {stack.token('agent')}"})
            with lock:
                agents.append(agent_of_thread.client)
        return agent_of_thread.client

    def one(n: int) -> None:
        kind = "submit" if n % SUBMIT_EVERY == 0 else ("status", "list", "wait")[n % 3]
        client = agent()
        if kind == "submit":
            pid = f"{prefix}-load-{n:04d}"
            answer = client.post("/management/proposals", json={"id": pid, "rule": RULE})
            if answer.status_code in (200, 202):
                with lock:
                    accepted.add(pid)
        elif kind == "status":
            answer = client.get(f"/management/proposals/{burst[n % BURST]}")
        elif kind == "list":
            answer = client.get("/management/proposals", params={"limit": 50})
        else:
            answer = client.get(f"/management/proposals/{burst[n % BURST]}", params={"wait": 5})
        with lock:
            codes[answer.status_code] = codes.get(answer.status_code, 0) + 1

    # The analyst: the runs list as the UI asks for it, every half second while the agents crowd in.
    list_times: list[float] = []
    list_codes: set[int | str] = set()
    load_over = threading.Event()

    def analyst() -> None:
        headers = {"Authorization": f"Bearer {stack.token('analyst')}"}
        with httpx.Client(base_url=stack.launcher.api_url, timeout=120, headers=headers) as client:
            while not load_over.is_set():
                started = time.perf_counter()
                try:
                    answer = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns",
                                        params={"limit": 50, "order_by": "-run_after"})
                    list_codes.add(answer.status_code)
                except httpx.TransportError as error:  # counted, as an analyst would see it fail
                    list_codes.add(type(error).__name__)
                list_times.append(time.perf_counter() - started)
                load_over.wait(UI_LOOK_EVERY_S)

    looking = threading.Thread(target=analyst)
    looking.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(LOAD_CLIENTS) as clients:
            list(clients.map(one, range(LOAD_REQUESTS)))
    finally:
        load_over.set()
        looking.join()
        for client in agents:
            client.close()
    load_s = time.monotonic() - started
    wait_for(lambda: all(s in ("completed", "denied") for s in stack.statuses(f"{prefix}-load").values()),
             CASE_TIMEOUT, "the accepted proposals did not all end", poll=2)

    runs = stack.runs(f"{prefix}-load")
    list_times.sort()
    figures["load"] = {"requests": sum(codes.values()), "clients": LOAD_CLIENTS, "codes": codes,
                       "accepted": len(accepted), "runs": len(runs), "seconds": round(load_s, 1),
                       "requests_per_s": round(LOAD_REQUESTS / load_s, 1), "runs_list_looks": len(list_times),
                       "runs_list_p50_s": round(list_times[len(list_times) // 2], 3),
                       "runs_list_p95_s": round(list_times[int(len(list_times) * 0.95)], 3)}
    print(f"\nload: {figures['load']}")
    assert not [code for code in codes if code >= 500], codes
    assert sum(codes.values()) == LOAD_REQUESTS
    assert list_codes == {200}, f"the analyst's runs list answered {list_codes}"
    assert sorted(r["dag_run_id"].removeprefix("proposal__") for r in runs) == sorted(accepted)


def test_a_power_cut_mid_burst_and_make_run_again_loses_nothing_and_doubles_nothing(launcher, stack, figures):
    # What the power cut kills stays a zombie, as under a container's PID 1 that never reaps (CI's):
    # this process adopts the launcher's orphans and leaves them unreaped. A zombie server passes
    # for a live one (kill(pid, 0) succeeds), which `make run` again must see through.
    assert processes.become_subreaper()

    def cut_power() -> Callable[[], bool]:
        everything = [proc for group in stack_processes(launcher.state).values() for proc in group]
        everything.append(psutil.Process(launcher.process.pid))
        for proc in everything:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        launcher.process.wait()
        making = ThreadPoolExecutor(1)
        make_run_again = making.submit(lambda: launcher.start().wait_ready())
        making.shutdown(wait=False)
        # Done means ready; a refused or failed start raises here at once, with the launcher's console.
        return lambda: make_run_again.done() and make_run_again.result() is launcher \
            and answers(f"{launcher.api_url}/api/v2/monitor/health")

    figures["power cut"] = run_case(stack, "power-cut", cut_power)
    print(f"\npower cut: {figures['power cut']}")
