"""Operator actions on one invocation (DESIGN.md section 4): cancel, kill, pause, resume,
purge, purge the journal, restart as new; and the audit log that records every request.

Each function takes the transaction of its caller, checks before it writes (a refusal
writes nothing), and changes state only through transition.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ..domain.errors import (
    DeploymentDoesNotServe,
    DeploymentNotFound,
    HandlerNotFound,
    InvalidFromEntry,
    InvalidTransition,
    InvocationNotFound,
    JournalPurged,
)
from ..domain.states import Event, Outcome, State, allowed_targets
from . import notify, transition
from ._sql import Q
from .attempts import Failure, Finishing, finish_many
from .deployments import deployment_exists, handler_in, handler_latest
from .invocations import NewInvocation, invocation_create, invocation_get

KEEP, LATEST = "keep", "latest"


@dataclasses.dataclass(frozen=True)
class Signal:
    """A running attempt an operation reached: its worker session stops it (pause, kill)
    or lets its handler see the cancellation (cancel)."""

    session_id: str
    invocation_id: str
    attempt: int
    kind: str  # pause | kill | cancel


async def _locked(conn: asyncpg.Connection, invocation_id: str) -> asyncpg.Record:
    rows = await transition.lock(conn, [invocation_id])
    if not rows:
        raise InvocationNotFound(
            f"invocation {invocation_id} not found", invocation_id=invocation_id
        )
    return rows[0]


def _refuse(row: asyncpg.Record, operation: str) -> InvalidTransition:
    return InvalidTransition(
        f"invocation {row['id']} is {row['state']}: it cannot be {operation}",
        invocation_id=row["id"],
        state=row["state"],
    )


async def _signal(conn: asyncpg.Connection, signals: Sequence[Signal]) -> None:
    """Tell whichever server holds each session (delivered at commit)."""
    for s in signals:
        payload = f"{s.session_id} {s.invocation_id} {s.attempt} {s.kind}"
        await conn.execute(Q["notify"], notify.SIGNAL, payload)


@dataclasses.dataclass
class _CallTree:
    """A locked invocation, its not-completed call tree and its caller, by ID."""

    target: asyncpg.Record
    members: list[asyncpg.Record]  # the call tree, target excluded, in ID order
    rows: dict[str, asyncpg.Record]  # every locked row: target, members, caller


async def _lock_call_tree(
    conn: asyncpg.Connection, invocation_id: str, operation: str
) -> _CallTree:
    """Lock the invocation, every not-completed invocation it called (recursively) and
    its caller, in ID order. Refuses a completed target."""
    found_row = await invocation_get(conn, invocation_id)
    caller_id = found_row["caller_id"] if found_row else None
    tree: set[str] = set()
    while True:
        # Lock, then look again: a member that was running may have called more before
        # it was locked; once locked, none can.
        wanted = {invocation_id, *tree} | ({caller_id} if caller_id else set())
        rows = {r["id"]: r for r in await transition.lock(conn, sorted(wanted))}
        target = rows.get(invocation_id)
        if target is None:
            raise InvocationNotFound(
                f"invocation {invocation_id} not found", invocation_id=invocation_id
            )
        if target["state"] == State.COMPLETED:
            raise _refuse(target, operation)
        found = {r["id"] for r in await conn.fetch(Q["invocation_call_tree"], invocation_id)}
        if found <= tree:
            break
        tree |= found
    members = [rows[i] for i in sorted(tree) if rows[i]["state"] != State.COMPLETED]
    return _CallTree(target, members, rows)


_NOT_STARTED = frozenset({State.PENDING, State.SCHEDULED})


async def invocation_cancel(
    conn: asyncpg.Connection, invocation_id: str, *, actor: str, now: datetime
) -> asyncpg.Record:
    """Cancel the invocation and its not-completed call tree. Each member that has not
    started (pending, scheduled, ready before its first attempt) completes cancelled at
    once, and its caller gets the failure. Each started one is marked cancelled and goes
    on to let its handler see it: a running attempt is signalled; a suspended one has the
    entry it waits on completed with the cancellation and wakes; a paused or backing-off
    one becomes ready, and its next attempt sees the cancellation at its first live await.
    A member cancelled before is left as it is (a cancel is delivered once)."""
    tree = await _lock_call_tree(conn, invocation_id, "cancelled")
    fresh = [m for m in (tree.target, *tree.members) if m["cancelled_at"] is None]
    failure = Failure("CANCELLED", "cancelled by an operator")
    # Started members first: finishing a not-started one wakes its caller when that one
    # waits for it, and must see the caller as the cancel left it.
    started = [
        m for m in fresh
        if not (m["state"] in _NOT_STARTED or (m["state"] == State.READY and m["attempt"] == 0))
    ]  # fmt: skip
    steps, signals = [], []
    for m in started:
        state = State(m["state"])
        changes = {
            "cancelled_at": now,
            "cancel_pending": True,
            "due_at": m["due_at"],
            "waiting_on": m["waiting_on"],
        }
        if state == State.RUNNING:
            signals.append(Signal(m["session_id"], m["id"], m["attempt"], "cancel"))
        else:
            changes.update(due_at=None, waiting_on=None)
        if state == State.SUSPENDED:
            # The await it is suspended on raises the cancellation when replayed.
            await conn.execute(
                Q["journal_complete_entry"], m["id"], m["waiting_on"], None, failure.code,
                failure.message,
            )  # fmt: skip
            changes["cancel_pending"] = False
        steps.append(
            transition.Step(m, State.RUNNING if state == State.RUNNING else State.READY, changes)
        )
    for a in await transition.apply(conn, steps, Event.CANCELLED, actor=actor, now=now):
        tree.rows[a.row["id"]] = a.row
    started_ids = {m["id"] for m in started}
    items = [
        Finishing(tree.rows[m["id"]], tree.rows.get(m["caller_id"]), Outcome.CANCELLED, None,
                  failure)
        for m in fresh
        if m["id"] not in started_ids
    ]  # fmt: skip
    for row in await finish_many(conn, items, Event.CANCELLED, actor=actor, now=now):
        tree.rows[row["id"]] = row
    await _signal(conn, signals)
    return tree.rows[invocation_id]


async def invocation_kill(
    conn: asyncpg.Connection, invocation_id: str, *, actor: str, now: datetime
) -> asyncpg.Record:
    """Complete the invocation and its not-completed call tree with outcome killed, at once
    and without compensation. Running attempts are fenced (and signalled), object keys
    pass to the next pending invocation, and the target's caller gets the failure."""
    tree = await _lock_call_tree(conn, invocation_id, "killed")
    target, members, rows = tree.target, tree.members, tree.rows
    caller_id = target["caller_id"]
    failure = Failure("KILLED", "killed by an operator")
    items = [Finishing(target, rows.get(caller_id), Outcome.KILLED, None, failure)]
    # The callers of tree members are killed with them: nobody to hand a result to.
    items += [Finishing(m, None, Outcome.KILLED, None, failure) for m in members]
    signals = [
        Signal(r["session_id"], r["id"], r["attempt"], "kill")
        for r in (target, *members)
        if r["state"] == State.RUNNING
    ]
    done = await finish_many(conn, items, Event.KILLED, actor=actor, now=now)
    await _signal(conn, signals)
    return done[0]


