"""The path every operator request takes: validate, answer a retried request_id from the
audit log, act, and record the request (refused ones too) in the audit log.

Concurrent requests are written together (group commit, see runtime/batcher.py): one
transaction per batch, and per kind of operation one set-based store call
(store/operations.py), so that a burst of cancels costs a few statements, not a few per
cancel. Each invocation is still locked, checked, recorded and traced on its own.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from google.protobuf.message import Message

from invoctl.v1 import control_pb2 as pb

from ..domain.errors import DomainError, RequestIdReused, echo
from ..runtime.batcher import Batcher
from ..runtime.batcher import Request as Batched
from ..store import audit, single_statement, transition
from ..store import operations as ops
from . import convert, ids, refusals
from .auth import principal

ActMany = Callable[..., Awaitable[list[ops.Result]]]

# RPC name -> the set-based store action and the response message.
OPERATIONS: dict[str, tuple[ActMany, type[Message]]] = {
    "CancelInvocation": (ops.cancel_many, pb.CancelInvocationResponse),
    "KillInvocation": (ops.kill_many, pb.KillInvocationResponse),
    "PauseInvocation": (ops.pause_many, pb.PauseInvocationResponse),
    "ResumeInvocation": (ops.resume_many, pb.ResumeInvocationResponse),
    "PurgeInvocation": (ops.purge_many, pb.PurgeInvocationResponse),
    "PurgeJournal": (ops.journal_purge_many, pb.PurgeJournalResponse),
    "RestartInvocationAsNew": (ops.restart_many, pb.RestartInvocationAsNewResponse),
}

# RPC name -> the action's name in store/operations.py (lock_batch).
ACTIONS: dict[str, str] = {
    "CancelInvocation": "cancel",
    "KillInvocation": "kill",
    "PauseInvocation": "pause",
    "ResumeInvocation": "resume",
    "PurgeInvocation": "purge",
    "PurgeJournal": "purge_journal",
    "RestartInvocationAsNew": "restart",
}


@dataclasses.dataclass(frozen=True)
class OperatorRequest:
    """A validated operator request on one invocation."""

    operation: str  # the RPC name, a key of OPERATIONS
    invocation_id: str
    reason: str
    request_id: str | None
    identity: str  # who asked (api/auth.py): in the audit log and as the actor
    deployment: str = ""
    from_entry: int = 0


class Operator:
    """Writes operator requests in batches; `submit` returns the serialized response."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._batcher = Batcher(pool, _write, name="operations", first=_write_first)

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()

    async def submit(self, request: OperatorRequest) -> Message:
        return await self._batcher.submit(request)


async def operate(
    operator: Operator,
    pool: asyncpg.Pool,
    *,
    operation: str,
    request: Any,
    check: Callable[[], dict[str, Any]] | None = None,
) -> Message:
    """Run an operator request and return its response. `check()` validates the
    operation's own fields and returns them as OperatorRequest fields."""
    text, reason = request.invocation_id, request.reason
    request_id = request.request_id or None
    identity = principal().identity
    try:
        invocation_id = ids.invocation_id(text)
        fields = check() if check else {}
    except DomainError as refused:
        await record_refusal(pool, operation, text, reason, request_id, refused)
        raise
    # Refusals from here on are recorded in the batch's own transaction.
    return await operator.submit(
        OperatorRequest(operation, invocation_id, reason, request_id, identity, **fields)
    )


def _actor(identity: str) -> str:
    """Who made a request's transitions, in their history and on their spans."""
    return f"operator:{identity}"


async def _write_first(conn: asyncpg.Connection, batch: list[Batched]) -> list[Message | None]:
    """The requests of a batch that one statement can do (store/single_statement.py): per
    request its response, or None for those _write does. A request_id goes to _write (the
    log keeps its answer for a retry), and so does an invocation named twice. One
    statement, so of one operation (the batch's commonest): run as one atomic statement,
    a retry (deadlock) or a failure never leaves half of it written."""
    now = datetime.now(UTC)
    requests: list[OperatorRequest] = [b.payload for b in batch]
    named = Counter(q.invocation_id for q in requests)
    by_operation: dict[str, list[int]] = {}
    for i, q in enumerate(requests):
        if (
            single_statement.supports(ACTIONS[q.operation], q.deployment)
            and not q.request_id
            and named[q.invocation_id] == 1
        ):
            by_operation.setdefault(q.operation, []).append(i)
    results: list[Message | None] = [None] * len(batch)
    if by_operation:
        operation, indices = max(by_operation.items(), key=lambda item: len(item[1]))
        done = await single_statement.act(
            conn, ACTIONS[operation],
            [single_statement.Request(
                requests[i].invocation_id, _actor(requests[i].identity), batch[i].parent,
                identity=requests[i].identity, reason=requests[i].reason,
            ) for i in indices],
            operation=operation, now=now,
        )  # fmt: skip
        response_type = OPERATIONS[operation][1]
        for i, row in zip(indices, done, strict=True):
            if row is not None:
                results[i] = response_type(invocation=convert.invocation(row))
    return results


