"""The proposal DAG's Params: the proposal model's JSON schema, so Airflow checks a trigger's conf and
the UI's trigger form shows the same fields and rules."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from hms_management.domain.proposal import Proposal

# Airflow checks every Param with `jsonschema.validate`, which first checks the schema itself against
# its draft's meta-schema, twice in every task process (the DAG's parse, the task's context) and once
# per trigger. Under draft 2020-12, the default, that check is most of the cost and took a sizeable
# share of a step's CPU (docs/performance.md, "Where a step's time and CPU go"); draft 7 has every
# keyword the model's schema uses, with the same meaning, and a far cheaper meta-schema.
SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"


def proposal_params() -> dict[str, Any]:
    """The DAG's Params: the model's JSON schema, one Param per field, checked at trigger time."""
    schema = Proposal.model_json_schema()
    definitions = schema.get("$defs", {})
    params = {}
    for name, prop in schema["properties"].items():
        # Each Param is checked on its own: a reference to the schema's shared definitions (a
        # target) would not resolve there, so it is written out in place.
        prop = _inlined(prop, definitions)
        prop = {"$schema": SCHEMA_DRAFT, **{k: v for k, v in prop.items() if k not in ("title", "default")}}
        field = Proposal.model_fields[name]
        params[name] = Param(**prop) if field.is_required() else Param(field.default, **prop)
    return params


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    """`schema` with every `$ref` to a shared definition replaced by the definition itself."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inlined(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    return schema
