"""Every `[hms_management]` setting of airflow.cfg, its default and its meaning, in one place.

The values in effect come from Airflow's configuration (airflow.cfg, or AIRFLOW__HMS_MANAGEMENT__<KEY>
in the environment); `orchestration.config.settings()` reads them. A key left out falls back to the
default here, so code never spells a default of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta

CONFIG_SECTION = "hms_management"


@dataclass(frozen=True)
class Settings:
    # How long a proposal may wait for a human reviewer, counted from the moment governance put it
    # in review (the decision's own creation time), before its outcome is review_timeout.
    review_timeout_seconds: float = 72 * 3600
    # How often the review watcher asks governance for decisions taken since it last looked: one
    # request per interval for every proposal in review.
    review_watch_poll_seconds: float = 2.0
    # The longest one watch lasts before the watcher looks again from a fresh run (each is a run
    # of DAG review_watch: its history stays short and readable).
    review_watch_cycle_seconds: float = 600.0
    # A reviewer is reminded this long before a review times out (kind review_reminder).
    review_reminder_seconds: float = 12 * 3600
    # A proposal not finished this long after it was queued, time in review not counted, is
    # reported to the officers (kind deadline). 0 switches the alert off.
    proposal_deadline_seconds: float = 3600.0
    # How long an HMS call may take before it counts as unanswered (transient: retried, same key).
    request_timeout_seconds: float = 10.0
    # A call whose rate-budget slot is at most this far off waits for it in its task; a later slot
    # gives the worker slot back until just before it (design.md §10). Also how early it comes back.
    budget_wait_seconds: float = 2.0
    # Ask governance right before each HMS step's call whether the proposal may still take it
    # (design.md §9): a revoked approval or a suspended service stops the call. Off only to measure
    # what the check costs (make bench's capabilities scenario); fail closed either way at the gate.
    governance_checks: bool = True
    # Every HMS call waits for its slot in its service's rate budget (design.md §10). Off only to
    # measure what the limiter costs (make bench's capabilities scenario): nothing then bounds the
    # calls a second but the pools, and a 429 holds nobody back.
    rate_budgets: bool = True
    # How often a step held back by a suspended service looks whether it was lifted (in the
    # triggerer, holding no worker slot and no pool slot), and how long it waits before it fails.
    suspension_poll_seconds: float = 2.0
    suspension_wait_seconds: float = 86400.0
    # An idle scheduler (nothing queued or at work) waits up to this long for a sign of new work (a
    # proposal admitted, a run resumed) before it loops again: an idle stack rests instead of
    # querying its database twenty times a second. Work that sends no sign (a reviewed or rescheduled
    # step, a run triggered in the UI) starts up to this much later. 0: loop as Airflow does
    # (docs/performance.md, "An idle stack").
    scheduler_rest_seconds: float = 2.0
    # Most /management requests doing database work at once in each api-server process; more wait
    # their turn (awaiting, holding no thread). The Airflow UI is served by the same processes: a
    # crowd of agents queues here instead of taking the UI's turns at the CPU (measured:
    # docs/reliability.md, "Load").
    management_concurrency: int = 1
    # Most targets (policy scopes) one proposal may name; more is refused with a 400 (design.md §11).
    max_targets: int = 50
    # The officer group told when a proposal names none (`notify`); the deployment lists its groups
    # in config/officer_groups.json.
    default_officer_group: str = "foia-officers"
    # Most calls one step sends at once to its service (a step with more targets sends the rest as
    # these finish); the step holds as many of its service's pool slots, so the pool still bounds
    # the calls in flight. At most the smallest HMS pool (config/pools.json).
    max_parallel_calls: int = 4
    # Users who may decide reviews (comma-separated Airflow user names); never a proposal's submitter.
    reviewers: str = "reviewer"
    # Most proposal runs running at once: more wait queued, in submission order (priority: high
    # first), so a burst flows through instead of advancing together. More buys throughput, fewer an
    # earlier first answer (measured: docs/performance.md, `make bench-max-running`).
    max_running_proposals: int = 24
    # How often the api-server's records keeper compares the proposals' records with Airflow's runs
    # and repairs those that disagree (a write lost to a crash): a record is right again within
    # this plus ten seconds.
    records_repair_seconds: float = 15.0
    # Backlog sweep cadence (cron, or `none` for manual sweeps).
    backlog_sweep_schedule: str = "*/15 * * * *"
    # Most proposals one sweep starts: bounds the burst of new runs a sweep makes.
    backlog_sweep_batch_size: int = 100
    # Most re-drives per proposal: an outage that outlasts this many sweeps is for a human.
    backlog_redrive_limit: int = 3
    # Only runs that failed this recently are re-driven.
    backlog_redrive_window_hours: float = 24.0
    # Most re-drives one sweep starts, whatever an outage left behind.
    backlog_redrives_per_sweep: int = 50

    @property
    def review_timeout(self) -> timedelta:
        return timedelta(seconds=self.review_timeout_seconds)

    @property
    def reviewer_names(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.reviewers.split(",") if name.strip())


class SettingsError(ValueError):
    """A value in [hms_management] that is not of its setting's type; the message names it."""


def load(value_of: Callable[[str], str | None]) -> Settings:
    """Settings from `value_of(key)` (the raw configured text, None when absent)."""
    values = {}
    for setting in fields(Settings):
        raw = value_of(setting.name)
        if raw is None:
            continue
        kind = {"float": float, "int": int, "str": str, "bool": _boolean}[str(setting.type)]
        try:
            values[setting.name] = kind(raw.strip()) if kind is not str else raw
        except ValueError:
            expected = "true or false" if kind is _boolean else kind.__name__
            raise SettingsError(f"[{CONFIG_SECTION}] {setting.name} = {raw!r}: expected {expected}") from None
    return Settings(**values)


def _boolean(text: str) -> bool:
    """As Airflow reads a boolean setting: true/false, t/f, 1/0, in any case."""
    value = text.lower()
    if value in ("true", "t", "1"):
        return True
    if value in ("false", "f", "0"):
        return False
    raise ValueError(text)