async def _write(conn: asyncpg.Connection, batch: list[Batched]) -> list[Message | DomainError]:
    """Act on a batch of requests in one transaction: per request the response,
    or the refusal. Every request is recorded in the audit log."""
    now = datetime.now(UTC)
    requests: list[OperatorRequest] = [b.payload for b in batch]
    results: list[Message | DomainError | None] = [None] * len(batch)
    entries: list[audit.AuditEntry] = []
    # Lock order: what every request of the batch may touch is locked first, in ID order,
    # and not action by action (one action's IDs may be lower than the last one's).
    locked = await ops.lock_batch(conn, ((ACTIONS[q.operation], q.invocation_id) for q in requests))
    repeats = await _answer_retries(conn, requests, results)
    # One set-based call per operation and identity: the identity is the actor.
    by_operation: dict[tuple[str, str], list[int]] = {}
    for i, q in enumerate(requests):
        if results[i] is None and i not in repeats:
            by_operation.setdefault((q.operation, q.identity), []).append(i)
    for (operation, identity), indices in by_operation.items():
        act, response_type = OPERATIONS[operation]
        targets = [
            ops.Target(requests[i].invocation_id, batch[i].parent, requests[i].deployment,
                       requests[i].from_entry)
            for i in indices
        ]  # fmt: skip
        # The first action acts on the rows as locked; later ones see what it did.
        outcomes = await act(conn, targets, actor=_actor(identity), now=now,
                             locked=locked)  # fmt: skip
        locked = None
        for i, out in zip(indices, outcomes, strict=True):
            if isinstance(out, DomainError):
                results[i] = out
                entries.append(_audited(requests[i], out.reason))
                continue
            response = response_type(invocation=convert.invocation(out))
            results[i] = response
            # Stored, so that a retried request_id gets exactly this answer.
            entries.append(_audited(requests[i], "OK", out, response.SerializeToString()))
    for i, j in repeats.items():
        # The same request_id twice in one batch: the repeat gets the first one's answer.
        results[i] = results[j]
    for i, result in enumerate(results):
        if isinstance(result, RequestIdReused):
            entries.append(_audited(requests[i], result.reason))
    await audit.audit_record(conn, entries, now=now)
    return results  # type: ignore[return-value]


async def _answer_retries(
    conn: asyncpg.Connection,
    requests: Sequence[OperatorRequest],
    results: list[Message | DomainError | None],
) -> dict[int, int]:
    """Answer requests whose request_id named an earlier successful request from the log
    (or refuse them, if it named another operation). Returns {index: earlier index} for
    request_ids repeated within this batch."""
    named = [q for q in requests if q.request_id]
    if not named:
        return {}
    # Lock first: a retry racing its original waits for it, then finds it in the log.
    await transition.lock(conn, sorted({q.invocation_id for q in named}))
    prior = await audit.audit_by_request_ids(conn, [q.request_id for q in named])
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, q in enumerate(requests):
        if not q.request_id:
            continue
        earlier = prior.get(q.request_id)
        if earlier is not None:
            same = (earlier["operation"], earlier["invocation_id"])
            results[i] = (
                OPERATIONS[q.operation][1].FromString(earlier["response"])
                if same == (q.operation, q.invocation_id)
                else _reused(q, same)
            )
        elif q.request_id in first:
            j = first[q.request_id]
            if (requests[j].operation, requests[j].invocation_id) == (
                q.operation,
                q.invocation_id,
            ):
                repeats[i] = j
            else:
                results[i] = _reused(q, (requests[j].operation, requests[j].invocation_id))
        else:
            first[q.request_id] = i
    return repeats


def _reused(q: OperatorRequest, used_for: tuple[str, str]) -> RequestIdReused:
    return RequestIdReused(
        f"request_id {echo(q.request_id)} was used for {used_for[0]} of {used_for[1]}",
        request_id=q.request_id or "",
    )


def _audited(
    q: OperatorRequest,
    result: str,
    row: asyncpg.Record | None = None,
    response: bytes | None = None,
) -> audit.AuditEntry:
    restarted = row is not None and row["id"] != q.invocation_id
    state_after = None
    if row is not None and not restarted and q.operation != "PurgeInvocation":
        state_after = row["state"]
    return audit.AuditEntry(
        identity=q.identity,
        operation=q.operation,
        invocation_id=q.invocation_id,
        reason=q.reason,
        # Only a successful request claims its request_id (the unique index's rule).
        request_id=q.request_id,
        result=result,
        state_after=state_after,
        new_invocation_id=row["id"] if restarted else None,
        response=response,
    )


async def record_refusal(
    pool: asyncpg.Pool, operation: str, text: str, reason: str, request_id: str | None,
    refused: DomainError,
) -> None:  # fmt: skip
    """Record a request refused outside a batch's transaction (a malformed field)."""
    await refusals.record(
        pool, identity=principal().identity, operation=operation, target=text, reason=reason,
        request_id=request_id, refused=refused,
    )  # fmt: skip
