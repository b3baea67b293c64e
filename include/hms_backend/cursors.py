"""The cursor of the feed of reviewers' decisions and revocations: opaque to callers, a sequence number inside.

Decisions are numbered in the transaction that decides or revokes them (storage.settle_review,
storage.revoke_decision), so the number only grows and a reader never sees a number before all
smaller ones. Callers get it wrapped, so that they pass back what they were given instead of
computing with it.
"""

from __future__ import annotations

import base64
import binascii
import re

START = 0  # before the first decision
_PREFIX = "decided:"
_NUMBER = re.compile(r"(0|[1-9][0-9]{0,17})")


class InvalidCursor(ValueError):
    """Not a cursor this service gave out."""


def encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode(cursor: str) -> int:
    """The sequence number in a cursor; an empty cursor is the start."""
    if not cursor:
        return START
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor(cursor) from None
    number = text.removeprefix(_PREFIX)
    if number == text or not _NUMBER.fullmatch(number):
        raise InvalidCursor(cursor)
    return int(number)
