"""Invocations: creating them, reading them, and the object-key lock they queue on."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ..domain.errors import InvalidTarget, InvocationNotFound
from ..domain.ids import new_invocation_id
from ..domain.states import Event, State
from . import transition
from ._sql import Q
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


@dataclasses.dataclass(frozen=True)
class Created:
    row: asyncpg.Record
    deduplicated: bool


async def invocation_get(conn: asyncpg.Connection, invocation_id: str) -> asyncpg.Record:
    """Read one invocation. Raises InvocationNotFound."""
    row = await conn.fetchrow(Q["invocation_get"], invocation_id)
    if row is None:
        raise InvocationNotFound(
            f"invocation {invocation_id} not found", invocation_id=invocation_id
        )
    return row


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
) -> list[asyncpg.Record]:
    """A page of invocations newest first; `before_id` continues after a previous page."""
    return await conn.fetch(
        Q["invocations_page"], service, handler, key, states, deployment_id, before_id, limit
    )


async def invocation_create(
    conn: asyncpg.Connection, new: NewInvocation, *, actor: str, now: datetime
) -> Created:
    """Accept a new invocation: ready, pending behind its object key, or scheduled.

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

    invocation_id = new_invocation_id()
    due_at = None
    if new.delay and new.delay > timedelta(0):
        state, due_at = State.SCHEDULED, now + new.delay
    elif resolved.exclusive:
        acquired = await object_lock_acquire(conn, new.service, new.key or "", invocation_id)
        state = State.READY if acquired else State.PENDING
    else:
        state = State.READY
    row: dict[str, Any] = {
        "id": invocation_id,
        "service": new.service,
        "handler": new.handler,
        "object_key": new.key if resolved.kind == "virtual_object" else None,
        "exclusive": resolved.exclusive,
        "state": str(state),
        "deployment_id": None,
        "input": new.input,
        "headers": dict(new.headers),
        "idempotency_key": new.idempotency_key or None,
        "caller_id": new.caller_id,
        "caller_entry": new.caller_entry,
        "restarted_from": new.restarted_from,
        "due_at": due_at,
    }
    [applied] = await transition.accept(conn, [row], actor=actor, now=now)
    return Created(applied.row, deduplicated=False)


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
    conn: asyncpg.Connection, row: Mapping[str, Any], *, actor: str, now: datetime
) -> list[transition.Applied]:
    """`row` (locked, exclusive) stops holding its key: hand the lock to the oldest pending
    invocation of the key, which becomes ready, or free it."""
    service, key = row["service"], row["object_key"]
    holder = await conn.fetchval(Q["object_lock_for_release"], service, key)
    if holder != row["id"]:
        return []  # it never held the key (scheduled or pending when it completed)
    next_id = await conn.fetchval(Q["object_lock_next_pending"], service, key)
    if next_id is None:
        await conn.execute(Q["object_lock_delete"], service, key)
        return []
    await conn.execute(Q["object_lock_hand_over"], service, key, next_id)
    [pending] = await transition.lock(conn, [next_id])
    return await transition.apply(
        conn, [transition.Step(pending, State.READY)], Event.KEY_ACQUIRED, actor=actor, now=now
    )


async def journal_of(conn: asyncpg.Connection, invocation_id: str) -> list[asyncpg.Record]:
    """An invocation's journal entries in order."""
    return await conn.fetch(Q["journal_entries"], invocation_id)


async def transitions_of(conn: asyncpg.Connection, invocation_id: str) -> list[asyncpg.Record]:
    """An invocation's transition history in order."""
    return await conn.fetch(Q["transitions_of"], invocation_id)
