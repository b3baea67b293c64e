"""Operators of the proposal workflow: the governance gate and the HMS calls.

Each HMS call is an HttpOperator that POSTs one step's payload to its service, in the service's
pool, with a request timeout, an Idempotency-Key and retries only where a retry can help.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import BaseOperator, TriggerRule, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from hms_management.domain.outcome import BUSINESS_OUTCOMES, audit_record
from hms_management.domain.services import (
    AUDIT,
    CONFIG_SECTION,
    GOVERNANCE,
    MAX_RETRY_DELAY,
    NOTIFICATIONS,
    POLICY,
    REQUEST_TIMEOUT_SECONDS,
    RETRIES,
    RETRY_BACKOFF,
    RETRY_DELAY,
    PermanentServiceError,
    Service,
    TransientServiceError,
    classify,
    idempotency_key,
    notification_payload,
    policy_payload,
)
from hms_management.domain.steps import DECISION_KEY, ERROR_KEY
from hms_management.orchestration.run_state import (
    StepResults,
    is_transient_error,
    outcome_of_run,
    step_error,
    validate_run_conf,
    validated_proposal,
)
from hms_management.orchestration.triggers import REVIEW, GovernanceDecisionTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context
    from requests import Response

RETRY_SETTINGS = {
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": RETRY_BACKOFF,
    "max_retry_delay": MAX_RETRY_DELAY,
}


class HmsCallOperator(HttpOperator):
    """POST one step of a proposal to an HMS service, applied at most once per proposal and step."""

    def __init__(self, *, service: Service, **kwargs: Any) -> None:
        kwargs = {**RETRY_SETTINGS, **kwargs}
        super().__init__(
            http_conn_id=service.conn_id,
            endpoint=service.endpoint,
            method="POST",
            pool=service.pool,
            # check_response off: classify() decides which answers are worth a retry.
            extra_options={"timeout": REQUEST_TIMEOUT_SECONDS, "check_response": False},
            **kwargs,
        )
        self.service = service

    @property
    def hook(self) -> HttpHook:
        # HttpOperator's own hook fetches the connection to look up its hook class in the providers
        # registry, then HttpHook fetches it again to send: two round trips to the api-server per
        # call, and the registry's discovery in every task process. HMS connections are http.
        return HttpHook(method=self.method, http_conn_id=self.http_conn_id, auth_type=self.auth_type,
                        tcp_keep_alive=self.tcp_keep_alive, tcp_keep_alive_idle=self.tcp_keep_alive_idle,
                        tcp_keep_alive_count=self.tcp_keep_alive_count,
                        tcp_keep_alive_interval=self.tcp_keep_alive_interval)

    def payload(self, proposal: dict[str, Any], context: Context) -> dict[str, Any]:
        raise NotImplementedError

    def idempotency_key(self, proposal_id: str, context: Context) -> str:
        return idempotency_key(proposal_id, self.task_id)

    def execute(self, context: Context) -> Any:
        proposal = validated_proposal(context)
        proposal_id = proposal["id"] if proposal else context["dag_run"].run_id
        self.data = json.dumps(self.payload(proposal, context))
        self.headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": self.idempotency_key(proposal_id, context),
        }
        self.log.info("%s %s for proposal %s", self.method, self.endpoint, proposal_id)
        try:
            return super().execute(context)
        except Exception as err:
            # Kept for the audit record: the last try's error is the reason the step failed.
            context["ti"].xcom_push(key=ERROR_KEY, value=step_error(err, transient=is_transient_error(err)))
            raise

    def process_response(self, context: Context, response: Response | list[Response]) -> Any:
        try:
            classify(response)
        except PermanentServiceError as err:
            raise AirflowFailException(str(err)) from err  # no retry changes a 4xx
        except TransientServiceError:
            raise
        return response.json()


class ApplyPolicyOperator(HmsCallOperator):
    """Put the proposal's rule live: POST the proposal to the policy service."""

    ui_color = "#c8e6c9"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(service=POLICY, **kwargs)

    def payload(self, proposal: dict[str, Any], context: Context) -> dict[str, Any]:
        return policy_payload(proposal)


