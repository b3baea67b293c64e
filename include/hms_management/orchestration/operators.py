"""Operators of the proposal workflow: the governance gate and the three HMS steps.

Each HMS step POSTs one payload to its service through `HmsHook`, in the service's pool, with a
request timeout, an Idempotency-Key and retries only where a retry can help. What a step sends is
decided when its templates are rendered, before it runs, so the UI's *Rendered* tab shows the body
and the key of every try.

Right before its call, a step with a side effect on live policy or on people (policy, notification)
asks governance whether the proposal may still take it (design.md §9): only `approved` lets the
call go; `revoked` ends the proposal there (a business outcome: who, when and why go into the
record and the audit record); `suspended` holds the step in the triggerer, without a worker slot or
a pool slot, until the suspension is lifted (or has lasted `suspension_wait_seconds`); anything else
fails the step, quoted. Every answer goes into the decision log. The audit step is never held back.

The gate asks governance from its worker and lets the proposal go on only on an explicit
`approved`. A proposal sent to a human reviewer is parked: the gate skips every later step, so the
run ends at once (holding no worker, pool slot, trigger or scheduler turn) and the review watcher
(DAG `review_watch`) resumes it from the gate when the reviewer decides or the review times out.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.bases.skipmixin import SkipMixin
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

from hms_management.domain.governance import (
    APPROVED,
    REVIEW,
    REVOKED,
    Check,
    Decision,
    GovernanceAnswerError,
    read_check,
    read_decision_record,
    read_validation,
    within_deadline,
)
from hms_management.domain.outcome import audit_record
from hms_management.domain.proposal import Proposal, proposal_id_of
from hms_management.domain.services import (
    AUDIT,
    CHECK_ENDPOINT,
    DECISIONS_ENDPOINT,
    GOVERNANCE,
    MAX_RETRY_DELAY,
    NOTIFICATIONS,
    POLICY,
    RETRIES,
    RETRY_BACKOFF,
    RETRY_DELAY,
    Service,
    ServiceError,
    TransientServiceError,
    idempotency_key,
    notification_key,
    notification_payload,
    policy_key,
    policy_payload,
)
from hms_management.domain.steps import APPLY_POLICY, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT, STEPS
from hms_management.orchestration.budget import AWAY_AT_LEAST, WaitLonger
from hms_management.orchestration.config import settings
from hms_management.orchestration.fanout import APPLIED, FAILED, WAITING, Call, Sent, send_all
from hms_management.orchestration.hook import HmsHook
from hms_management.orchestration.progress import (
    SKIPPED,
    SUCCESS,
    Progress,
    outcome_of,
    proposal_of,
    validate_run_conf,
)
from hms_management.orchestration.triggers import SuspensionLiftedTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

STEP_SETTINGS = {
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": RETRY_BACKOFF,
    "max_retry_delay": MAX_RETRY_DELAY,
    # What a step came to is in the proposal's record (the desk, /management and the audit step read
    # it there); an XCom of it would cost every step one more round trip to the api-server.
    "do_xcom_push": False,
}


def raise_for_airflow(err: ServiceError) -> None:
    """A transient error is raised as it is (Airflow retries it); a permanent one fails the task at
    once, since no retry changes a refusal."""
    if isinstance(err, TransientServiceError):
        raise err
    raise AirflowFailException(str(err)) from err


class HmsStepOperator(BaseOperator):
    """One step of a proposal: a call to an HMS service per target (a policy scope, an officer group,
    the audit log), each applied at most once per proposal and target, sent in parallel within the
    service's pool and rate budget (`fanout`)."""

    # Filled in at render time from the run's conf and the earlier steps' results: every call this
    # step makes (target, Idempotency-Key, body), as the UI's Rendered tab shows them.
    template_fields = ("requests",)
    # Whether governance is asked right before this step's calls (every step but the audit's).
    guarded = True

    def __init__(self, *, service: Service, **kwargs: Any) -> None:
        super().__init__(pool=service.pool, **{**STEP_SETTINGS, **kwargs})
        self.service = service
        self.requests: list[dict[str, Any]] | None = None

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        self.progress = Progress(context)  # read once per task: rendering and execute share it
        self.calls = self.calls_for(proposal_of(context), context)
        self.requests = [call.shown() for call in self.calls]

    def calls_for(self, proposal: Proposal | None, context: Context) -> list[Call]:
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        progress = self.progress
        if self.guarded and settings().governance_checks:
            self.ask_governance(progress)
        before = (progress.record().steps.get(self.task_id) or {}).get("targets") or {}
        # Sent again: what did not apply under this very key (a re-driven audit step has a key of its own).
        pending = [call for call in self.calls if (before.get(call.target) or {}).get("state") != APPLIED
                   or before[call.target].get("key") != call.idempotency_key]
        reserved = {target: datetime.fromisoformat(entry["reserved_slot"]) for target, entry in before.items()
                    if entry.get("state") == WAITING and entry.get("reserved_slot")}
        self.log.info("POST %s for %d of %d target(s): %s", self.service.endpoint, len(pending), len(self.calls),
                      ", ".join(f"{call.target} (Idempotency-Key {call.idempotency_key})" for call in pending))
        sent = send_all(self.service, pending, parallel=settings().max_parallel_calls, reserved=reserved)
        targets = {**before, **_entries(sent, before, {call.target: call.idempotency_key for call in pending})}
        if (wait := sent.next_slot) is not None:
            self.wait_for_slot(progress, wait, targets)
        if (err := sent.error(self.task_id)) is not None:
            progress.failed(err, targets=targets)  # why the step failed, for the audit record
            raise_for_airflow(err)
        return self.result_of({call.target: targets[call.target]["result"] for call in self.calls}, progress,
                              targets)

    def result_of(self, answers: dict[str, Any], progress: Progress, targets: dict[str, Any]) -> Any:
        progress.succeeded(answers, targets=targets)
        return answers

    # -- the rate budget ---------------------------------------------------------------------------

    def wait_for_slot(self, progress: Progress, wait: WaitLonger, targets: dict[str, Any]) -> None:
        """Give the worker slot back until just before the next reserved slot: a reschedule, not a
        retry; what was sent meanwhile stays recorded, the rest keep their slots."""
        back_in = max(wait.seconds - settings().budget_wait_seconds, AWAY_AT_LEAST)
        progress.write(steps=progress.step(self.task_id, WAITING, targets=targets,
                                           waiting_for=f"its turn in the rate budget of {wait.service} "
                                                       f"(at {wait.slot.isoformat()})"))
        self.log.info("%s; back in %.1f s", wait, back_in)
        raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=back_in))

    # -- governance before the call ----------------------------------------------------------------

    def ask_governance(self, progress: Progress) -> None:
        """Return if governance lets this step's call go now; otherwise end the step as governance says."""
        decision = progress.record().decision or {}
        try:
            if not decision.get("decision_id"):
                raise GovernanceAnswerError("no governance decision is recorded for this proposal, so this step "
                                            "cannot be checked; refused (fail closed)")
            answer = HmsHook(GOVERNANCE).call("POST", CHECK_ENDPOINT, body={
                "decision_id": decision["decision_id"], "proposal_id": progress.proposal_id, "step": self.task_id,
                "service": self.service.name})
            check = read_check(answer.status, answer.body, text=answer.text)
        except ServiceError as err:
            progress.failed(err, check=self._logged(Check("error", reason=str(err)[:500])))
            raise_for_airflow(err)
        entry = self._logged(check)
        if check.status == APPROVED:
            progress.note_check(entry)  # written with the step's result
            return
        if check.status == REVOKED:
            revoked = Decision(**decision).revoked(by=check.by, at=check.at, why=check.reason)
            later = {step: {"state": SKIPPED} for step in STEPS[STEPS.index(self.task_id) + 1:]}
            progress.write(decision=revoked.as_dict(), checks=[entry],
                           steps={**progress.step(self.task_id, SKIPPED), **later})
            raise AirflowSkipException(f"Governance revoked the proposal before {self.task_id}: {revoked.reason}")
        self.wait_for_lift(progress, check, entry)

    def wait_for_lift(self, progress: Progress, check: Check, entry: dict[str, Any]) -> None:
        """Held back by a suspension: wait in the triggerer (no worker slot, no pool slot), or fail
        once the suspension has lasted longer than `suspension_wait_seconds`."""
        config = settings()
        since = _epoch(check.at) or time.time()
        give_up_at = since + config.suspension_wait_seconds
        waiting = f"{check.service} suspended by {check.by} since {check.at}: {check.reason}"
        if time.time() >= give_up_at:
            self.gave_up(progress, waiting, entry)
        self.log.info("Held back: %s; waiting for the lift until %s", waiting,
                      datetime.fromtimestamp(give_up_at, UTC).isoformat())
        progress.write(checks=[entry], steps=progress.step(self.task_id, WAITING, waiting_for=waiting))
        self.defer(trigger=SuspensionLiftedTrigger(service=self.service.name, give_up_at=give_up_at,
                                                   poll_seconds=config.suspension_poll_seconds),
                   method_name="resume_after_suspension", kwargs={"waiting": waiting})

    def resume_after_suspension(self, context: Context, event: dict[str, Any], waiting: str = "") -> Any:
        """Back from the triggerer: the suspension was lifted (check again, then call), or it lasted too long."""
        if event.get("lifted"):
            return self.execute(context)
        return self.gave_up(self.progress, waiting, None)

    def gave_up(self, progress: Progress, waiting: str, entry: dict[str, Any] | None) -> None:
        limit = settings().suspension_wait_seconds
        err = AirflowFailException(f"{waiting}; the step waited longer than suspension_wait_seconds "
                                   f"({limit:.0f} s) for the lift")
        progress.failed(str(err), check=entry)
        raise err

    def _logged(self, check: Check) -> dict[str, Any]:
        """The decision log's entry for one check: which step, which service, governance's answer, when."""
        details = check.as_dict()
        suspended = details.pop("service", None)  # what the suspension names: this service, or all
        return {"step": self.task_id, "service": self.service.name, "answer": details.pop("status"), **details,
                **({"suspended": suspended} if suspended else {}), "checked_at": datetime.now(UTC).isoformat()}


