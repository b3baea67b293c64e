"""The proposal DAG's Params: the proposal model's JSON schema, so Airflow checks a trigger's conf and
the UI's trigger form shows the same fields and rules."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from hms_management.domain.proposal import Proposal


def proposal_params() -> dict[str, Any]:
    """The DAG's Params: the model's JSON schema, one Param per field, checked at trigger time."""
    schema = Proposal.model_json_schema()
    params = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        field = Proposal.model_fields[name]
        params[name] = Param(**prop) if field.is_required() else Param(field.default, **prop)
    return params
