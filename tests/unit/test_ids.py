"""IDs: base62 suffixes that sort by creation time, and the older alphabet still valid."""

from __future__ import annotations

import itertools
import re

from invoctl_server.domain import ids

NEW = re.compile(r"[0-9A-Za-z]{22}")
# An ID of the 64-character alphabet made before base62 (a real one, from a 2026 server).
OLD = "inv_-P7llqQesR0pczet9Dmh2-"


def test_new_ids_are_base62_of_the_same_length() -> None:
    # In ASCII order (so text order is numeric order), and room for all 128 bits.
    assert sorted(ids._ALPHABET) == list(ids._ALPHABET) and len(set(ids._ALPHABET)) == 62
    assert 62**ids._SUFFIX_LEN >= 1 << 128
    for make, prefix in (
        (ids.new_invocation_id, "inv_"),
        (ids.new_deployment_id, "dp_"),
        (ids.new_session_id, "sess_"),
        (ids.new_bulk_operation_id, "bulk_"),
    ):
        for _ in range(200):
            made = make()
            assert made.startswith(prefix) and NEW.fullmatch(made, len(prefix)), made


def test_new_ids_sort_by_creation_time_in_byte_order() -> None:
    # Milliseconds from 1970 to the end of the 48-bit clock, and neighbouring ones.
    stamps = [0, 1, 2, 61, 62, 63, 1_764_590_000_000, 1_764_590_000_001, (1 << 48) - 1]
    assert all(len(ids._suffix(ms)) == 22 for ms in stamps)
    # Within one millisecond the order is random; across them it is the clock's, in
    # byte order (what the "C" collation compares), for any random bits.
    for earlier, later in itertools.pairwise(stamps):
        latest = max(ids._suffix(earlier).encode() for _ in range(50))
        assert latest < min(ids._suffix(later).encode() for _ in range(50))


def test_old_ids_stay_valid_and_sort_before_new_ones() -> None:
    assert ids.is_invocation_id(OLD)
    assert ids.is_deployment_id("dp_" + OLD[4:]) and ids.is_bulk_operation_id("bulk_" + OLD[4:])
    assert OLD < ids.new_invocation_id()
    assert ids.is_invocation_id(ids.new_invocation_id())
    for bad in ("inv_", "inv_" + "A" * 21, "inv_" + "A" * 23, "inv_" + "A" * 21 + "!", "dp_x"):
        assert not ids.is_invocation_id(bad)