class NotifyOfficersOperator(HmsCallOperator):
    """Tell the officers the policy is live."""

    ui_color = "#bbdefb"

    def __init__(self, *, policy_task_id: str, **kwargs: Any) -> None:
        super().__init__(service=NOTIFICATIONS, **kwargs)
        self.policy_task_id = policy_task_id

    def payload(self, proposal: dict[str, Any], context: Context) -> dict[str, Any]:
        return notification_payload(proposal, context["ti"].xcom_pull(task_ids=self.policy_task_id))


class RecordAuditOperator(HmsCallOperator):
    """Append the proposal's outcome to the audit log, whatever the outcome was.

    Returns the outcome, which the run note and the failure flag read.
    """

    ui_color = "#ffe0b2"

    def __init__(self, *, gate_task_id: str, policy_task_id: str, notify_task_id: str, **kwargs: Any):
        super().__init__(service=AUDIT, trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        self.gate_task_id = gate_task_id
        self.policy_task_id = policy_task_id
        self.notify_task_id = notify_task_id

    def idempotency_key(self, proposal_id: str, context: Context) -> str:
        # A cleared run (a re-drive) settles again and deserves its own record; retries of one
        # attempt share the key, so a lost answer never writes the record twice.
        attempt = context["dag_run"].clear_number or 0
        key = super().idempotency_key(proposal_id, context)
        return key if attempt == 0 else f"{key}:rerun{attempt}"

    def payload(self, proposal: dict[str, Any] | None, context: Context) -> dict[str, Any]:
        results = StepResults(context["ti"])
        self.outcome = outcome_of_run(context, results)
        run = context["dag_run"]
        return audit_record(
            proposal_id=proposal["id"] if proposal else (run.conf or {}).get("id") or run.run_id,
            run_id=run.run_id,
            outcome=self.outcome,
            decision=results.get(self.gate_task_id, DECISION_KEY),
            policy=results.get(self.policy_task_id),
            notification=results.get(self.notify_task_id),
            proposal=proposal,
        )

    def process_response(self, context: Context, response: Response | list[Response]) -> Any:
        recorded = super().process_response(context, response)
        self.log.info("Outcome %s recorded as audit entry %s", self.outcome.headline, recorded.get("audit_id"))
        return {**self.outcome.as_dict(), "audit_id": recorded.get("audit_id")}


class GovernanceGateOperator(BaseOperator):
    """Ask the HMS Governance Layer about the proposal; wait, deferred, while a human reviews it.

    approved → returns the decision; denied or review timed out → the downstream HMS calls are
    skipped and the decision (with its reason) is kept for the audit record and the run note.
    """

    ui_color = "#e1bee7"

    def __init__(
        self,
        *,
        review_timeout: float | None = None,
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool=GOVERNANCE.pool, **{**RETRY_SETTINGS, **kwargs})
        self.review_timeout = review_timeout
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> dict[str, Any]:
        try:  # Only a valid proposal is worth asking about.
            proposal = validate_run_conf(context["dag_run"])
        except AirflowFailException as err:
            context["ti"].xcom_push(key=ERROR_KEY, value=step_error(str(err), transient=False))
            raise
        timeout = self.review_timeout or conf.getfloat(CONFIG_SECTION, "review_timeout_seconds", fallback=72 * 3600)
        trigger = GovernanceDecisionTrigger(
            proposal=proposal,
            review_deadline=time.time() + timeout,
            poll_interval=self.poll_interval or conf.getfloat(CONFIG_SECTION, "review_poll_seconds", fallback=5.0),
            request_timeout=REQUEST_TIMEOUT_SECONDS,
        )
        # Asked here, not in the triggerer: an answer at once (the common case) then costs one
        # HTTP call instead of a trip through the triggerer's 1 s loop and back to a worker
        # (about 3 s measured). Only a proposal in human review waits, deferred.
        answer = asyncio.run(trigger.ask())
        if answer["status"] != REVIEW:
            return self.execute_complete(context, answer)
        trigger.decision_id = answer["decision_id"]
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        status, reason = event["status"], event.get("reason")
        if status == "error":
            context["ti"].xcom_push(key=ERROR_KEY, value=step_error(reason, transient=bool(event.get("transient"))))
            if event.get("transient"):
                raise TransientServiceError(reason)
            raise AirflowFailException(reason)
        context["ti"].xcom_push(key=DECISION_KEY, value=event)
        if status in BUSINESS_OUTCOMES:
            raise AirflowSkipException(f"Governance outcome {status}: {reason}")
        self.log.info("Approved by governance (decision %s)", event.get("decision_id"))
        return event
