"""What a proposal would change, as reviewers see it: each of its policy scopes' live rule, read from
the policy service (`GET /svc/policy/scopes/{scope}`), beside the rule the proposal would put live
there (`domain.changes`). Blocking (HTTP); async callers run it in a thread."""

from __future__ import annotations

from urllib.parse import quote

from hms_management.domain.changes import ScopeChange, compare
from hms_management.domain.proposal import InvalidProposal, parse_proposal
from hms_management.domain.services import POLICY, SCOPE_ENDPOINT
from hms_management.orchestration.hook import HmsHook
from hms_management.records.store import ProposalRecord


def changes_of(record: ProposalRecord) -> list[ScopeChange]:
    """For each scope the proposal names, its live rule against the proposed one."""
    try:
        proposal = parse_proposal(record.proposal)
    except InvalidProposal:  # a run made around the admission check: nothing it would put live
        return []
    hook, found = HmsHook(POLICY), []
    for target in proposal.policy_targets():
        answer = hook.call("GET", SCOPE_ENDPOINT.format(scope=quote(target.scope, safe="/")), ok=(200, 404))
        live = answer.body if answer.status == 200 else {}
        found.append(compare(target.scope, live.get("rule"), target.rule, live_version=live.get("version")))
    return found
