"""Synthetic proposal records for the desk's page-time benchmark (`hms_bench.desk_pages`), in the form
real proposals leave them: a record per proposal with its proposal, decision, steps and outcome,
its status settled by the same rule as every write (`domain.outcome.standing`).

Mix, oldest first, one submission every `step_s` seconds up to a minute ago: the newest `queued` are
queued, the `running` before them running; every 50th is a high-impact review — awaiting review
within the review timeout, review_timeout before; every 25th denied; every 40th failed (half at
apply_policy, half at notify_officers); the rest completed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from hms_management.domain.outcome import standing
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT

SUBMITTERS = ("hms-a2a", "hms-a2a", "hms-a2a", "planning-portal", "permits-office", "housing-desk")
TITLES = ("Optimise the FOIA backlog", "Weekend permit batch", "Raise the R2 height limit", "Parking fees by zone",
          "Extend library opening hours", "Fast-track small housing permits", "Bus lanes on Main Street",
          "Snow clearing priorities", "LED street lights", "Reorder the inspection queue",
          "Waive late fees for seniors", "Merge duplicate case files", "Archive closed FOIA requests",
          "Rebalance caseworker load", "Night-time noise permits", "School crossing guards", "Tree planting grants",
          "Food truck zones", "Cap building-permit wait at 20 days", "Digitise paper forms")
COLUMNS = ("id", "run_id", "status", "reason", "failed_step", "title", "named_submitter", "triggered_by", "priority",
           "impact", "proposal", "run_state", "decision", "outcome", "steps", "submitted_at", "queued_at",
           "started_at", "ended_at", "updated_at")


def _id(kind: str, i: int) -> str:
    return hashlib.md5(f"{kind}{i}".encode()).hexdigest()


def _kind(i: int, n: int, submitted: datetime, now: datetime, *, queued: int, running: int,
          review_timeout: timedelta) -> str:
    if i > n - queued:
        return "queued"
    if i > n - queued - running:
        return "running"
    if i % 50 == 7:
        return "awaiting_governance" if submitted > now - review_timeout else "review_timeout"
    if i % 25 == 3:
        return "denied"
    if i % 40 == 11:
        return "failed"
    return "completed"


def records(n: int, *, now: datetime, step_s: float, review_timeout: timedelta, prefix: str,
            queued: int = 12, running: int = 12) -> Iterator[tuple[Any, ...]]:
    """N rows of the `proposals` table, in COLUMNS order, oldest first."""
    for i in range(1, n + 1):
        submitted = now - timedelta(seconds=(n - i) * step_s + 60)
        kind = _kind(i, n, submitted, now, queued=queued, running=running, review_timeout=review_timeout)
        proposal_id = f"{prefix}{i:06d}"
        title = f"{TITLES[i % 20]} #{i}"
        conf = {"id": proposal_id, "title": title, "submitted_by": SUBMITTERS[i % 6],
                "rule": {"queue": title.split(" ")[1].lower(), "max_age_days": 10 + i % 30},
                "priority": "high" if i % 10 == 0 else "normal", "impact": "high" if i % 50 == 7 else "normal"}
        decided = submitted + timedelta(seconds=1.2)
        decision, outcome, steps, ended, run_state = _facts(kind, i, decided, review_timeout)
        settled = standing(run_state, outcome, decision)
        assert settled.status == kind, (kind, settled)
        yield (proposal_id, f"proposal__{proposal_id}", settled.status, settled.reason, settled.failed_step, title,
               conf["submitted_by"], "backlog_sweeper" if i % 7 == 0 else "agent", conf["priority"], conf["impact"],
               json.dumps(conf), run_state, json.dumps(decision) if decision else None,
               json.dumps(outcome) if outcome else None, json.dumps(steps), submitted, submitted,
               None if kind == "queued" else submitted + timedelta(seconds=0.5), ended, ended or submitted)


def _facts(kind: str, i: int, decided: datetime, review_timeout: timedelta) -> tuple[Any, ...]:
    """decision, outcome, steps, ended_at and run state of a proposal of this kind."""
    if kind == "queued":
        return None, None, {}, None, "queued"
    deadline = (decided + review_timeout).isoformat()
    decision = {"status": "approved", "reason": "no governance rule objects", "decision_id": _id("decision", i),
                "created_at": decided.isoformat()}
    ended = decided + timedelta(seconds=5)
    step = {"state": "success", "tries": 1, "ended_at": ended.isoformat()}
    skipped = {"state": "skipped"}
    if kind == "running":
        return decision, None, {GOVERNANCE_GATE: step}, None, "running"
    if kind == "awaiting_governance":
        decision |= {"status": "review", "reason": "high-impact proposal: waiting for a human reviewer",
                     "deadline": deadline}
        return decision, None, {GOVERNANCE_GATE: skipped, APPLY_POLICY: skipped, NOTIFY_OFFICERS: skipped,
                                RECORD_AUDIT: skipped}, decided + timedelta(seconds=2), "success"
    if kind in ("denied", "review_timeout"):
        reason = ("processing is not allowed on weekends (day: Sat)" if kind == "denied" else
                  f"no reviewer decided on {decision['decision_id']} before the review deadline {deadline}")
        decision |= {"status": kind, "reason": reason} | ({"deadline": deadline} if kind == "review_timeout" else {})
        if kind == "review_timeout":
            ended = decided + review_timeout + timedelta(seconds=4)
        outcome = {"outcome": kind, "reason": reason, "failed_step": None, "transient": False,
                   "audit_id": _id("audit", i)}
        return decision, outcome, {GOVERNANCE_GATE: skipped, APPLY_POLICY: skipped, NOTIFY_OFFICERS: skipped,
                                   RECORD_AUDIT: step}, ended, "success"
    policy = {**step, "result": {"version": 1, "policy_id": _id("policy", i)}}
    if kind == "failed":
        at_policy = i % 2 == 0
        error = ('PermanentServiceError: POST /svc/policy answered 422: {"error":"rule conflicts with rule 12"}'
                 if at_policy else "TransientServiceError: POST /notifications answered 503")
        failed_step = APPLY_POLICY if at_policy else NOTIFY_OFFICERS
        steps = {GOVERNANCE_GATE: step, failed_step: {"state": "failed", "tries": 1 if at_policy else 4,
                                                      "error": error, "transient": not at_policy},
                 RECORD_AUDIT: step}
        if not at_policy:
            steps[APPLY_POLICY] = policy
        outcome = {"outcome": "failed", "reason": error, "failed_step": failed_step, "transient": not at_policy,
                   "audit_id": _id("audit", i)}
        return decision, outcome, steps, ended, "failed"
    outcome = {"outcome": "completed", "reason": "policy applied and officers notified", "failed_step": None,
               "transient": False, "audit_id": _id("audit", i)}
    return decision, outcome, {GOVERNANCE_GATE: step, APPLY_POLICY: policy,
                               NOTIFY_OFFICERS: {**step, "result": {"notification_id": _id("notification", i)}},
                               RECORD_AUDIT: step}, ended, "success"
