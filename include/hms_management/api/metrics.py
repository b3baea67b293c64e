"""`GET /management/metrics`: the operators' metrics in the Prometheus text format (docs/metrics.md).

Each scrape reads the Management Layer's records (`records.metrics`), the rate budgets and
governance's suspensions afresh and builds its answer with a collector of its own: nothing is counted
in the api-server's memory, so its two processes (and any number of machines) answer alike.

Who may scrape: the scraper, with the deployment's metrics token (`Authorization: Bearer <token>`;
the token is a random value in a file whose path `HMS_METRICS_TOKEN_FILE` names: the state folder
locally, a compose secret in docker-compose), compared in constant time. An Airflow token works
for admins, so a person can look with curl; any other Airflow user gets 403, no or a bad token 401.
A part that cannot be read shows as a metric (`hms_records_up 0`, `hms_governance_up 0`), never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from hms_management.api.auth import is_admin, token_of, user_of
from hms_management.domain import metrics as tallied
from hms_management.domain.metrics import DURATION_BUCKETS, METRICS_TOKEN_FILE_ENV, STEP_SERVICES, format_bound
from hms_management.domain.outcome import OUTCOMES
from hms_management.domain.services import NOTIFICATIONS, POLICY
from hms_management.orchestration.records import budgets, records
from hms_management.records.budgets import Budget
from hms_management.records.metrics import Figures, Metrics

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
# Services governance can suspend one by one: each has a series, 0 while it is not suspended.
SUSPENDABLE = (POLICY.name, NOTIFICATIONS.name)


def metrics_token() -> str | None:
    """The deployment's metrics token (None: none is configured, only admins may scrape)."""
    path = os.environ.get(METRICS_TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def is_metrics_token(given: str | None, expected: str | None) -> bool:
    """Whether `given` is the metrics token, in time that does not depend on where they differ."""
    if not given or not expected:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


async def _may_scrape(request: Request) -> None:
    if is_metrics_token(token_of(request), metrics_token()):
        return
    user = await user_of(request)
    if user is None:
        raise HTTPException(401, "the metrics token (or an Airflow admin's token) is required",
                            headers={"WWW-Authenticate": "Bearer"})
    if not is_admin(user):
        raise HTTPException(403, "only the metrics scraper and Airflow admins may read the metrics")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    await _may_scrape(request)
    body = await run_in_threadpool(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def scrape() -> bytes:
    """One scrape: every figure read now, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector())
    return generate_latest(registry)


class ScrapeCollector:
    """The metrics of one scrape, read when the registry collects them."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            figures = Metrics(records(pooled=True).engine).figures()
            rate_budgets = budgets(pooled=True).all()
        except SQLAlchemyError as err:
            log.warning("metrics: the records could not be read: %s", err)
            figures, rate_budgets = None, []
        yield _gauge("hms_records_up", "1 when this scrape read the Management Layer's records, else 0",
                     1 if figures is not None else 0)
        if figures is not None:
            yield from proposal_metrics(figures)
            yield from step_metrics(figures)
        yield from budget_metrics(rate_budgets)
        yield from suspension_metrics()
        yield _gauge("hms_metrics_scrape_duration_seconds", "How long this scrape took to read its figures",
                     time.perf_counter() - started)


def proposal_metrics(figures: Figures) -> Iterator[Metric]:
    by_status = GaugeMetricFamily("hms_proposals", "Proposals in each status now (as GET /management/counts)",
                                  labels=["status"])
    for status, number in figures.counts.items():
        by_status.add_metric([status], number)
    yield by_status
    ended = CounterMetricFamily("hms_proposals_ended", "Proposals that ended, by outcome (each end of a run once)",
                                labels=["outcome"])
    counted = figures.tallies.get(tallied.ENDED, {})
    for outcome in OUTCOMES:
        ended.add_metric([outcome], counted.get((outcome, ""), 0.0))
    yield ended
    reviews = figures.reviews
    yield _gauge("hms_reviews_waiting", "Proposals awaiting a human reviewer now", reviews.waiting)
    oldest = (figures.now - reviews.oldest_since).total_seconds() if reviews.oldest_since else 0.0
    yield _gauge("hms_review_oldest_age_seconds", "How long the longest-waiting review has waited (0: none waits)",
                 max(oldest, 0.0))
    if reviews.nearest_deadline is not None:
        yield _gauge("hms_review_nearest_deadline_seconds",
                     "Seconds until the nearest review deadline (negative: passed, not yet timed out)",
                     (reviews.nearest_deadline - figures.now).total_seconds())
    revocations = figures.tallies.get(tallied.REVOCATIONS, {}).get(("", ""), 0.0)
    yield CounterMetricFamily("hms_revocations", "Governance decisions revoked before their proposal ended",
                              value=revocations)
    if figures.advanced is not None:
        yield _gauge("hms_metrics_records_read", "Records this scrape read to advance the tallies (changed lately)",
                     figures.advanced)


def step_metrics(figures: Figures) -> Iterator[Metric]:
    durations = HistogramMetricFamily("hms_step_duration_seconds", "How long each step's try that ended took "
                                      "(its task's start to its record's write)", labels=["step"])
    buckets = figures.tallies.get(tallied.STEP_BUCKET, {})
    sums = figures.tallies.get(tallied.STEP_SUM, {})
    for step in STEP_SERVICES:
        cumulative, found = 0.0, []
        for bound in DURATION_BUCKETS:
            cumulative += buckets.get((step, format_bound(bound)), 0.0)
            found.append((format_bound(bound), cumulative))
        found.append(("+Inf", cumulative + buckets.get((step, "+Inf"), 0.0)))
        durations.add_metric([step], found, sums.get((step, ""), 0.0))
    yield durations
    for tally, name, documentation in (
        (tallied.RETRIES, "hms_service_retries", "Tries of a step after a failed try (5xx, 429, no answer)"),
        (tallied.FAILURES, "hms_service_failures", "Steps that failed for good, after their retries"),
    ):
        family = CounterMetricFamily(name, documentation + ", by the service the step calls", labels=["service"])
        for step, service in STEP_SERVICES.items():
            family.add_metric([service.name], figures.tallies.get(tally, {}).get((step, ""), 0.0))
        yield family


def budget_metrics(found: list[Budget]) -> Iterator[Metric]:
    tokens = GaugeMetricFamily("hms_rate_budget_tokens", "Calls that may go at once now (0 … burst)",
                               labels=["service"])
    per_second = GaugeMetricFamily("hms_rate_budget_per_second", "The rate budget: calls per second",
                                   labels=["service"])
    burst = GaugeMetricFamily("hms_rate_budget_burst", "The rate budget: calls at once after a quiet spell",
                              labels=["service"])
    waits = CounterMetricFamily("hms_rate_budget_waits", "Calls that waited for their slot in the budget",
                                labels=["service"])
    throttled = CounterMetricFamily("hms_rate_budget_throttled", "429s the service answered (each holds every "
                                    "caller back for its Retry-After)", labels=["service"])
    held = GaugeMetricFamily("hms_rate_budget_held", "1 while a 429's Retry-After holds every caller back",
                             labels=["service"])
    for budget in found:
        labels = [budget.service]
        tokens.add_metric(labels, budget.tokens)
        per_second.add_metric(labels, budget.per_second)
        burst.add_metric(labels, budget.burst)
        waits.add_metric(labels, budget.waits)
        throttled.add_metric(labels, budget.throttled)
        held.add_metric(labels, 1 if budget.held_until is not None and budget.held_until.timestamp() > time.time()
                        else 0)
    yield from (tokens, per_second, burst, waits, throttled, held)


def suspension_metrics() -> Iterator[Metric]:
    from hms_management.api.desk import suspensions  # governance's suspensions, read at most every few seconds

    try:
        found = suspensions()
    except Exception as err:  # noqa: BLE001 (a missing connection, anything: the scrape still answers)
        log.warning("metrics: governance's suspensions could not be read: %s", err)
        found = None
    up = found is not None and found.unknown is None
    yield _gauge("hms_governance_up", "1 when governance's suspensions were read (at most a few seconds ago)",
                 1 if up else 0)
    if not up:
        return
    active = GaugeMetricFamily("hms_suspension_active", "1 while governance suspends calls to the service "
                               "(`all`: every service)", labels=["service"])
    suspended = {str(item.get("service")) for item in found.items}
    for service in sorted({*SUSPENDABLE, *suspended}):
        active.add_metric([service], 1 if service in suspended else 0)
    yield active


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
