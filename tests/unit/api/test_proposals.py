"""The /management API's cursors are opaque and refuse what the API did not hand out."""

from __future__ import annotations

import pytest

from hms_management.api.proposals import decode_cursor, encode_cursor


def test_cursor_round_trips_and_refuses_forgeries():
    assert decode_cursor(encode_cursor(1234)) == 1234
    for forged in ["", "../../etc", "cnVuOi0x", "bm9wZTox", "%%%"]:
        with pytest.raises(ValueError):
            decode_cursor(forged)
