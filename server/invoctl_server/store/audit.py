"""The audit log: every operator request, refused ones included, kept after purge."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ._sql import Q, custom_plans


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    identity: str
    operation: str
    invocation_id: str
    reason: str
    request_id: str | None
    result: str  # OK, or the reason of the refusal
    state_after: str | None = None
    new_invocation_id: str | None = None
    response: bytes | None = None  # what a retry of the same request_id answers
    bulk_operation_id: str | None = None  # a bulk request: the operation it started


async def audit_record(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], *, now: datetime
) -> None:
    """Append entries, in one statement."""
    if not entries:
        return
    columns = [f.name for f in dataclasses.fields(AuditEntry)]
    await conn.execute(Q["audit_insert"], now, *([getattr(e, c) for e in entries] for c in columns))


async def audit_by_request_ids(
    conn: asyncpg.Connection, request_ids: Sequence[str]
) -> dict[str, asyncpg.Record]:
    """The successful requests these request_ids already named, by request_id."""
    rows = await conn.fetch(Q["audit_by_request_ids"], list(request_ids))
    return {r["request_id"]: r for r in rows}


async def audit_page(
    conn: asyncpg.Connection,
    *,
    invocation_id: str | None,
    before_id: int | None,
    limit: int,
    identity: str | None = None,
    operation: str | None = None,
    at_or_after: datetime | None = None,
    at_before: datetime | None = None,
) -> list[asyncpg.Record]:
    """A page of the log, newest first, optionally filtered (None: no filter)."""
    async with conn.transaction(readonly=True):
        await custom_plans(conn)  # the invocation's index, when one is named
        return await conn.fetch(
            Q["audit_page"], invocation_id, before_id, limit, identity, operation,
            at_or_after, at_before,
        )  # fmt: skip
