"""The rules of the HMS Governance Layer, as pure functions over a proposal.

A proposal is denied when it asks for processing on a weekend, sent to a human reviewer when its
impact is high, and approved otherwise. The denial comes first: no one should review a proposal
that no reviewer may approve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

APPROVED = "approved"
DENIED = "denied"
REVIEW = "review"
Status = Literal["approved", "denied", "review"]

WEEKEND = ("Sat", "Sun")


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str


def judge(proposal: Mapping[str, Any]) -> Verdict:
    """What governance says about a proposal before any human looks at it."""
    day = proposal.get("day")
    if day in WEEKEND:
        return Verdict(DENIED, f"processing is not allowed on weekends (day: {day})")
    if proposal.get("impact") == "high":
        return Verdict(REVIEW, "high-impact proposal: waiting for a human reviewer")
    return Verdict(APPROVED, "no governance rule objects")


def reviewed(*, approved: bool, reviewer: str, reason: str | None) -> Verdict:
    """A reviewer's decision on a proposal in review; without a reason, the reason names them."""
    status: Status = APPROVED if approved else DENIED
    return Verdict(status, reason or f"{status} by {reviewer}")
