"""Invocations: creating them, reading them, and the object-key lock they queue on."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from opentelemetry import context as otel_context

from ..domain.errors import DomainError, InvalidTarget, InvocationNotFound
from ..domain.ids import new_invocation_id
from ..domain.states import Event, State
from . import notify, transition
from ._sql import Q, custom_plans
from .deployments import ResolvedHandler, handler_latest


@dataclasses.dataclass(frozen=True)
class NewInvocation:
    """What Invoke, a call or a send asks for."""

    service: str
    handler: str
    key: str | None
    input: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    idempotency_key: str | None = None
    delay: timedelta | None = None
    caller_id: str | None = None
    caller_entry: int | None = None
    restarted_from: str | None = None
    # Pinned from the start (a restart on a given deployment); None: the newest at claim.
    deployment_id: str | None = None
    # The trace context it is accepted in (transition.started_by for a call or a send);
    # None: the current one (the request's).
    parent: otel_context.Context | None = None


@dataclasses.dataclass(frozen=True)
class Created:
    row: asyncpg.Record
    deduplicated: bool
    # A new ready invocation's first attempt runs on this deployment (its pin, or the
    # newest serving its handler): a dispatcher may claim it in the same transaction.
    runs_on: str | None = None


async def invocation_get(conn: asyncpg.Connection, invocation_id: str) -> asyncpg.Record:
    """Read one invocation. Raises InvocationNotFound."""
    return _found(await conn.fetchrow(Q["invocation_get"], invocation_id), invocation_id)


def _found(row: asyncpg.Record | None, invocation_id: str) -> asyncpg.Record:
    if row is None:
        raise InvocationNotFound(
            f"invocation {invocation_id} not found", invocation_id=invocation_id
        )
    return row


async def invocation_get_with_worker(
    conn: asyncpg.Connection, invocation_id: str, live_since: datetime
) -> asyncpg.Record:
    """Read one invocation with, unless it completed, whether a worker that will run it is
    connected (columns worker_deployment_id, worker_live, worker_last_seen). Raises
    InvocationNotFound."""
    row = await conn.fetchrow(Q["invocation_get_with_worker"], invocation_id, live_since)
    return _found(row, invocation_id)


async def invocations_get(conn: asyncpg.Connection, ids: Sequence[str]) -> list[asyncpg.Record]:
    """Read invocations by ID without locking (missing IDs are absent)."""
    return await conn.fetch(Q["invocations_get"], list(ids))


async def invocations_page(
    conn: asyncpg.Connection,
    *,
    service: str | None,
    handler: str | None,
    key: str | None,
    states: list[str] | None,
    deployment_id: str | None,
    before_id: str | None,
    limit: int,
    outcome: str | None = None,
    created_before: datetime | None = None,
    created_after: datetime | None = None,
    idempotency_key: str | None = None,
) -> list[asyncpg.Record]:
    """A page of invocations newest first; `before_id` continues after a previous page.
    Every filter that is not None must match."""
    async with conn.transaction(readonly=True):
        await custom_plans(conn)
        return await conn.fetch(
            Q["invocations_page"], service, handler, key, states, deployment_id, before_id,
            limit, outcome, created_before, created_after, idempotency_key,
        )  # fmt: skip


async def invocation_create(
    conn: asyncpg.Connection,
    new: NewInvocation,
    *,
    actor: str,
    now: datetime,
    notify_ready: bool = True,
) -> Created:
    """Accept a new invocation: ready, pending behind its object key, or scheduled. A
    ready one wakes the dispatchers at commit unless `notify_ready` is false (the caller
    claims it, or calls ready_notify).

    With an idempotency key, returns the invocation that key already started (deduplicated).
    Raises ServiceNotFound, HandlerNotFound, or InvalidArgument for a key that does not fit
    the service kind.
    """
    resolved = await handler_latest(conn, new.service, new.handler)
    _check_key(new, resolved)
    if new.idempotency_key:
        lock_key = json.dumps([new.service, new.handler, new.key or "", new.idempotency_key])
        await conn.execute(Q["idempotency_lock"], lock_key)
        existing = await conn.fetchrow(
            Q["invocation_by_idempotency_key"],
            new.service,
            new.handler,
            new.key or "",
            new.idempotency_key,
        )
        if existing is not None:
            return Created(existing, deduplicated=True)

    row = _new_row(new, resolved, now)
    if row["state"] == State.READY and resolved.exclusive:
        acquired = await object_lock_acquire(conn, new.service, new.key or "", row["id"])
        row["state"] = str(State.READY if acquired else State.PENDING)
    [applied] = await transition.accept(
        conn, [row], actor=actor, now=now, parents=[new.parent], notify_ready=notify_ready
    )
    return Created(applied.row, deduplicated=False, runs_on=_runs_on(applied.row, resolved))


async def ready_notify(conn: asyncpg.Connection) -> None:
    """Wake the dispatchers of every server at commit: this transaction made invocations
    ready without the notification (created with notify_ready false, not all claimed)."""
    await conn.execute(Q["ready_notify"], notify.READY)


def _runs_on(row: asyncpg.Record, resolved: ResolvedHandler) -> str | None:
    if row["state"] != State.READY:
        return None
    return row["deployment_id"] or resolved.deployment_id


def _new_row(new: NewInvocation, resolved: ResolvedHandler, now: datetime) -> dict[str, Any]:
    """The row of a new invocation: scheduled when delayed, else ready (the caller turns an
    exclusive one pending when its key is held)."""
    delayed = new.delay is not None and new.delay > timedelta(0)
    return {
        "id": new_invocation_id(),
        "service": new.service,
        "handler": new.handler,
        "object_key": new.key if resolved.kind == "virtual_object" else None,
        "exclusive": resolved.exclusive,
        "state": str(State.SCHEDULED if delayed else State.READY),
        "deployment_id": new.deployment_id,
        "input": new.input,
        "headers": dict(new.headers),
        "idempotency_key": new.idempotency_key or None,
        "caller_id": new.caller_id,
        "caller_entry": new.caller_entry,
        "restarted_from": new.restarted_from,
        "due_at": now + new.delay if delayed else None,
    }


async def invocations_create_many(
    conn: asyncpg.Connection,
    requests: Sequence[tuple[NewInvocation, otel_context.Context | None]],
    *,
    actor: str,
    now: datetime,
    notify_ready: bool = True,
) -> list[Created | DomainError]:
    """`invocation_create` for many requests (each with its trace context): one handler
    lookup per distinct target and one insert for all. Requests that take a lock (an
    idempotency key, an exclusive handler) go through invocation_create one by one.
    Per request: the invocation, or its refusal. `notify_ready` as invocation_create's."""
    resolved: dict[tuple[str, str], ResolvedHandler | DomainError] = {}
    results: list[Created | DomainError | None] = []
    rows: list[dict[str, Any]] = []
    parents: list[otel_context.Context | None] = []
    handlers: list[ResolvedHandler] = []
    for new, parent in requests:
        target = (new.service, new.handler)
        if target not in resolved:
            try:
                resolved[target] = await handler_latest(conn, *target)
            except DomainError as refused:
                resolved[target] = refused
        handler = resolved[target]
        try:
            if isinstance(handler, DomainError):
                raise handler
            _check_key(new, handler)
            if new.idempotency_key or (handler.exclusive and not new.delay):
                token = otel_context.attach(parent) if parent is not None else None
                try:
                    results.append(
                        await invocation_create(
                            conn, new, actor=actor, now=now, notify_ready=notify_ready
                        )
                    )
                finally:
                    if token is not None:
                        otel_context.detach(token)
                continue
        except DomainError as refused:
            results.append(refused)
            continue
        rows.append(_new_row(new, handler, now))
        parents.append(parent)
        handlers.append(handler)
        results.append(None)
    applied = await transition.accept(
        conn, rows, actor=actor, now=now, parents=parents, notify_ready=notify_ready
    )
    created = iter(
        Created(a.row, deduplicated=False, runs_on=_runs_on(a.row, h))
        for a, h in zip(applied, handlers, strict=True)
    )
    return [next(created) if r is None else r for r in results]


