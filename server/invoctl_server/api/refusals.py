"""Refused operator requests in the audit log, the ones no servicer sees included.

An operator request refused for its caller (UNAUTHENTICATED, PERMISSION_DENIED) never
reaches operator.operate, which records the refusals it makes: the auth interceptor
(gRPC) and the HTTP API's request path record those here, so the audit log holds every
operator request, whoever asked and however it ended.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..domain.errors import DatabaseUnavailable, DomainError
from ..store import audit, db

log = logging.getLogger("invoctl.audit")

_CONTROL = "/invoctl.v1.InvocationControl/"
# The operator requests: each InvocationControl RPC that acts (the reads are not audited,
# and neither is Ingress/Invoke, which starts work rather than operating on it).
AUDITED = frozenset(
    _CONTROL + m
    for m in (
        "CancelInvocation", "KillInvocation", "PauseInvocation", "ResumeInvocation",
        "PurgeInvocation", "PurgeJournal", "RestartInvocationAsNew", "CancelInvocations",
        "KillInvocations", "PauseInvocations", "ResumeInvocations", "PurgeInvocations",
        "RestartInvocationsAsNew", "StopBulkOperation",
    )
)  # fmt: skip
# Who asked, when the request was refused before anyone was known (no token, or one the
# server does not know). A configured identity is never empty (api/auth.py).
UNKNOWN_IDENTITY = ""
# The audit log keeps what a client sent to identify its target, cut as errors cut it.
_MAX_ID = 200


def operation_name(method: str) -> str:
    """`CancelInvocation` of `/invoctl.v1.InvocationControl/CancelInvocation`."""
    return method.rpartition("/")[2] or method


async def record(
    pool: asyncpg.Pool,
    *,
    identity: str,
    operation: str,
    target: str,
    reason: str,
    request_id: str | None,
    refused: DomainError,
) -> None:
    """Record one refused request in its own statement. Never raises: the refusal itself
    is what the client must hear, whether or not the log could take it."""
    if isinstance(refused, DatabaseUnavailable):
        return  # nowhere to write it
    entry = audit.AuditEntry(
        identity=identity,
        operation=operation,
        invocation_id=target[:_MAX_ID],
        reason=reason,
        request_id=request_id or None,
        result=refused.reason,
    )
    try:
        now = datetime.now(UTC)
        await db.statement(pool, lambda conn: audit.audit_record(conn, [entry], now=now))
    except Exception:
        log.warning("could not record the refused %s of %s", operation, target[:_MAX_ID],
                    exc_info=True)  # fmt: skip


class Recorder:
    """Records requests refused for their caller, from the request message (gRPC) or
    from what an HTTP request says (its path and query)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def refused(
        self,
        method: str,
        refused: DomainError,
        *,
        target: str = "",
        reason: str = "",
        request_id: str | None = None,
        operation: str | None = None,
    ) -> None:
        """`method` is the full gRPC method; only operator requests are recorded. The
        identity is the refusal's own (PERMISSION_DENIED names it), else unknown."""
        if method not in AUDITED and operation is None:
            return
        await record(
            self._pool,
            identity=refused.metadata.get("identity", UNKNOWN_IDENTITY),
            operation=operation or operation_name(method),
            target=target,
            reason=reason,
            request_id=request_id,
            refused=refused,
        )

    async def refused_message(self, method: str, request: Any, refused: DomainError) -> None:
        """A refused gRPC request: its target, reason and request_id from the message."""
        await self.refused(
            method,
            refused,
            target=_text(request, "invocation_id"),
            reason=_text(request, "reason"),
            request_id=_text(request, "request_id") or None,
        )


def _text(message: Any, field: str) -> str:
    value = getattr(message, field, "")
    return value if isinstance(value, str) else ""
