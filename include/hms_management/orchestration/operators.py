"""Operators of the proposal workflow: the governance gate and the three HMS steps.

Each HMS step POSTs one payload to its service through `HmsHook`, in the service's pool, with a
request timeout, an Idempotency-Key and retries only where a retry can help. What a step sends is
decided when its templates are rendered, before it runs, so the UI's *Rendered* tab shows the body
and the key of every try.

The gate asks governance from its worker and lets the proposal go on only on an explicit
`approved`. A proposal sent to a human reviewer is parked: the gate skips every later step, so the
run ends at once (holding no worker, pool slot, trigger or scheduler turn) and the review watcher
(DAG `review_watch`) resumes it from the gate when the reviewer decides or the review times out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.bases.skipmixin import SkipMixin
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from hms_management.domain.governance import (
    APPROVED,
    DENIED,
    REVIEW,
    REVIEW_TIMEOUT,
    Decision,
    GovernanceAnswerError,
    read_decision_record,
    read_validation,
    within_deadline,
)
from hms_management.domain.outcome import audit_record
from hms_management.domain.proposal import proposal_id_of
from hms_management.domain.services import (
    AUDIT,
    DECISIONS_ENDPOINT,
    GOVERNANCE,
    MAX_RETRY_DELAY,
    NOTIFICATIONS,
    POLICY,
    RETRIES,
    RETRY_BACKOFF,
    RETRY_DELAY,
    PermanentServiceError,
    Service,
    ServiceError,
    TransientServiceError,
    idempotency_key,
    notification_payload,
    policy_payload,
)
from hms_management.domain.steps import APPLY_POLICY, DECISION_KEY, ERROR_KEY, GOVERNANCE_GATE, NOTIFY_OFFICERS
from hms_management.orchestration.config import settings
from hms_management.orchestration.hook import HmsHook
from hms_management.orchestration.run_state import (
    StepResults,
    outcome_of_run,
    step_error,
    validate_run_conf,
    validated_proposal,
)

if TYPE_CHECKING:
    from datetime import timedelta

    from airflow.sdk import Context

RETRY_SETTINGS = {
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": RETRY_BACKOFF,
    "max_retry_delay": MAX_RETRY_DELAY,
}


def keep_error(context: Context, err: ServiceError) -> None:
    """The last try's error, kept for the audit record: it is why the step failed."""
    context["ti"].xcom_push(key=ERROR_KEY, value=step_error(err, transient=isinstance(err, TransientServiceError)))


def raise_for_airflow(err: ServiceError) -> None:
    """A transient error is raised as it is (Airflow retries it); a permanent one fails the task at
    once, since no retry changes a refusal."""
    if isinstance(err, TransientServiceError):
        raise err
    raise AirflowFailException(str(err)) from err


class HmsStepOperator(BaseOperator):
    """POST one step of a proposal to an HMS service, applied at most once per proposal and step."""

    # Filled in at render time from the run's conf and the earlier steps' results.
    template_fields = ("request_body", "idempotency_key")

    def __init__(self, *, service: Service, **kwargs: Any) -> None:
        super().__init__(pool=service.pool, **{**RETRY_SETTINGS, **kwargs})
        self.service = service
        self.request_body: dict[str, Any] | None = None
        self.idempotency_key: str | None = None

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        run = context["dag_run"]
        proposal = validated_proposal(context)
        self.idempotency_key = self.key_for(proposal_id_of(run.run_id, run.conf), context)
        self.request_body = self.body_for(proposal, context)

    def body_for(self, proposal: dict[str, Any] | None, context: Context) -> dict[str, Any]:
        raise NotImplementedError

    def key_for(self, proposal_id: str, context: Context) -> str:
        return idempotency_key(proposal_id, self.task_id)

    def execute(self, context: Context) -> Any:
        self.log.info("POST %s (Idempotency-Key %s)", self.service.endpoint, self.idempotency_key)
        try:
            answer = HmsHook(self.service).post(self.request_body, idempotency_key=self.idempotency_key)
        except ServiceError as err:
            keep_error(context, err)
            raise_for_airflow(err)
        return self.result_of(answer, context)

    def result_of(self, answer: dict[str, Any], context: Context) -> Any:
        return answer


