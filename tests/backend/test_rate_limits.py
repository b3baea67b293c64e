"""Calls per second: /stats reports the most a route received in any one second, and a rate-limit
fault answers 429 with Retry-After beyond N calls a second, as a service's gateway would."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from hms_backend.faults import Fault, FaultInjector, RouteStats

POLICY = {"id": "p-1", "rule": "r"}
ROUTE = "POST /svc/policy"


class Clock:
    """Seconds a test sets, for windows that do not depend on how fast the machine is."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def calls_at(stats: RouteStats, clock: Clock, *moments: float) -> None:
    for moment in moments:
        clock.now = moment
        with stats.call(ROUTE):
            pass


# max_per_second: sliding windows (t - 1 s, t], measured on arrival.


@pytest.mark.parametrize(
    ("moments", "most"),
    [
        ((100.0, 100.5, 100.999), 3),
        ((100.0, 100.5, 101.0), 2),  # half-open: a call exactly one second ago has left the window
        ((100.0, 100.9, 101.8, 102.7), 2),  # sliding: no fixed second boundary splits these pairs
        ((100.0, 100.4, 100.8, 101.2, 101.3), 4),  # (100.3, 101.3] holds four, no whole second does
        ((100.0, 102.0, 104.0), 1),
    ],
)
def test_max_per_second_is_the_most_calls_in_any_sliding_second(moments: tuple[float, ...], most: int):
    clock = Clock()
    stats = RouteStats([ROUTE], clock=clock)

    calls_at(stats, clock, *moments)

    assert stats.snapshot()[ROUTE]["max_per_second"] == most


def test_a_reset_forgets_the_calls_before_it():
    clock = Clock()
    stats = RouteStats([ROUTE], clock=clock)
    calls_at(stats, clock, 100.0, 100.1, 100.2)

    stats.reset()
    calls_at(stats, clock, 100.3)

    assert stats.snapshot()[ROUTE]["max_per_second"] == 1


def test_stats_count_a_burst_of_calls_in_the_same_second(api: TestClient, route_stats):
    api.delete("/stats")

    for _ in range(5):
        api.post("/svc/policy", json=POLICY)

    stats = route_stats(ROUTE)
    assert (stats["calls"], stats["max_per_second"], stats["rate_limited"]) == (5, 5, 0)
    assert route_stats("GET /health")["max_per_second"] == 0
    api.delete("/stats")
    assert route_stats(ROUTE)["max_per_second"] == 0


# The rate-limit fault, its window counted on the calls it lets through.


def rate_limit(limit: int) -> Fault:
    return Fault(
        route="/svc/policy",
        method="POST",
        status=None,
        times=-1,
        latency_ms=0,
        rate=1.0,
        limit_per_second=limit,
        retry_after_s=1.0,
    )


def test_calls_beyond_the_limit_in_any_second_are_refused():
    injector, fault = FaultInjector(), rate_limit(2)

    let_through = [injector.lets_through(fault, moment) for moment in (100.0, 100.1, 100.2, 100.9, 101.0, 101.05)]

    # At 101.0 the window (100.0, 101.0] holds only 100.1; at 101.05 it holds 100.1 and 101.0.
    assert let_through == [True, True, False, False, True, False]


def test_a_client_keeping_to_the_limit_is_never_refused_however_many_others_are():
    injector, fault = FaultInjector(), rate_limit(4)
    steady = [100 + n / 4 for n in range(40)]  # four a second, for ten seconds
    flood = [100.9 + n / 1000 for n in range(50)]  # fifty others within a tenth of a second
    refused_steady = []

    for moment in sorted(steady + flood):
        let_through = injector.lets_through(fault, moment)
        if moment in steady and not let_through:
            refused_steady.append(moment)

    assert refused_steady == []


def test_a_rate_limit_answers_429_with_retry_after_beyond_the_limit(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 3}).raise_for_status()

    answers = [api.post("/svc/policy", json=POLICY) for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "error": "rate limit exceeded",
        "retry_after_s": 1.0,
        "limit_per_second": 3,
        "route": "POST /svc/policy",
    }
    assert [v["version"] for v in api.get("/svc/policy/p-1").json()["versions"]] == [1, 2, 3]
    stats = route_stats(ROUTE)
    assert (stats["calls"], stats["side_effects"], stats["rate_limited"], stats["faults_served"]) == (5, 3, 2, 0)
    assert stats["max_per_second"] == 5  # every call received counts, refused or not


