"""Bulk operations in the client: selectors, and the RPC of each operation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from invoctl.v1 import bulk_pb2

from ._names import StateLike, parse_state

__all__ = ["BULK_OPERATIONS", "bulk_request", "selector"]

# Operation name (as the CLI spells it) -> (RPC name, request message).
BULK_OPERATIONS = {
    "cancel": ("CancelInvocations", bulk_pb2.CancelInvocationsRequest),
    "kill": ("KillInvocations", bulk_pb2.KillInvocationsRequest),
    "pause": ("PauseInvocations", bulk_pb2.PauseInvocationsRequest),
    "resume": ("ResumeInvocations", bulk_pb2.ResumeInvocationsRequest),
    "purge": ("PurgeInvocations", bulk_pb2.PurgeInvocationsRequest),
    "restart-as-new": ("RestartInvocationsAsNew", bulk_pb2.RestartInvocationsAsNewRequest),
}
_WITH_DEPLOYMENT = frozenset({"resume", "restart-as-new"})


def _timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    if value.tzinfo is None:
        raise ValueError("created_before/created_after need a timezone-aware datetime")
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def selector(
    query: str = "",
    *,
    service: str | None = None,
    handler: str | None = None,
    key: str | None = None,
    states: Iterable[StateLike] = (),
    deployment_id: str | None = None,
    created_before: dt.datetime | None = None,
    created_after: dt.datetime | None = None,
    invocation_ids: Iterable[str] = (),
) -> bulk_pb2.BulkSelector:
    """A BulkSelector. `query` takes Restate's strings: `Greeter`, `Greeter/greet`,
    `CartObject/cart55`, `CartObject/cart55/add` or an `inv_...` ID; the other filters
    narrow it (AND)."""
    msg = bulk_pb2.BulkSelector(
        query=query,
        service=service or "",
        handler=handler or "",
        key=key or "",
        states=[parse_state(s) for s in states],
        deployment_id=deployment_id or "",
        invocation_ids=list(invocation_ids),
    )
    if created_before is not None:
        msg.created_before.CopyFrom(_timestamp(created_before))
    if created_after is not None:
        msg.created_after.CopyFrom(_timestamp(created_after))
    return msg


def bulk_request(
    operation: str,
    where: bulk_pb2.BulkSelector,
    *,
    reason: str | None,
    request_id: str | None,
    dry_run: bool,
    max_per_second: float,
    deployment: str | None,
):
    """The request message of a bulk operation (see BULK_OPERATIONS)."""
    if operation not in BULK_OPERATIONS:
        raise ValueError(f"unknown bulk operation {operation!r}: {', '.join(BULK_OPERATIONS)}")
    _, request_type = BULK_OPERATIONS[operation]
    request = request_type(
        selector=where,
        reason=reason or "",
        request_id=request_id or "",
        dry_run=dry_run,
        max_per_second=max_per_second,
    )
    if deployment:
        if operation not in _WITH_DEPLOYMENT:
            raise ValueError(f"{operation} takes no deployment")
        request.deployment = deployment
    return request
