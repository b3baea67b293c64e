"""Bodies of the DAG's Python tasks, kept here so the DAG file stays wiring and imports stay cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from hms_management.proposal import InvalidProposal, parse_proposal

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
    from hms_management.operators import outcome_of_run
    from hms_management.workflow import FAILED

    outcome = outcome_of_run(context)
    if outcome.outcome == FAILED:
        raise AirflowFailException(f"Proposal failed at {outcome.failed_step}: {outcome.reason}")
    raise AirflowFailException(f"Proposal {outcome.outcome}, but its audit record could not be written")
