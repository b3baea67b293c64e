"""The proposal: one model for the DAG's Params, its first task, the trigger-time gate and the API.

A proposal is the `conf` of its DAG run. Conf is stored and shown in plain text, so anything that
looks like a credential is refused with a reason instead of being silently kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DAG_ID = "proposal_orchestration"
RUN_ID_PREFIX = "proposal__"

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_ID_LENGTH = 64
MAX_RULE_BYTES = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_TITLE_LENGTH = 200
MAX_SUBMITTER_LENGTH = 200

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Level = Literal["low", "normal", "high"]
UNION_FIELDS = {"rule": "must be a JSON object or a string", "metadata": "must be a JSON object"}

# Several targets (design.md §11): policy scopes with a rule each, and officer groups to notify. The
# seed's single `rule` is one scope, this one.
DEFAULT_SCOPE = "default"
MAX_SCOPE_LENGTH = 200
GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_GROUP_LENGTH = 100

# Keys that name a secret, wherever they stand in a proposal (rule and metadata included): matched
# on whole words of the key, in any case, with `-`, `_`, `.` or camelCase between words, so `token`,
# `API-Key`, `accessToken` and `x_auth_token` are refused but `tokenizer` or `author` are not.
CREDENTIAL_WORDS = frozenset({
    "token", "password", "passwd", "passphrase", "secret", "credential", "credentials", "apikey", "api_key",
    "authorization", "auth", "bearer", "private_key", "privatekey", "jwt", "cookie",
})
CREDENTIAL_REASON = (
    "credentials must not be sent in a proposal: a DAG run's conf is stored and shown in plain "
    "text, and the Management Layer calls HMS services with its own credentials, kept in Airflow "
    "connections"
)


def is_credential_key(key: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    normalized = re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")
    words = normalized.split("_")
    return normalized in CREDENTIAL_WORDS or any(w in CREDENTIAL_WORDS for w in words) or any(
        f"{a}_{b}" in CREDENTIAL_WORDS for a, b in zip(words, words[1:], strict=False))


def credential_paths(value: Any) -> list[str]:
    """Where a JSON document holds a credential-like key, as dotted paths (`metadata.auth.api_key`,
    `rule.steps[2].password`), in document order; iterative, since a hostile body may be deep."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        children: list[tuple[Any, str]] = []
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and is_credential_key(key):
                    found.append(child_path)
                children.append((child, child_path))
        elif isinstance(item, list):
            children = [(child, f"{path}[{n}]") for n, child in enumerate(item)]
        stack.extend(reversed(children))
    return found


MAX_DEPTH = 32


class JsonBodyError(ValueError):
    """A request body that is not plain JSON that PostgreSQL can store."""


def _refuse_constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonBodyError(f"number {text[:20]} is out of range")
    return value


def load_json(raw: bytes | str) -> Any:
    """Parse a request body as strict JSON: no NaN or Infinity, no nesting deeper than MAX_DEPTH."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonBodyError:
        raise
    except RecursionError:
        raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an int of too many digits
        raise JsonBodyError(f"not valid JSON: {err}") from None
    if depth(value) > MAX_DEPTH:
        raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile body may be deep)."""
    return max(level for level, _ in _walk(value))


