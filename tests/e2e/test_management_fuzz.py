"""Generated hostile requests against the live api-server: never a 5xx, never a run, never a call.

Every generated request breaks at least one rule of the proposal (design.md §2, its targets and
officer groups §11) or of the HTTP contract, by construction, so every answer must be a 4xx and
nothing may change: the run count and the backend's /stats are compared before and after. Half go
to /management/proposals, half to Airflow's own trigger endpoint, which the admission middleware
guards.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms_management.domain.proposal import CREDENTIAL_WORDS, DAG_ID, ID_PATTERN, MAX_ID_LENGTH, Proposal

EXAMPLES = 1000
BASE = {"id": "fuzz-base", "rule": {"queue": "foia"}}
FIELDS = set(Proposal.model_fields)
GROUPS = sorted(json.loads((Path(__file__).resolve().parents[2] / "config" / "officer_groups.json").read_text()))

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=30),
                      st.floats(allow_nan=False, allow_infinity=False))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)


def spellings(word: str):
    """`word` as clients spell it: any case, `-` or `_` between its parts, camelCase, a prefix."""
    parts = word.split("_")
    camel = parts[0] + "".join(p.title() for p in parts[1:])
    return st.sampled_from([word, word.upper(), word.title(), "-".join(parts), camel, f"x-{word}", f"client_{word}"])


def nest(path: list, key: str, value: str) -> dict:
    """{key: value} placed at `path` (strings are object keys, numbers list positions) in an object."""
    node: object = {key: value}
    for step in reversed(path):
        node = [{}] * step + [node] if isinstance(step, int) else {step: node}
    return node if isinstance(node, dict) else {"items": node}


def invalid_id(text: str) -> bool:
    return len(text) > MAX_ID_LENGTH or not re.fullmatch(ID_PATTERN, text)


bad_field_values = {
    "id": st.one_of(st.text(max_size=80).filter(invalid_id), json_leaf.filter(lambda v: not isinstance(v, str))),
    "rule": st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(json_leaf),
                      st.just(""), st.just({})),
    "title": st.one_of(st.text(min_size=201, max_size=400), st.integers(), st.lists(json_leaf, min_size=1)),
    "submitted_by": st.one_of(st.just(""), st.integers(), st.booleans()),
    "day": st.text(max_size=10).filter(lambda d: d not in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")),
    "priority": st.text(max_size=10).filter(lambda v: v not in ("low", "normal", "high")),
    "impact": st.one_of(st.integers(), st.text(max_size=10).filter(lambda v: v not in ("low", "normal", "high"))),
    "metadata": st.one_of(st.text(), st.integers(), st.lists(json_leaf, min_size=1)),
    # Beside `rule`, any `targets` is refused (one or the other); alone, see hostile_targets.
    "targets": json_value,
    "notify": st.one_of(st.just([]), st.text(max_size=20), st.integers(), st.lists(json_leaf, min_size=1).filter(
        lambda groups: any(not isinstance(g, str) or g not in GROUPS for g in groups)),
        st.lists(st.sampled_from(GROUPS), min_size=2).filter(lambda groups: len(set(groups)) < len(groups))),
}

bad_scopes = st.one_of(st.just(""), st.just("   "), st.text(max_size=10).map(lambda t: t + "\n"),
                       st.sampled_from(["a/../b", "./a", "a//b", "a/", "..", "\x7f"]),
                       st.text(min_size=201, max_size=260))
TARGET = {"scope": "foia/dhs", "rule": {"max_days": 20}}
hostile_targets = st.one_of(
    st.just([]),
    st.lists(json_leaf, min_size=1, max_size=3),
    st.lists(bad_scopes.map(lambda scope: {"scope": scope, "rule": "r"}), min_size=1, max_size=3),
    st.integers(1, 3).map(lambda n: [TARGET] * (n + 1)),  # a scope twice
    st.integers(51, 70).map(lambda n: [{"scope": f"s/{i}", "rule": "r"} for i in range(n)]),
    st.sampled_from([{}, "", None, 7, [1]]).map(lambda rule: [{"scope": "a", "rule": rule}]),
    st.integers(64 * 1024, 100 * 1024).map(lambda n: [{"scope": "a", "rule": "x" * n}]),
    st.tuples(st.text(min_size=1, max_size=10).filter(lambda k: k not in ("scope", "rule")), json_value).map(
        lambda kv: [{**TARGET, kv[0]: kv[1]}]),
    st.sampled_from(sorted(CREDENTIAL_WORDS)).flatmap(spellings).map(
        lambda key: [{"scope": "a", "rule": {"steps": [{key: "x"}]}}]),
)

bad_proposals = st.one_of(
    # one field with a value its rule refuses
    st.sampled_from(sorted(bad_field_values)).flatmap(
        lambda field: bad_field_values[field].map(lambda value, f=field: {**BASE, f: value})),
    # an unknown key, or a credential-like one
    st.tuples(st.text(min_size=1, max_size=20).filter(lambda k: k not in FIELDS), json_value).map(
        lambda kv: {**BASE, kv[0]: kv[1]}),
    st.tuples(st.sampled_from(sorted(CREDENTIAL_WORDS)), st.text(max_size=40)).map(lambda kv: {**BASE, kv[0]: kv[1]}),
    # a credential-like key at any depth of the rule or the metadata, in any spelling
    st.builds(lambda field, path, key, value: {**BASE, field: nest(path, key, value)},
              st.sampled_from(["rule", "metadata"]), st.lists(st.sampled_from(["a", "steps", 0, 1]), max_size=5),
              st.sampled_from(sorted(CREDENTIAL_WORDS)).flatmap(spellings), st.text(max_size=20)),
    # a required field missing
    st.sampled_from(["id", "rule"]).map(lambda f: {k: v for k, v in BASE.items() if k != f}),
    # several targets, each list or target breaking a rule of its own
    hostile_targets.map(lambda targets: {"id": "fuzz-targets", "targets": targets}),
    # sizes and characters PostgreSQL or the model refuse
    st.integers(64 * 1024, 300 * 1024).map(lambda n: {**BASE, "rule": "x" * n}),
    st.integers(16 * 1024, 40 * 1024).map(lambda n: {**BASE, "metadata": {"blob": "m" * n}}),
    st.text(max_size=20).map(lambda t: {**BASE, "rule": {"note": t + "\x00"}}),
    st.integers(33, 400).map(lambda d: {**BASE, "rule": {"deep": json.loads("[" * d + "]" * d)}}),
    # not a proposal at all
    json_value.filter(lambda v: not isinstance(v, dict)),
)


def encode(proposal) -> bytes:
    return json.dumps(proposal).encode()


bodies = st.one_of(
    bad_proposals.map(lambda p: ("application/json", encode(p))),
    st.binary(max_size=200).map(lambda b: ("application/json", b"\xff" + b)),  # never UTF-8
    st.sampled_from(['{"id": "n", "rule": NaN}', '{"id": "n", "rule": {"x": -Infinity}}', '{"id": "n", "rule": 1e999}',
                     "{", '{"id": "a", "rule": "r"', "[" * 3000 + "]" * 3000]).map(
        lambda text: ("application/json", text.encode())),
    st.tuples(st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                               "application/xml", "", "application/jsonx"]),
              st.just(encode({**BASE, "id": "fuzz-valid-but-wrong-type"}))),
    st.integers(1024 * 1024 + 1, 2 * 1024 * 1024).map(
        lambda n: ("application/json", encode({**BASE, "rule": "x" * n}))),
)


def test_generated_hostile_requests_never_5xx_and_change_nothing(stack, agent, backend_calls, idle):
    idle()  # runs of earlier tests still calling the backend would blur the before/after counts
    token = agent.token()
    runs_before = agent.count_runs()
    calls_before = backend_calls()
    seen: Counter[str] = Counter()

    with httpx.Client(base_url=stack.api_url, timeout=60) as http:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(target=st.sampled_from(["management", "api_v2"]), body=bodies)
        def send(target, body):
            content_type, content = body
            headers = {"Authorization": f"Bearer {token}"}
            if content_type:
                headers["Content-Type"] = content_type
            if target == "api_v2":
                try:
                    conf = json.loads(content)
                except (ValueError, RecursionError):  # not JSON: sent as the whole body, as a broken client would
                    wrapped = content
                else:
                    wrapped = json.dumps({"logical_date": None, "conf": conf}).encode()
                response = http.post(f"/api/v2/dags/{DAG_ID}/dagRuns", content=wrapped, headers=headers)
            else:
                response = http.post("/management/proposals", content=content, headers=headers)
            seen[f"{target} {response.status_code}"] += 1
            assert response.status_code < 500, (target, content[:300], response.text[:500])
            assert 400 <= response.status_code < 500, (target, content[:300], response.text[:500])

        send()

    print("\nfuzz: status code histogram:", dict(sorted(seen.items())))
    assert sum(seen.values()) >= EXAMPLES
    assert agent.count_runs() == runs_before
    assert backend_calls() == calls_before
