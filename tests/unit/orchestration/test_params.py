"""The DAG's Params follow the proposal model: Airflow checks a trigger's conf by the same rules."""

from __future__ import annotations

import jsonschema
import pytest
from airflow.sdk.exceptions import ParamValidationError

from hms_management.orchestration.params import proposal_params


def test_params_schema_accepts_what_the_model_accepts_and_requires_the_same_fields():
    params = proposal_params()
    assert not params["id"].has_value and not params["rule"].has_value  # required: no default
    assert params["priority"].value == "normal"
    params["day"].resolve("Mon")
    params["rule"].resolve({"a": 1})
    params["rule"].resolve("text rule")
    with pytest.raises(ParamValidationError):
        params["id"].resolve("../x")


def test_each_param_is_checked_under_draft_7_whose_keywords_it_keeps():
    for name, param in proposal_params().items():
        assert jsonschema.validators.validator_for(param.schema) is jsonschema.Draft7Validator, name
        jsonschema.Draft7Validator.check_schema(param.schema)
    targets = proposal_params()["targets"]
    targets.resolve([{"scope": "foia/dhs", "rule": {"max_days": 20}}])
    with pytest.raises(ParamValidationError):  # additionalProperties: false still holds
        targets.resolve([{"scope": "foia/dhs", "rule": {}, "extra": 1}])