async def invocation_pause(
    conn: asyncpg.Connection, invocation_id: str, *, actor: str, now: datetime
) -> asyncpg.Record:
    """Pause a running (its attempt is fenced and signalled to stop) or backing-off (its
    retry timer is dropped) invocation. Pausing a paused one changes nothing."""
    row = await _locked(conn, invocation_id)
    if row["state"] == State.PAUSED:
        return row
    if State.PAUSED not in allowed_targets(State(row["state"]), Event.PAUSED):
        raise _refuse(row, "paused")
    step = transition.Step(row, State.PAUSED, {"session_id": None, "due_at": None})
    [paused] = await transition.apply(conn, [step], Event.PAUSED, actor=actor, now=now)
    if row["state"] == State.RUNNING:
        await _signal(conn, [Signal(row["session_id"], row["id"], row["attempt"], "pause")])
    return paused.row


async def _deployment_for(
    conn: asyncpg.Connection, row: asyncpg.Record, deployment: str
) -> str | None:
    """The deployment `deployment` (keep, latest or a dp_ ID) names for the row's handler."""
    if deployment in ("", KEEP):
        return row["deployment_id"]
    if deployment == LATEST:
        try:
            return (await handler_latest(conn, row["service"], row["handler"])).deployment_id
        except HandlerNotFound as exc:
            raise DeploymentDoesNotServe(
                f"the newest deployment of {row['service']} does not serve {row['handler']}",
                invocation_id=row["id"],
            ) from exc
    if not await deployment_exists(conn, deployment):
        raise DeploymentNotFound(f"deployment {deployment} not found", deployment_id=deployment)
    if await handler_in(conn, deployment, row["service"], row["handler"]) is None:
        raise DeploymentDoesNotServe(
            f"deployment {deployment} does not serve {row['service']}/{row['handler']}",
            invocation_id=row["id"],
            deployment_id=deployment,
        )
    return deployment


async def invocation_resume(
    conn: asyncpg.Connection,
    invocation_id: str,
    *,
    deployment: str,
    actor: str,
    now: datetime,
) -> asyncpg.Record:
    """Make a paused, suspended or backing-off invocation ready: a new attempt replays its
    journal, on the deployment `deployment` names (a backing-off one keeps its own)."""
    row = await _locked(conn, invocation_id)
    if State.READY not in allowed_targets(State(row["state"]), Event.RESUMED):
        raise _refuse(row, "resumed")
    target = await _deployment_for(conn, row, deployment)
    if target != row["deployment_id"] and row["state"] == State.BACKING_OFF:
        raise InvalidTransition(
            f"invocation {invocation_id} is backing-off: it retries on its own deployment",
            invocation_id=invocation_id,
            state=row["state"],
        )
    changes = {"deployment_id": target, "due_at": None, "waiting_on": None}
    step = transition.Step(row, State.READY, changes)
    [resumed] = await transition.apply(conn, [step], Event.RESUMED, actor=actor, now=now)
    return resumed.row


