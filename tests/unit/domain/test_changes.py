"""What a proposal would change in a scope, key by key, as a reviewer reads it."""

from __future__ import annotations

from hms_management.domain.changes import compare


def marks(change) -> dict[str, str]:
    return {key.path: key.change for key in change.keys}


def test_keys_added_removed_and_changed_are_marked_and_the_rest_is_the_same():
    change = compare("foia/dhs", {"strategy": "oldest-first", "max_days": 20, "limits": {"daily": 5, "weekly": 20}},
                     {"strategy": "oldest-first", "max_days": 15, "limits": {"daily": 5}, "escalate": True},
                     live_version=3)

    assert marks(change) == {"strategy": "same", "max_days": "changed", "limits.daily": "same",
                             "limits.weekly": "removed", "escalate": "added"}
    assert (change.changes, change.new, change.live_version) == (3, False, 3)
    changed = next(k for k in change.keys if k.path == "max_days")
    assert (changed.live, changed.proposed) == (20, 15)


def test_a_scope_without_a_live_rule_is_new_and_everything_in_it_is_added():
    change = compare("foia/state", None, {"queue": "foia", "limits": {"daily": 5}})

    assert change.new and marks(change) == {"queue": "added", "limits.daily": "added"}


def test_a_rule_that_is_a_string_changes_whole_or_not_at_all():
    assert marks(compare("s", "oldest first", "newest first")) == {"": "changed"}
    assert compare("s", "oldest first", "oldest first").changes == 0
    assert marks(compare("s", {"a": 1}, "a string now")) == {"": "changed"}


def test_lists_compare_whole_and_key_order_does_not_matter():
    assert marks(compare("s", {"a": [1, 2], "b": {"x": 1, "y": 2}}, {"b": {"y": 2, "x": 1}, "a": [2, 1]})) == {
        "a": "changed", "b.x": "same", "b.y": "same"}
