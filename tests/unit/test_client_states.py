"""Operator-facing names of the contract's enums."""

import pytest

from invoctl.client import (
    STATE_NAMES,
    journal_entry_kind_name,
    outcome_name,
    parse_state,
    service_kind_name,
    state_name,
)
from invoctl.v1 import invocation_pb2, workers_pb2


@pytest.mark.parametrize(
    "text",
    ["backing-off", "backing_off", "BACKING-OFF", "BACKING_OFF", "INVOCATION_STATE_BACKING_OFF"],
)
def test_parse_state_accepts_every_spelling(text: str) -> None:
    assert parse_state(text) == invocation_pb2.INVOCATION_STATE_BACKING_OFF


def test_parse_state_accepts_enum_values() -> None:
    assert parse_state(invocation_pb2.INVOCATION_STATE_SUSPENDED) == 6


@pytest.mark.parametrize("bad", ["", "sleeping", "unspecified", 0, 99, True])
def test_parse_state_refuses_unknown(bad: str | int) -> None:
    with pytest.raises(ValueError, match="unknown invocation state"):
        parse_state(bad)


def test_state_names_cover_the_proto_enum_in_order() -> None:
    assert STATE_NAMES == (
        "pending",
        "scheduled",
        "ready",
        "running",
        "backing-off",
        "suspended",
        "paused",
        "completed",
    )
    for name in STATE_NAMES:
        assert state_name(parse_state(name)) == name


def test_other_enum_names() -> None:
    assert outcome_name(invocation_pb2.OUTCOME_CANCELLED) == "cancelled"
    assert journal_entry_kind_name(invocation_pb2.JOURNAL_ENTRY_KIND_GET_STATE) == "get-state"
    assert service_kind_name(workers_pb2.SERVICE_KIND_VIRTUAL_OBJECT) == "virtual-object"


def test_unknown_enum_number_stays_visible() -> None:
    # A newer server may send a state this client does not know yet.
    assert state_name(42) == "unknown(42)"