class ApplyPolicyOperator(HmsStepOperator):
    """Put the proposal's rules live: one POST to the policy service per scope."""

    ui_color = "#c8e6c9"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=POLICY, **kwargs)

    def calls_for(self, proposal: Proposal | None, context: Context) -> list[Call]:
        if proposal is None:  # the gate failed it: nothing to send
            return []
        conf = proposal.as_conf()
        return [Call(target.scope, policy_key(proposal.id, target.scope), policy_payload(conf, target.scope,
                                                                                          target.rule))
                for target in proposal.policy_targets()]


class NotifyOfficersOperator(HmsStepOperator):
    """Tell each officer group that the policy is live, and in which scopes at which versions."""

    ui_color = "#bbdefb"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=NOTIFICATIONS, **kwargs)

    def calls_for(self, proposal: Proposal | None, context: Context) -> list[Call]:
        if proposal is None:
            return []
        policy = (self.progress.record().steps.get(APPLY_POLICY) or {}).get("result") or {}
        conf = proposal.as_conf()
        groups = proposal.notify or [settings().default_officer_group]
        return [Call(group, notification_key(proposal.id, group), notification_payload(conf, group, policy))
                for group in groups]


class RecordAuditOperator(HmsStepOperator):
    """Append the proposal's outcome to the audit log, whatever the outcome was.

    Returns the outcome: what /management, the run note and the failure flag read.
    """

    ui_color = "#ffe0b2"
    guarded = False  # every outcome is recorded, whatever governance says

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=AUDIT, trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        self.outcome: dict[str, Any] | None = None

    def calls_for(self, proposal: Proposal | None, context: Context) -> list[Call]:
        run = context["dag_run"]
        # A cleared run (a re-drive, a resumed review) settles again and deserves its own record;
        # retries of one attempt share the key, so a lost answer never writes the record twice.
        attempt = run.clear_number or 0
        key = idempotency_key(proposal_id_of(run.run_id), self.task_id) + (f":rerun{attempt}" if attempt else "")
        record = self.progress.record()
        outcome = outcome_of(record)
        self.outcome = outcome.as_dict()
        body = audit_record(proposal_id=proposal_id_of(run.run_id), run_id=run.run_id, outcome=outcome,
                            decision=record.decision, targets=_targets(record, APPLY_POLICY),
                            notified=_targets(record, NOTIFY_OFFICERS),
                            proposal=proposal.as_conf() if proposal else None, checks=record.checks)
        return [Call(AUDIT_LOG, key, body)]

    def result_of(self, answers: dict[str, Any], progress: Progress, targets: dict[str, Any]) -> dict[str, Any]:
        audit_id = answers[AUDIT_LOG].get("audit_id")
        self.log.info("Outcome %s recorded as audit entry %s", self.outcome, audit_id)
        recorded = {**self.outcome, "audit_id": audit_id}
        progress.succeeded({"audit_id": audit_id}, targets=targets, outcome=recorded)
        return recorded


