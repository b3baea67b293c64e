"""What the operators' metrics count, as plain functions over a proposal's record (docs/metrics.md).

`GET /management/metrics` reads most figures straight from the records (proposals by status, the
oldest review); the rest — how each step went, how each proposal ended, revocations — are tallied
once per change of a record (`records.metrics`). This module decides what one record adds to those
tallies: given what was last counted of it (a mark per item), the increments and the new marks. A
record read twice adds nothing the second time, so the tally may re-read records freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hms_management.domain.outcome import FAILED, OUTCOMES
from hms_management.domain.services import AUDIT, GOVERNANCE, NOTIFICATIONS, POLICY, Service
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT

# The service each timed step calls: its retries and failures are that service's.
STEP_SERVICES: dict[str, Service] = {GOVERNANCE_GATE: GOVERNANCE, APPLY_POLICY: POLICY, NOTIFY_OFFICERS: NOTIFICATIONS,
                                     RECORD_AUDIT: AUDIT}
TIMED_STEPS = tuple(STEP_SERVICES)
# A step's entry in a record ends in Airflow's task state `success` or in `failed` (after its retries);
# `up_for_retry`, `waiting` and `skipped` are not ends of a step that ran.
SUCCEEDED = "success"
STEP_ENDS = (SUCCEEDED, FAILED)
# Upper bounds of the step duration histogram, in seconds: an HMS call takes tens of milliseconds, a
# step with its task process about a second, one held by a rate budget or a slow service longer.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# Where the api-server finds the metrics token the scraper sends (a file: the state folder's locally,
# a compose secret in docker-compose); the stack and the deployment set it.
METRICS_TOKEN_FILE_ENV = "HMS_METRICS_TOKEN_FILE"

# Tallies by name (the metrics code names its Prometheus metrics after them).
ENDED = "ended"  # label: outcome
STEP_COUNT, STEP_SUM, STEP_BUCKET = "step_count", "step_seconds_sum", "step_bucket"  # label: step (bucket: le)
RETRIES, FAILURES = "retries", "failures"  # label: step
REVOCATIONS = "revocations"
# Items of a record that are counted, each with its own mark.
OUTCOME_ITEM, REVOKED_ITEM = "outcome", "revoked"


@dataclass(frozen=True)
class Increment:
    tally: str
    label: str = ""
    bucket: str = ""
    by: float = 1.0


@dataclass
class Counted:
    """What one record adds to the tallies, and the marks to keep for its items."""

    increments: list[Increment] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)


def bucket_of(seconds: float) -> str:
    """The histogram bucket a duration falls in: the smallest bound above it, or +Inf."""
    return next((format_bound(bound) for bound in DURATION_BUCKETS if seconds <= bound), "+Inf")


def format_bound(bound: float) -> str:
    return repr(float(bound))


def count(*, status: str, ended_at: datetime | None, steps: dict[str, Any] | None, decision: dict[str, Any] | None,
          seen: dict[str, str]) -> Counted:
    """What a record adds since its items were counted with the marks `seen`.

    - each timed step, once per end (a new try number or state): its duration (`ended_at - started_at`
      of the try that ended), the retries before that end (tries after a failed try of the same
      attempt; a re-driven step's first new try is not a retry), and a failure if it ended failed;
    - the proposal's end, once per end of its run (an outcome and the run's end time): `ended`;
    - a revocation of governance's decision, once."""
    counted = Counted()
    for step in TIMED_STEPS:
        entry = (steps or {}).get(step) or {}
        state, tries = entry.get("state"), _whole(entry.get("tries"))
        if state not in STEP_ENDS or not entry.get("ended_at") or tries < 1:
            continue
        mark = f"{tries}:{state}:{entry['ended_at']}"
        before = seen.get(step)
        if before == mark:
            continue
        counted.marks[step] = mark
        earlier_tries = _whole(before.split(":", 1)[0]) if before else 0
        retries = tries - 1 - earlier_tries if earlier_tries else tries - 1
        if retries > 0:
            counted.increments.append(Increment(RETRIES, step, by=retries))
        if state == FAILED:
            counted.increments.append(Increment(FAILURES, step))
        seconds = _seconds_between(entry.get("started_at"), entry["ended_at"])
        if seconds is not None:
            counted.increments += [Increment(STEP_COUNT, step), Increment(STEP_SUM, step, by=seconds),
                                   Increment(STEP_BUCKET, step, bucket_of(seconds))]
    if status in OUTCOMES and ended_at is not None:
        mark = f"{status}@{ended_at.isoformat()}"
        if seen.get(OUTCOME_ITEM) != mark:
            counted.marks[OUTCOME_ITEM] = mark
            counted.increments.append(Increment(ENDED, status))
    revoked_at = (decision or {}).get("revoked_at")
    if revoked_at and seen.get(REVOKED_ITEM) != str(revoked_at):
        counted.marks[REVOKED_ITEM] = str(revoked_at)
        counted.increments.append(Increment(REVOCATIONS))
    return counted


def _whole(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _seconds_between(started: Any, ended: Any) -> float | None:
    try:
        seconds = (datetime.fromisoformat(str(ended)) - datetime.fromisoformat(str(started))).total_seconds()
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
