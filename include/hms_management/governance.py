"""Where the governance trigger lived before the package was split (kept for parked proposals).

A proposal parked in human review by an earlier release has this class path stored in the
metadata database (the `trigger` table); the triggerer imports it from there on every start.
"""

from hms_management.orchestration.triggers import GovernanceDecisionTrigger

__all__ = ["GovernanceDecisionTrigger"]