# The audit step's one call has this target name in its record.
AUDIT_LOG = "audit log"


def _targets(record: Any, step: str) -> dict[str, Any]:
    """What each of a step's targets came to, as the record holds it."""
    return (record.steps.get(step) or {}).get("targets") or {}


def _entries(sent: Sent, before: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    """Each target's entry after this try: applied with its answer (and the key it was applied
    under), failed with its error, or waiting for its reserved slot; tries count the calls sent."""
    entries = {}
    for target, answer in sent.answers.items():
        entries[target] = {"state": APPLIED, "tries": _tries(before, target) + 1, "result": answer,
                           "key": keys[target]}
    for target, err in sent.errors.items():
        entries[target] = {"state": FAILED, "tries": _tries(before, target) + 1, "error": str(err)[:500],
                           "transient": isinstance(err, TransientServiceError)}
    for target, wait in sent.waits.items():
        entries[target] = {"state": WAITING, "tries": _tries(before, target), "reserved_slot": wait.slot.isoformat()}
    return entries


def _tries(before: dict[str, Any], target: str) -> int:
    return (before.get(target) or {}).get("tries", 0)


def consult_governance(hook: HmsHook, proposal: dict[str, Any], *, review_timeout: timedelta,
                       now: datetime) -> Decision:
    """What governance decided about the proposal, read strictly; for a review, where it stands
    now against its deadline. Asking again (a retry, a resumed review) is idempotent: governance
    answers the same decision for the same key."""
    key = idempotency_key(proposal["id"], GOVERNANCE_GATE)
    answer = hook.call("POST", GOVERNANCE.endpoint, body={"proposal": proposal}, idempotency_key=key,
                       ok=(200, 202, 400))
    decision = read_validation(answer.status, answer.body, text=answer.text)
    if decision.status != REVIEW:
        return decision
    endpoint = DECISIONS_ENDPOINT.format(decision_id=decision.decision_id)
    record = read_decision_record(hook.get(endpoint), decision_id=decision.decision_id)
    return within_deadline(record, now=now, timeout=review_timeout)


class GovernanceGateOperator(BaseOperator, SkipMixin):
    """Check the proposal, then ask the HMS Governance Layer about it.

    approved → returns the decision; denied or review timed out → the HMS calls are skipped and the
    decision (with its reason) is kept for the audit record; in review → every later step is skipped
    and the decision kept: the run ends parked, and the review watcher resumes it from here.
    Anything else governance answers fails the gate, naming the answer (fail closed).
    """

    ui_color = "#e1bee7"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(pool=GOVERNANCE.pool, **{**STEP_SETTINGS, **kwargs})

    def execute(self, context: Context) -> dict[str, Any]:
        progress = Progress(context)
        try:  # Only a valid proposal is worth asking about.
            proposal = validate_run_conf(context["dag_run"])
        except AirflowFailException as err:
            progress.failed(str(err))
            raise
        try:
            decision = consult_governance(HmsHook(GOVERNANCE), proposal, review_timeout=settings().review_timeout,
                                          now=datetime.now(UTC))
        except ServiceError as err:
            progress.failed(err)
            raise_for_airflow(err)
        return self.act_on(context, progress, decision)

    def act_on(self, context: Context, progress: Progress, decision: Decision) -> dict[str, Any]:
        """Keep the decision in the record, then go on, park, or end the proposal's HMS steps."""
        if decision.status == APPROVED:
            progress.succeeded(decision=decision.as_dict())
            self.log.info("Approved by governance (decision %s)", decision.decision_id)
            return decision.as_dict()
        # The HMS steps after the gate are skipped. Parked in review, the gate succeeds and the audit
        # step is skipped too (the run ends holding nothing); denied or timed out, the gate is skipped.
        later = [step for step in STEPS if step != GOVERNANCE_GATE] + ([RECORD_AUDIT] if decision.in_review else [])
        gate = progress.step(GOVERNANCE_GATE, SUCCESS if decision.in_review else SKIPPED)
        progress.write(decision=decision.as_dict(), steps={**gate, **{step: {"state": SKIPPED} for step in later}})
        if decision.in_review:
            self.log.info("In human review as decision %s until %s: parked; the review watcher resumes it",
                          decision.decision_id, decision.deadline)
            # Ends this task as success and the later steps as skipped: the run finishes parked.
            self.skip(context["ti"], self.get_flat_relatives(upstream=False))
        raise AirflowSkipException(f"Governance outcome {decision.status}: {decision.reason}")


def _epoch(moment: str | None) -> float | None:
    try:
        return datetime.fromisoformat(moment).timestamp() if moment else None
    except ValueError:
        return None
