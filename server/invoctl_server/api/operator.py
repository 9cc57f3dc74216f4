"""The path every operator request takes: validate, answer a retried request_id from the
audit log, act, and record the request (refused ones too) in the audit log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from google.protobuf.message import Message

from ..domain.errors import DatabaseUnavailable, DomainError, RequestIdReused
from ..store import operations as ops
from ..store import transition
from . import convert, ids
from .context import Runtime

log = logging.getLogger("invoctl.audit")

# Until authentication exists (a later issue), every operator is anonymous.
IDENTITY = "anonymous"
ACTOR = f"operator:{IDENTITY}"

Work = Callable[[asyncpg.Connection, str], Awaitable[asyncpg.Record]]


async def operate(
    rt: Runtime,
    *,
    operation: str,
    request: Any,
    work: Work,
    response_type: type[Message],
) -> Message:
    """Run `work(conn, invocation_id)` for an operator request and return its response,
    `response_type(invocation=...)` with the row `work` returns.

    With a request_id, the invocation is locked before the request_id is looked up, so a
    retry that raced its original waits for it and is then answered from the audit log.
    Without one, `work` takes the lock itself.
    """
    text, reason = request.invocation_id, request.reason
    request_id = request.request_id or None
    try:
        invocation_id = ids.invocation_id(text)

        async def act(conn: asyncpg.Connection) -> bytes:
            if request_id:
                await transition.lock(conn, [invocation_id])
            if request_id and (prior := await ops.audit_by_request_id(conn, request_id)):
                if (prior["operation"], prior["invocation_id"]) != (operation, invocation_id):
                    raise RequestIdReused(
                        f"request_id {request_id!r} was used for {prior['operation']} of "
                        f"{prior['invocation_id']}",
                        request_id=request_id,
                    )
                return prior["response"]
            row = await work(conn, invocation_id)
            response = response_type(invocation=convert.invocation(row))
            restarted = row["id"] != invocation_id
            entry = ops.AuditEntry(
                identity=IDENTITY,
                operation=operation,
                invocation_id=invocation_id,
                reason=reason,
                request_id=request_id,
                result="OK",
                state_after=None if restarted or operation == "PurgeInvocation" else row["state"],
                new_invocation_id=row["id"] if restarted else None,
                response=response.SerializeToString(),
            )
            await ops.audit_record(conn, entry, now=rt.now())
            return entry.response

        payload = await rt.batches.each.submit(act)
    except DomainError as refused:
        await _record_refusal(rt, operation, text, reason, request_id, refused)
        raise
    # The stored bytes, so that a retried request_id gets exactly the first answer.
    return response_type.FromString(payload)


async def _record_refusal(
    rt: Runtime, operation: str, text: str, reason: str, request_id: str | None,
    refused: DomainError,
) -> None:  # fmt: skip
    if isinstance(refused, DatabaseUnavailable):
        return  # nowhere to write it
    entry = ops.AuditEntry(
        identity=IDENTITY,
        operation=operation,
        invocation_id=text[:200],
        reason=reason,
        request_id=request_id,
        result=refused.reason,
    )
    try:
        await rt.batches.each.submit(lambda conn: ops.audit_record(conn, entry, now=rt.now()))
    except Exception:  # the refusal itself is what the client must see
        log.warning("could not record the refused %s of %s", operation, text, exc_info=True)