@pytest.mark.parametrize(("retry_after_s", "header"), [(0.2, "1"), (2, "2"), (2.5, "3")])
def test_retry_after_is_whole_seconds_rounded_up_and_exact_in_the_body(api: TestClient, retry_after_s, header):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 1, "retry_after_s": retry_after_s})

    api.post("/svc/policy", json=POLICY)
    refused = api.post("/svc/policy", json=POLICY)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == header
    assert refused.json()["retry_after_s"] == retry_after_s


def test_a_refused_call_is_not_kept_for_its_idempotency_key(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 1})
    api.post("/svc/policy", json=POLICY, headers={"Idempotency-Key": "p-1:first"})
    refused = api.post("/svc/policy", json=POLICY, headers={"Idempotency-Key": "p-1:second"})

    api.delete("/admin/faults")
    retried = api.post("/svc/policy", json=POLICY, headers={"Idempotency-Key": "p-1:second"})

    assert refused.status_code == 429
    assert (retried.status_code, retried.json()["version"]) == (200, 2)
    assert "Idempotent-Replayed" not in retried.headers


def test_a_rate_limit_lasts_until_the_faults_are_cleared_and_is_listed(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 1, "retry_after_s": 5})

    listed = api.get("/admin/faults").json()["faults"]
    statuses = [api.post("/svc/policy", json=POLICY).status_code for _ in range(3)]
    api.delete("/admin/faults")
    after = api.post("/svc/policy", json=POLICY).status_code

    [fault] = listed
    assert (fault["limit_per_second"], fault["retry_after_s"], fault["times"], fault["status"]) == (1, 5.0, -1, None)
    assert statuses == [200, 429, 429]
    assert after == 200
    assert len(api.get("/admin/faults").json()["faults"]) == 0


def test_a_rate_limit_with_latency_delays_only_the_calls_it_lets_through(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 1, "latency_ms": 300})

    started = time.perf_counter()
    let_through = api.post("/svc/policy", json=POLICY)
    middle = time.perf_counter()
    refused = api.post("/svc/policy", json=POLICY)
    ended = time.perf_counter()

    assert (let_through.status_code, refused.status_code) == (200, 429)
    assert middle - started >= 0.3
    assert ended - middle < 0.3


def test_unauthenticated_calls_never_use_up_the_limit(api: TestClient, route_stats):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 1})

    refused = api.post("/svc/policy", json=POLICY, headers={"Authorization": "Bearer nope"})
    let_through = api.post("/svc/policy", json=POLICY)

    assert (refused.status_code, let_through.status_code) == (401, 200)
    assert route_stats(ROUTE)["rate_limited"] == 0


def test_a_rate_limit_on_one_route_leaves_the_others_alone(api: TestClient):
    api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 1})

    api.post("/svc/policy", json=POLICY)

    assert [api.post("/notifications", json={"message": "m"}).status_code for _ in range(3)] == [200] * 3


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"limit_per_second": 0}, "limit_per_second"),
        ({"limit_per_second": 1.5}, "limit_per_second"),
        ({"limit_per_second": 5, "retry_after_s": 0}, "retry_after_s"),
        ({"limit_per_second": 5, "status": 503}, "cannot come with a status, a body or a hold_answer_ms"),
        ({"limit_per_second": 5, "body": "x"}, "cannot come with a status, a body or a hold_answer_ms"),
        ({"limit_per_second": 5, "hold_answer_ms": 100}, "cannot come with a status, a body or a hold_answer_ms"),
        ({"limit_per_second": 5, "times": 3}, "times does not apply to a rate limit"),
        ({"limit_per_second": 5, "times": 1}, "times does not apply to a rate limit"),
        ({"limit_per_second": 5, "rate": 0.5}, "rate does not apply to a rate limit"),
        ({"retry_after_s": 2, "status": 503}, "needs a limit_per_second"),
    ],
    ids=str,
)
def test_a_rate_limit_that_asks_for_nonsense_is_422_saying_why(api: TestClient, spec: dict, says: str):
    answer = api.put("/admin/faults", json={"route": "/svc/policy", **spec})

    assert answer.status_code == 422
    assert says in answer.json()["error"]
    assert api.get("/admin/faults").json() == {"faults": []}


def test_until_cleared_is_what_a_rate_limit_does_anyway(api: TestClient):
    answer = api.put("/admin/faults", json={"route": "/svc/policy", "limit_per_second": 5, "times": -1, "rate": 1})

    assert answer.status_code == 200
    assert answer.json()["faults"][0]["times"] == -1