def _check_key(new: NewInvocation, resolved: ResolvedHandler) -> None:
    if resolved.kind == "virtual_object" and not new.key:
        raise InvalidTarget(
            f"{new.service} is a virtual object: the target needs a key",
            service=new.service,
        )
    if resolved.kind == "service" and new.key:
        raise InvalidTarget(
            f"{new.service} is a service, not a virtual object: the target takes no key",
            service=new.service,
        )


async def object_lock_acquire(
    conn: asyncpg.Connection, service: str, key: str, holder_id: str
) -> bool:
    """Make `holder_id` the holder of the key's lock if it is free; False if it is held.

    When it is held, the lock row is share-locked until commit so that a concurrent release
    cannot miss the new pending invocation: the release waits for this transaction and then
    sees it among the pending ones. If the holder released it meanwhile, try again.
    """
    while True:
        if await conn.fetchval(Q["object_lock_try"], service, key, holder_id) is not None:
            return True
        if await conn.fetchval(Q["object_lock_share"], service, key) is not None:
            return False


async def object_lock_release(
    conn: asyncpg.Connection,
    row: Mapping[str, Any],
    *,
    actor: str,
    now: datetime,
    parent: otel_context.Context | None = None,
) -> list[transition.Applied]:
    """`row` (locked, exclusive) stops holding its key: hand the lock to the oldest pending
    invocation of the key, which becomes ready, or free it. `parent` is the request that
    made `row` let go (as Step.parent), if one did.

    Lock order: the invocation the key passes to is locked before the key's row, as
    invocations always come before object_locks. The caller has usually locked it already,
    with the others in ID order (invocations_lock_with_callers, invocations_lock_batch)."""
    service, key = row["service"], row["object_key"]
    # Only its holder's release hands a key on, and `row` is locked: whether it holds the
    # key cannot change meanwhile. One that does not (it completed scheduled or pending)
    # leaves the key's row alone: locking it would wait behind a release that holds it and
    # waits for `row`.
    if await conn.fetchval(Q["object_lock_holder"], service, key) != row["id"]:
        return []
    pending = await _next_pending_locked(conn, service, key)
    await conn.fetchval(Q["object_lock_for_release"], service, key)
    # An acquire that queued one while this waited for the key's row has committed now.
    while await conn.fetchval(Q["object_lock_next_pending"], service, key) != (
        pending["id"] if pending is not None else None
    ):
        # Rare (a new invocation queued at this moment): locked after the key's row.
        pending = await _next_pending_locked(conn, service, key)
    if pending is None:
        await conn.execute(Q["object_lock_delete"], service, key)
        return []
    await conn.execute(Q["object_lock_hand_over"], service, key, pending["id"])
    return await transition.apply(
        conn, [transition.Step(pending, State.READY, parent=parent)], Event.KEY_ACQUIRED,
        actor=actor, now=now,
    )  # fmt: skip


async def _next_pending_locked(
    conn: asyncpg.Connection, service: str, key: str
) -> asyncpg.Record | None:
    """Lock the oldest invocation pending on the key and return it (None: none is)."""
    while True:
        row = await conn.fetchrow(Q["object_lock_next_pending_lock"], service, key)
        if row is None or row["state"] == State.PENDING:
            return row
        # It stopped pending (cancelled, killed) before its lock was ours: the next one.


async def journal_of(conn: asyncpg.Connection, invocation_id: str) -> list[asyncpg.Record]:
    """An invocation's journal entries in order."""
    return await conn.fetch(Q["journal_entries"], invocation_id)


async def transitions_of(conn: asyncpg.Connection, invocation_id: str) -> list[asyncpg.Record]:
    """An invocation's transition history in order."""
    return await conn.fetch(Q["transitions_of"], invocation_id)