def _walk(value: Any):
    """Every value and key of a JSON document with its nesting level, iteratively."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        yield level, item
        if isinstance(item, dict):
            stack.extend((k, level + 1) for k in item)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)


def json_size(value: Any) -> int:
    """Size as stored; refuses what PostgreSQL's JSON columns cannot hold (NUL, NaN, deep nesting)."""
    for level, item in _walk(value):
        if level > MAX_DEPTH:
            raise ValueError(f"is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str) and "\x00" in item:
            raise ValueError("must not contain NUL characters (PostgreSQL cannot store them)")
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError("holds a number JSON cannot represent (NaN or Infinity)") from None
    return len(text.encode())


def rule_fits(rule: dict[str, Any] | str) -> dict[str, Any] | str:
    """A rule to put live: not empty, at most 64 KiB as JSON."""
    if isinstance(rule, str) and not rule.strip():
        raise ValueError("must not be empty")
    if isinstance(rule, dict) and not rule:
        raise ValueError("must not be empty")
    if json_size(rule) > MAX_RULE_BYTES:
        raise ValueError(f"is larger than {MAX_RULE_BYTES // 1024} KiB as JSON")
    return rule


class Target(BaseModel):
    """One policy scope and the rule to put live there."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    scope: str = Field(min_length=1, max_length=MAX_SCOPE_LENGTH,
                       description="The policy scope, e.g. foia/dhs (its live rule is replaced).")
    rule: dict[str, Any] | str = Field(description="The rule for this scope (at most 64 KiB as JSON).")

    @field_validator("scope")
    @classmethod
    def addressable(cls, scope: str) -> str:
        # The policy service serves each scope's live rule at /svc/policy/scopes/<scope>: a scope no
        # such path can name could never be read back.
        if not scope.strip() or any(ord(c) < 32 or ord(c) == 127 for c in scope):
            raise ValueError("must not be blank or hold control characters")
        if any(part in ("", ".", "..") for part in scope.split("/")):
            raise ValueError("must not have empty, '.' or '..' parts between its slashes")
        return scope

    @field_validator("rule")
    @classmethod
    def rule_fits(cls, rule: dict[str, Any] | str) -> dict[str, Any] | str:
        return rule_fits(rule)


class Proposal(BaseModel):
    """A change to put live, as raised by an agent, a portal or the backlog."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN,
                    description="The business key: one run per id, named proposal__<id>.")
    rule: dict[str, Any] | str | None = Field(
        None, description="The policy rule to put live (at most 64 KiB as JSON), in scope `default`; "
                          "or give `targets`.")
    targets: list[Target] | None = Field(None, min_length=1, description="Several policy scopes with a rule each, "
                                                                         "instead of `rule`.")
    notify: list[str] | None = Field(None, min_length=1, description="The officer groups to tell (the "
                                                                     "deployment's default group when absent).")
    title: str | None = Field(None, max_length=MAX_TITLE_LENGTH, description="Shown to analysts.")
    submitted_by: str | None = Field(None, min_length=1, max_length=MAX_SUBMITTER_LENGTH,
                                     description="The agent or person that raised it.")
    day: Literal[WEEKDAYS] | None = Field(  # type: ignore[valid-type]
        None, description="Mon..Sun; governance denies processing on a weekend day.")
    priority: Level = Field("normal", description="Scheduling priority of the run's tasks.")
    impact: Level = Field("normal", description="high asks governance for human review.")
    metadata: dict[str, Any] | None = Field(None, description="Free-form context, at most 16 KiB as JSON.")

    @model_validator(mode="before")
    @classmethod
    def refuse_credentials(cls, data: Any) -> Any:
        # parse_proposal names each such key; this keeps a model built another way just as closed.
        if leaked := credential_paths(data):
            raise ValueError(f"key {leaked[0]!r} is not allowed: {CREDENTIAL_REASON}")
        return data

    @field_validator("title", "submitted_by")
    @classmethod
    def no_nul(cls, text: str | None) -> str | None:
        if text is not None and "\x00" in text:
            raise ValueError("must not contain NUL characters")
        return text

    @field_validator("rule")
    @classmethod
    def rule_fits(cls, rule: dict[str, Any] | str | None) -> dict[str, Any] | str | None:
        return rule if rule is None else rule_fits(rule)

    @field_validator("notify")
    @classmethod
    def group_names(cls, groups: list[str] | None) -> list[str] | None:
        for n, group in enumerate(groups or []):
            if not (0 < len(group) <= MAX_GROUP_LENGTH and re.fullmatch(GROUP_PATTERN, group)):
                raise ValueError(f"[{n}] {group!r} is not a group name (letters, digits, '_', '.', '-'; "
                                 f"at most {MAX_GROUP_LENGTH})")
        return groups

    @model_validator(mode="after")
    def one_rule_per_scope(self) -> Proposal:
        if (self.rule is None) == (self.targets is None):
            raise ValueError("give either rule (one scope) or targets (several), not both and not neither")
        scopes = [target.scope for target in self.targets or []]
        if len(set(scopes)) < len(scopes):
            twice = next(scope for scope in scopes if scopes.count(scope) > 1)
            raise ValueError(f"targets: scope {twice!r} is named twice (one rule per scope)")
        if self.notify and len(set(self.notify)) < len(self.notify):
            twice = next(group for group in self.notify if self.notify.count(group) > 1)
            raise ValueError(f"notify: group {twice!r} is named twice")
        return self

    def policy_targets(self) -> list[Target]:
        """Where the rules go: the targets, or the seed's `rule` in scope `default`."""
        return list(self.targets) if self.targets is not None else [Target(scope=DEFAULT_SCOPE, rule=self.rule)]

    @field_validator("metadata")
    @classmethod
    def metadata_fits(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        if metadata is not None and json_size(metadata) > MAX_METADATA_BYTES:
            raise ValueError(f"is larger than {MAX_METADATA_BYTES // 1024} KiB as JSON")
        return metadata

    @property
    def run_id(self) -> str:
        return run_id_for(self.id)

    def as_conf(self) -> dict[str, Any]:
        """The proposal as stored in a run's conf: defaults filled in, absent optionals left out."""
        return self.model_dump(mode="json", exclude_none=True)


def run_id_for(proposal_id: str) -> str:
    return f"{RUN_ID_PREFIX}{proposal_id}"


def proposal_id_of(run_id: str) -> str:
    """A proposal run's proposal id: its run id without the prefix. The admission check holds every
    run's conf to that id; a run made around it (whose conf may say anything) is still known by it."""
    return run_id.removeprefix(RUN_ID_PREFIX)


def same_proposal(stored: Any, proposal: Proposal) -> bool:
    """Whether a stored conf (a run's, a backlog entry's) is this proposal: same content once both
    have their defaults, so a repeat is recognised and other content under the same id is not."""
    try:
        return parse_proposal(stored).as_conf() == proposal.as_conf()
    except InvalidProposal:
        return False


@dataclass(frozen=True)
class Deployment:
    """What a deployment allows beyond the model itself: how many targets a proposal may name, and
    the officer groups it has (None: it does not list them)."""

    max_targets: int
    officer_groups: frozenset[str] | None = None


def deployment_errors(data: dict[str, Any], deployment: Deployment | None) -> list[dict[str, str]]:
    """What breaks the rules between fields (one rule per scope, rule or targets) and the deployment's
    own (too many targets, a group it does not have), each with its field, before the model reads it."""
    errors = []
    targets, notify = data.get("targets"), data.get("notify")
    if data.get("rule") is not None and targets is not None:
        errors.append({"field": "targets", "reason": "give either rule (one scope) or targets (several), not both"})
    elif data.get("rule") is None and targets is None:
        errors.append({"field": "rule", "reason": "is required (or targets, for several scopes)"})
    if isinstance(targets, list):
        if deployment is not None and len(targets) > deployment.max_targets:
            errors.append({"field": "targets", "reason": f"names {len(targets)} targets; at most "
                                                         f"{deployment.max_targets} (max_targets)"})
        seen: dict[Any, int] = {}
        for n, target in enumerate(targets):
            scope = target.get("scope") if isinstance(target, dict) else None
            if isinstance(scope, str) and scope in seen:
                errors.append({"field": f"targets[{n}].scope",
                               "reason": f"{scope!r} is named in targets[{seen[scope]}] already: one rule per scope"})
            seen.setdefault(scope, n)
    if isinstance(notify, list):
        for n, group in enumerate(notify):
            if isinstance(group, str) and notify.index(group) < n:
                errors.append({"field": f"notify[{n}]", "reason": f"{group!r} is named twice"})
            elif (isinstance(group, str) and deployment is not None and deployment.officer_groups is not None
                  and group not in deployment.officer_groups):
                known = ", ".join(sorted(deployment.officer_groups))
                errors.append({"field": f"notify[{n}]",
                               "reason": f"no officer group {group!r} in this deployment (it has {known})"})
    return errors


class InvalidProposal(ValueError):
    """A proposal that breaks a rule; `errors` says which field and why, one entry per problem."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("invalid proposal: " + "; ".join(f"{e['field']}: {e['reason']}" for e in errors))


def parse_proposal(data: Any, deployment: Deployment | None = None) -> Proposal:
    """Validate `data` as a proposal (and against the deployment's own rules, when given), or raise
    InvalidProposal naming each field and reason."""
    if not isinstance(data, dict):
        raise InvalidProposal([{"field": "(proposal)", "reason": "must be a JSON object"}])
    if leaked := credential_paths(data):
        raise InvalidProposal([{"field": path, "reason": f"is not allowed: {CREDENTIAL_REASON}"} for path in leaked])
    described = {e["field"]: e["reason"] for e in deployment_errors(data, deployment)}
    try:
        proposal = Proposal.model_validate(data)
    except ValidationError as err:
        for error in err.errors(include_url=False):
            field, reason = _describe(error)
            # A union field (rule: object or string) fails once per member: one reason is enough.
            described.setdefault(field, reason)
    if described:
        raise InvalidProposal([{"field": f, "reason": r} for f, r in described.items()]) from None
    return proposal


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """The field a pydantic error is about, as a path (`targets[2].scope`), and the reason."""
    field, members = "", []
    kind = error["type"]
    for n, part in enumerate(error["loc"]):
        last_unknown = kind == "extra_forbidden" and n == len(error["loc"]) - 1
        if isinstance(part, int):
            field += f"[{part}]"
        elif part in Proposal.model_fields or part in Target.model_fields or last_unknown:
            field += f".{part}" if field else str(part)
        else:
            members.append(part)  # a union's member (dict[str,any], str): not a field
    field = field or "(proposal)"
    if kind == "extra_forbidden":
        owner = Target if "." in field or "[" in field else Proposal
        reason = f"unknown field: {'a target' if owner is Target else 'a proposal'} has only " + ", ".join(
            owner.model_fields)
    elif kind == "missing":
        reason = "is required"
    elif members and field.rsplit(".", 1)[-1] in UNION_FIELDS:
        reason = UNION_FIELDS[field.rsplit(".", 1)[-1]]
    else:
        reason = error["msg"].removeprefix("Value error, ")
    return field, reason
