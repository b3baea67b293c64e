"""What a proposal's `priority` changes: the weight of its tasks (which step goes first when a pool
is full) and where it stands in the queue of runs waiting to start."""

from __future__ import annotations

from datetime import datetime, timedelta

# Far apart, so that under a full pool a high-priority proposal's next step goes first.
PRIORITY_WEIGHTS = {"low": 1, "normal": 10, "high": 100}
# Queued runs start in the order of their `run_after` (at most `max_running_proposals` run at
# once): a high-priority proposal is dated this far back, ahead of anything queued in that time.
HIGH_PRIORITY_HEAD_START = timedelta(days=1)


def run_after_for(priority: str, now: datetime) -> datetime:
    """When the proposal's run may start, which also orders it among the runs waiting to start."""
    return now - HIGH_PRIORITY_HEAD_START if priority == "high" else now
