"""What a proposal would change: for each policy scope, the live rule beside the proposed one, key by
key (design.md §11), so that a reviewer approves knowing what changes.

Rules are JSON objects (compared key by key, nested keys by their dotted path) or strings (the
whole rule changes or not). A scope without a live rule yet is new: everything in it is added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ADDED, REMOVED, CHANGED, SAME = "added", "removed", "changed", "same"


@dataclass(frozen=True)
class KeyChange:
    path: str  # dotted, e.g. `limits.max_days`; "" for a rule that is a string
    change: str  # added, removed, changed, same
    live: Any = None
    proposed: Any = None


@dataclass(frozen=True)
class ScopeChange:
    """One scope: its live rule (None: no live rule yet) and the proposed one, with what differs."""

    scope: str
    live: Any
    proposed: Any
    live_version: int | None = None
    keys: list[KeyChange] = field(default_factory=list)

    @property
    def new(self) -> bool:
        return self.live is None

    @property
    def changes(self) -> int:
        return sum(1 for key in self.keys if key.change != SAME)

    def as_dict(self) -> dict[str, Any]:
        keys = [{"path": k.path, "change": k.change, "live": k.live, "proposed": k.proposed} for k in self.keys]
        return {"scope": self.scope, "live": self.live, "proposed": self.proposed, "live_version": self.live_version,
                "new": self.new, "changes": self.changes, "keys": keys}


def compare(scope: str, live: Any, proposed: Any, *, live_version: int | None = None) -> ScopeChange:
    """The scope's live rule against the proposed one, key by key."""
    return ScopeChange(scope, live, proposed, live_version, list(_keys(live, proposed)))


def _keys(live: Any, proposed: Any, prefix: str = ""):
    if isinstance(live, dict) and isinstance(proposed, dict):
        for key in sorted(set(live) | set(proposed), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in live:
                yield from _flat(path, proposed[key], ADDED, side="proposed")
            elif key not in proposed:
                yield from _flat(path, live[key], REMOVED, side="live")
            else:
                yield from _keys(live[key], proposed[key], path)
        return
    if live is None:
        yield from _flat(prefix, proposed, ADDED, side="proposed")
        return
    same = _canonical(live) == _canonical(proposed)
    yield KeyChange(prefix, SAME if same else CHANGED, live, proposed)


def _flat(path: str, value: Any, change: str, *, side: str):
    """Every leaf of a value added or removed whole, each with its own path."""
    if isinstance(value, dict) and value:
        for key in sorted(value, key=str):
            yield from _flat(f"{path}.{key}" if path else str(key), value[key], change, side=side)
        return
    yield KeyChange(path, change, **{side: value})


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