class ApplyPolicyOperator(HmsStepOperator):
    """Put the proposal's rule live: POST the proposal to the policy service."""

    ui_color = "#c8e6c9"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=POLICY, **kwargs)

    def body_for(self, proposal: dict[str, Any] | None, context: Context) -> dict[str, Any]:
        return policy_payload(proposal)


class NotifyOfficersOperator(HmsStepOperator):
    """Tell the officers the policy is live."""

    ui_color = "#bbdefb"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=NOTIFICATIONS, **kwargs)

    def body_for(self, proposal: dict[str, Any] | None, context: Context) -> dict[str, Any]:
        return notification_payload(proposal, context["ti"].xcom_pull(task_ids=APPLY_POLICY))


class RecordAuditOperator(HmsStepOperator):
    """Append the proposal's outcome to the audit log, whatever the outcome was.

    Returns the outcome: what /management, the run note and the failure flag read.
    """

    ui_color = "#ffe0b2"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=AUDIT, trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        self.outcome: dict[str, Any] | None = None

    def key_for(self, proposal_id: str, context: Context) -> str:
        # A cleared run (a re-drive, a resumed review) settles again and deserves its own record;
        # retries of one attempt share the key, so a lost answer never writes the record twice.
        attempt = context["dag_run"].clear_number or 0
        key = super().key_for(proposal_id, context)
        return key if attempt == 0 else f"{key}:rerun{attempt}"

    def body_for(self, proposal: dict[str, Any] | None, context: Context) -> dict[str, Any]:
        results = StepResults(context["ti"])
        outcome = outcome_of_run(context, results)
        self.outcome = outcome.as_dict()
        run = context["dag_run"]
        return audit_record(
            proposal_id=proposal_id_of(run.run_id, run.conf),
            run_id=run.run_id,
            outcome=outcome,
            decision=results.get(GOVERNANCE_GATE, DECISION_KEY),
            policy=results.get(APPLY_POLICY),
            notification=results.get(NOTIFY_OFFICERS),
            proposal=proposal,
        )

    def result_of(self, answer: dict[str, Any], context: Context) -> dict[str, Any]:
        self.log.info("Outcome %s recorded as audit entry %s", self.outcome, answer.get("audit_id"))
        return {**self.outcome, "audit_id": answer.get("audit_id")}


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
        super().__init__(pool=GOVERNANCE.pool, **{**RETRY_SETTINGS, **kwargs})

    def execute(self, context: Context) -> dict[str, Any]:
        try:  # Only a valid proposal is worth asking about.
            proposal = validate_run_conf(context["dag_run"])
        except AirflowFailException as err:
            context["ti"].xcom_push(key=ERROR_KEY, value=step_error(str(err), transient=False))
            raise
        try:
            decision = consult_governance(HmsHook(GOVERNANCE), proposal, review_timeout=settings().review_timeout,
                                          now=datetime.now(UTC))
        except ServiceError as err:
            keep_error(context, err)
            raise_for_airflow(err)
        return self.act_on(context, decision)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Where a proposal parked by release 0.1 (deferred on `hms_management.governance`'s trigger)
        resumes: its event is read as strictly as an answer of governance."""
        status = event.get("status")
        if status == "error":
            err = (TransientServiceError if event.get("transient") else PermanentServiceError)(str(event.get("reason")))
            keep_error(context, err)
            raise_for_airflow(err)
        if status not in (APPROVED, DENIED, REVIEW_TIMEOUT):
            err = GovernanceAnswerError(f"the review ended with {event!r}: not a decision; refused (fail closed)")
            keep_error(context, err)
            raise_for_airflow(err)
        return self.act_on(context, Decision(status, str(event.get("reason") or status), event.get("decision_id"),
                                             reviewer=event.get("reviewer")))

    def act_on(self, context: Context, decision: Decision) -> dict[str, Any]:
        ti = context["ti"]
        ti.xcom_push(key=DECISION_KEY, value=decision.as_dict())
        if decision.status == APPROVED:
            self.log.info("Approved by governance (decision %s)", decision.decision_id)
            return decision.as_dict()
        if decision.status == REVIEW:
            self.log.info("In human review as decision %s until %s: parked; the review watcher resumes it",
                          decision.decision_id, decision.deadline)
            # Ends this task as success and the later steps as skipped: the run finishes parked.
            self.skip(ti, self.get_flat_relatives(upstream=False))
        raise AirflowSkipException(f"Governance outcome {decision.status}: {decision.reason}")