async def _completed(conn: asyncpg.Connection, invocation_id: str, operation: str):
    row = await _locked(conn, invocation_id)
    if row["state"] != State.COMPLETED:
        raise _refuse(row, operation)
    return row


async def invocation_purge(
    conn: asyncpg.Connection, invocation_id: str, *, actor: str, now: datetime
) -> asyncpg.Record:
    """Delete a completed invocation with its journal and history; its idempotency key is
    free again. Returns the row as it was."""
    row = await _completed(conn, invocation_id, "purged")
    await conn.execute(Q["invocation_delete"], invocation_id)
    return row


async def journal_purge(
    conn: asyncpg.Connection, invocation_id: str, *, actor: str, now: datetime
) -> asyncpg.Record:
    """Delete the journal of a completed invocation; its result stays."""
    await _completed(conn, invocation_id, "purged of its journal")
    await conn.execute(Q["journal_delete"], invocation_id)
    return await conn.fetchrow(Q["invocation_journal_purged"], invocation_id, now)


async def invocation_restart(
    conn: asyncpg.Connection,
    invocation_id: str,
    *,
    from_entry: int,
    deployment: str,
    actor: str,
    now: datetime,
) -> asyncpg.Record:
    """Start a new invocation with the target, input and headers of a completed one. With
    from_entry N it starts with entries [0, N) of the old journal, which its first attempt
    replays; N must follow a completed entry."""
    old = await _completed(conn, invocation_id, "restarted")
    if old["journal_purged"]:
        raise JournalPurged(
            f"the journal of {invocation_id} was purged: it cannot be restarted",
            invocation_id=invocation_id,
        )
    if not 0 <= from_entry <= old["journal_length"]:
        raise InvalidFromEntry(
            f"from_entry {from_entry} is outside the journal (0..{old['journal_length']})",
            invocation_id=invocation_id,
        )
    if from_entry > 0:
        last = await conn.fetchrow(Q["journal_entry"], invocation_id, from_entry - 1)
        if not last["completed"]:
            raise InvalidFromEntry(
                f"entry {from_entry - 1} of {invocation_id} did not complete: cut after a "
                "completed entry",
                invocation_id=invocation_id,
            )
    pinned = None if deployment in ("", LATEST) else await _deployment_for(conn, old, deployment)
    new = NewInvocation(
        service=old["service"],
        handler=old["handler"],
        key=old["object_key"],
        input=old["input"],
        headers=dict(_headers(old)),
        restarted_from=invocation_id,
        deployment_id=pinned,
    )
    created = await invocation_create(conn, new, actor=actor, now=now)
    if from_entry == 0:
        return created.row
    await conn.execute(Q["journal_copy_prefix"], invocation_id, created.row["id"], from_entry, now)
    return await conn.fetchrow(Q["invocation_journal_length"], created.row["id"], from_entry)


def _headers(row: asyncpg.Record) -> dict[str, str]:
    return json.loads(row["headers"]) if row["headers"] else {}


async def invocations_expire(
    conn: asyncpg.Connection, *, limit: int, actor: str, now: datetime
) -> int:
    """Delete up to `limit` completed invocations whose retention ended (with their
    journals and histories); each deletion is traced. Returns how many it deleted."""
    rows = await conn.fetch(Q["invocations_expired_delete"], now, limit)
    for row in rows:
        transition.trace_purge(row, actor=actor)
    return len(rows)


# --- the audit log ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    identity: str
    operation: str
    invocation_id: str
    reason: str
    request_id: str | None
    result: str
    state_after: str | None = None
    new_invocation_id: str | None = None
    response: bytes | None = None


async def audit_record(conn: asyncpg.Connection, entry: AuditEntry, *, now: datetime) -> None:
    await conn.execute(
        Q["audit_insert"], now, entry.identity, entry.operation, entry.invocation_id,
        entry.reason, entry.request_id, entry.result, entry.state_after,
        entry.new_invocation_id, entry.response,
    )  # fmt: skip


async def audit_by_request_id(conn: asyncpg.Connection, request_id: str) -> asyncpg.Record | None:
    """The successful request `request_id` already named, if any."""
    return await conn.fetchrow(Q["audit_by_request_id"], request_id)


async def audit_page(
    conn: asyncpg.Connection, *, invocation_id: str | None, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(Q["audit_page"], invocation_id, before_id, limit)


def signal_of(payload: str) -> Signal:
    session_id, invocation_id, attempt, kind = payload.split(" ")
    return Signal(session_id, invocation_id, int(attempt), kind)
