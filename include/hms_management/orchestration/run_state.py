"""What a proposal run has recorded so far, read by its steps: the proposal, each step's result and
error, and the outcome settled from them. Runs in task processes (workers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from hms_management.domain.outcome import FAILED, settle
from hms_management.domain.proposal import InvalidProposal, parse_proposal
from hms_management.domain.services import TransientServiceError
from hms_management.domain.steps import DECISION_KEY, ERROR_KEY, GOVERNANCE_GATE, STEPS

if TYPE_CHECKING:
    from airflow.sdk import Context


def validate_run_conf(dag_run: Any) -> dict[str, Any]:
    """The run's proposal with defaults filled in, or a failure that names each bad field."""
    try:
        proposal = parse_proposal(dag_run.conf)
    except InvalidProposal as err:
        raise AirflowFailException(str(err)) from None
    if dag_run.run_id != proposal.run_id:
        raise AirflowFailException(f"run id {dag_run.run_id!r} must be {proposal.run_id!r}: one run per proposal")
    return proposal.as_conf()


def raise_failure(context: Context) -> None:
    outcome = outcome_of_run(context)
    if outcome.outcome == FAILED:
        raise AirflowFailException(f"Proposal failed at {outcome.failed_step}: {outcome.reason}")
    raise AirflowFailException(f"Proposal {outcome.outcome}, but its audit record could not be written")


def validated_proposal(context: Context) -> dict[str, Any] | None:
    """The run's proposal with its defaults, read from the run's conf (no XCom round trip); None
    when the conf is not a valid proposal, which the governance gate has then failed on."""
    try:
        return parse_proposal(context["dag_run"].conf).as_conf()
    except InvalidProposal:
        return None


def is_transient_error(err: BaseException) -> bool:
    """Whether a failed call may succeed later: an overloaded service, a timeout, no connection."""
    import requests

    return isinstance(err, TransientServiceError | requests.ConnectionError | requests.Timeout)


def step_error(err: BaseException | str, *, transient: bool) -> dict[str, Any]:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return {"error": text[:1000], "transient": transient}


class StepResults:
    """The XComs the steps left, each fetched once: every pull is a round trip to the API server."""

    def __init__(self, ti: Any) -> None:
        self._ti = ti
        self._pulled: dict[tuple[str, str], Any] = {}

    def get(self, task_id: str, key: str = "return_value") -> Any:
        if (task_id, key) not in self._pulled:
            self._pulled[task_id, key] = self._ti.xcom_pull(task_ids=task_id, key=key)
        return self._pulled[task_id, key]


def outcome_of_run(context: Context, results: StepResults | None = None):
    """Settle the outcome from the XComs the steps left: return values, the decision, errors."""
    results = results or StepResults(context["ti"])
    completed: set[str] = set()
    errors: dict[str, dict[str, Any]] = {}
    for step in STEPS:  # settle() reads no further than the first step that did not complete
        if results.get(step) is None:
            if error := results.get(step, ERROR_KEY):
                errors[step] = error
            break
        completed.add(step)
    return settle(completed_steps=completed, decision=results.get(GOVERNANCE_GATE, DECISION_KEY), errors=errors)
