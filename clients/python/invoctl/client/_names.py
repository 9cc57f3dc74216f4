"""Operator-facing names of the contract's enums: `backing-off`, not `INVOCATION_STATE_BACKING_OFF`.

The proto enums carry a type prefix (AIP style); operators type and read the short,
lower-case, hyphenated form that DESIGN.md uses. Both directions live here so the CLI,
the client and any test agree on one spelling.
"""

from __future__ import annotations

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from invoctl.v1 import bulk_pb2, invocation_pb2, workers_pb2

__all__ = [
    "OUTCOME_NAMES",
    "STATE_NAMES",
    "StateLike",
    "journal_entry_kind_name",
    "outcome_name",
    "parse_outcome",
    "parse_state",
    "service_kind_name",
    "state_name",
]

#: A state as the client accepts it: a name (`"backing-off"`, `"BACKING_OFF"`,
#: `"INVOCATION_STATE_BACKING_OFF"`) or the `InvocationState` enum value.
StateLike = str | int

_STATE_PREFIX = "INVOCATION_STATE_"


def _label(wrapper: EnumTypeWrapper, prefix: str, value: int) -> str:
    """`INVOCATION_STATE_BACKING_OFF` -> `backing-off`; unknown numbers stay visible."""
    try:
        full = wrapper.Name(value)
    except ValueError:
        # A newer server may send a value this client's stubs do not know yet.
        return f"unknown({value})"
    return full.removeprefix(prefix).lower().replace("_", "-")


def state_name(state: int) -> str:
    """The operator-facing name of an `InvocationState` value, e.g. `backing-off`."""
    return _label(invocation_pb2.InvocationState, _STATE_PREFIX, state)


def outcome_name(outcome: int) -> str:
    """The operator-facing name of an `Outcome` value, e.g. `succeeded`."""
    return _label(invocation_pb2.Outcome, "OUTCOME_", outcome)


def journal_entry_kind_name(kind: int) -> str:
    """The operator-facing name of a `JournalEntryKind` value, e.g. `get-state`."""
    return _label(invocation_pb2.JournalEntryKind, "JOURNAL_ENTRY_KIND_", kind)


def service_kind_name(kind: int) -> str:
    """The operator-facing name of a `ServiceKind` value, e.g. `virtual-object`."""
    return _label(workers_pb2.ServiceKind, "SERVICE_KIND_", kind)


def bulk_kind_name(kind: int) -> str:
    """`BULK_OPERATION_KIND_RESTART_AS_NEW` -> `restart-as-new`, as the CLI spells it."""
    return _label(bulk_pb2.BulkOperationKind, "BULK_OPERATION_KIND_", kind)


def bulk_state_name(state: int) -> str:
    """`BULK_OPERATION_STATE_DRY_RUN` -> `dry-run`."""
    return _label(bulk_pb2.BulkOperationState, "BULK_OPERATION_STATE_", state)


#: Every state an invocation can be in, by operator-facing name, in lifecycle order.
STATE_NAMES: tuple[str, ...] = tuple(
    state_name(v.number)
    for v in invocation_pb2.InvocationState.DESCRIPTOR.values
    if v.number != invocation_pb2.INVOCATION_STATE_UNSPECIFIED
)


def parse_state(state: StateLike) -> invocation_pb2.InvocationState.ValueType:
    """Return the `InvocationState` value for a name or enum value.

    Names are case-insensitive, may use `-` or `_`, and may carry the
    `INVOCATION_STATE_` prefix: `suspended`, `backing-off`, `BACKING_OFF`.

    Raises:
        ValueError: unknown name or number, or `unspecified` (never a real state).
    """
    if isinstance(state, str):
        key = state.strip().upper().replace("-", "_").removeprefix(_STATE_PREFIX)
        try:
            value = invocation_pb2.InvocationState.Value(_STATE_PREFIX + key)
        except ValueError:
            value = invocation_pb2.INVOCATION_STATE_UNSPECIFIED
    else:
        # bool is an int too, and True would silently mean "pending".
        if isinstance(state, bool) or state not in invocation_pb2.InvocationState.values():
            raise ValueError(f"unknown invocation state {state!r}")
        value = state
    if value == invocation_pb2.INVOCATION_STATE_UNSPECIFIED:
        raise ValueError(
            f"unknown invocation state {state!r}; expected one of: {', '.join(STATE_NAMES)}"
        )
    return value


#: Every outcome a completed invocation can have, by operator-facing name.
OUTCOME_NAMES: tuple[str, ...] = tuple(
    outcome_name(v.number)
    for v in invocation_pb2.Outcome.DESCRIPTOR.values
    if v.number != invocation_pb2.OUTCOME_UNSPECIFIED
)


def parse_outcome(outcome: str | int) -> invocation_pb2.Outcome.ValueType:
    """Return the `Outcome` value for a name (`failed`, `OUTCOME_FAILED`) or enum value.

    Raises:
        ValueError: unknown name or number, or `unspecified`.
    """
    if isinstance(outcome, str):
        key = outcome.strip().upper().replace("-", "_").removeprefix("OUTCOME_")
        try:
            value = invocation_pb2.Outcome.Value("OUTCOME_" + key)
        except ValueError:
            value = invocation_pb2.OUTCOME_UNSPECIFIED
    elif isinstance(outcome, bool) or outcome not in invocation_pb2.Outcome.values():
        raise ValueError(f"unknown outcome {outcome!r}")
    else:
        value = outcome
    if value == invocation_pb2.OUTCOME_UNSPECIFIED:
        expected = ", ".join(OUTCOME_NAMES)
        raise ValueError(f"unknown outcome {outcome!r}; expected one of: {expected}")
    return value
