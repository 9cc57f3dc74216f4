"""Operator actions (DESIGN.md section 4): cancel, kill, pause, resume, purge, purge the
journal, restart as new.

Each action is set-based: it takes many targets (the concurrent requests of a batch, or a
page of a bulk operation) and acts on them with a few statements, whatever their number,
while every invocation is still locked, checked against the state table, recorded and
traced on its own. Per target it returns the row after the change, or the DomainError
that refused it; a refused target has nothing written for it (checks come first), so the
others can commit. State changes only through transition.py.

Targets whose invocations overlap (the same invocation twice, or call trees that meet)
are acted on in rounds, one after the other, each round seeing what the last one did.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import context as otel_context

from ..domain.errors import (
    DeploymentDoesNotServe,
    DeploymentNotFound,
    DomainError,
    HandlerNotFound,
    InvalidFromEntry,
    InvalidTransition,
    InvocationNotFound,
    JournalPurged,
)
from ..domain.states import Event, Outcome, State, allowed_targets, started
from . import notify, transition
from ._sql import Q
from .attempts import (
    CANCELLED_FAILURE,
    KILLED_FAILURE,
    Finishing,
    finish_many,
    journal_complete_many,
)
from .deployments import deployment_exists, handler_in, handler_latest
from .invocations import NewInvocation, invocations_create_many

KEEP, LATEST = "keep", "latest"

Result = asyncpg.Record | DomainError


@dataclasses.dataclass(frozen=True)
class Target:
    """One request to act on one invocation."""

    invocation_id: str
    parent: otel_context.Context | None = None  # the trace its transitions belong to
    deployment: str = ""  # resume, restart: keep, latest or a dp_ ID
    from_entry: int = 0  # restart


@dataclasses.dataclass(frozen=True)
class Signal:
    """A running attempt an operation reached: its worker session stops it (pause, kill)
    or lets its handler see the cancellation (cancel)."""

    session_id: str
    invocation_id: str
    attempt: int
    kind: str  # pause | kill | cancel


def signal_of(payload: str) -> Signal:
    session_id, invocation_id, attempt, kind = payload.split(" ")
    return Signal(session_id, invocation_id, int(attempt), kind)


async def _signal(conn: asyncpg.Connection, signals: Sequence[Signal]) -> None:
    """Tell whichever server holds each session (delivered at commit)."""
    if signals:
        payloads = [f"{s.session_id} {s.invocation_id} {s.attempt} {s.kind}" for s in signals]
        await conn.execute(Q["notify_many"], notify.SIGNAL, payloads)


def _not_found(invocation_id: str) -> InvocationNotFound:
    return InvocationNotFound(f"invocation {invocation_id} not found", invocation_id=invocation_id)


def _refuse(row: asyncpg.Record, operation: str) -> InvalidTransition:
    return InvalidTransition(
        f"invocation {row['id']} is {row['state']}: it cannot be {operation}",
        invocation_id=row["id"],
        state=row["state"],
    )


def _rounds(indices: Iterable[int], touches: Callable[[int], set[str]]) -> list[list[int]]:
    """Group targets so that no two in a round touch the same invocation; a target comes
    after every earlier one it overlaps with."""
    rounds: list[list[int]] = []
    touched: list[set[str]] = []
    for i in indices:
        ids = touches(i)
        after = max((n for n, seen in enumerate(touched) if seen & ids), default=-1)
        if after + 1 == len(rounds):
            rounds.append([])
            touched.append(set())
        rounds[after + 1].append(i)
        touched[after + 1] |= ids
    return rounds


# The actions that reach a target's call tree, its caller and the keys they hold.
TREE_ACTIONS = frozenset({"cancel", "kill"})


@dataclasses.dataclass(frozen=True)
class Locked:
    """What lock_batch locked: every row as it is now, and each tree target's call tree as
    the statement saw it. `current`: no member called more between the statement's
    snapshot and its lock, so the trees are whole."""

    rows: dict[str, asyncpg.Record]
    members: dict[str, set[str]]
    current: bool


async def lock_batch(conn: asyncpg.Connection, targets: Iterable[tuple[str, str]]) -> Locked:
    """Lock every invocation the actions on these (action, invocation ID) targets may touch,
    in one ID-ordered statement (invocations_lock_batch), before any of them runs, so that
    a batch of several actions, or of several rounds, takes its locks in ID order. An
    action given the result (`locked=`) acts on these rows without locking them again; one
    that runs after another action of the batch must not be given it (the rows changed),
    and locks them again, which waits for nothing now. (A member that joined a call tree
    after this statement is locked when the action finds it, out of order.)"""
    plain, trees = set(), set()
    for action, invocation_id in targets:
        (trees if action in TREE_ACTIONS else plain).add(invocation_id)
    rows: dict[str, asyncpg.Record] = {}
    members: dict[str, set[str]] = {i: set() for i in trees}
    if plain or trees:
        for r in await conn.fetch(Q["invocations_lock_batch"], sorted(plain), sorted(trees)):
            rows[r["id"]] = r
            for root in r["tree_roots"] or ():
                members[root].add(r["id"])
    current = all(r["seen_length"] in (None, r["journal_length"]) for r in rows.values())
    return Locked(rows, members, current)


async def _lock(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, asyncpg.Record]:
    return {r["id"]: r for r in await transition.lock(conn, sorted(set(ids)))}


async def _reread(conn: asyncpg.Connection, rows: dict[str, asyncpg.Record], ids: set[str]):
    """Refresh locked rows an earlier round may have changed."""
    rows.update({r["id"]: r for r in await conn.fetch(Q["invocations_get"], list(ids))})


async def _simple(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    act: Callable[[asyncpg.Connection, list[tuple[int, asyncpg.Record]], list[Result | None]], Any],
    locked: Locked | None,
) -> list[Result]:
    """Lock the targets (unless `locked` holds them) and call `act(conn, [(index, row)],
    results)` per round, for actions on the target alone (no call tree). Unknown IDs are
    refused here."""
    ids = {t.invocation_id for t in targets}
    if locked is None:
        rows = await _lock(conn, ids)
    else:
        rows = {i: locked.rows[i] for i in ids if i in locked.rows}
    results: list[Result | None] = [None] * len(targets)
    for i, t in enumerate(targets):
        if t.invocation_id not in rows:
            results[i] = _not_found(t.invocation_id)
    live = [i for i, r in enumerate(results) if r is None]
    for n, round_ in enumerate(_rounds(live, lambda i: {targets[i].invocation_id})):
        if n:
            await _reread(conn, rows, {targets[i].invocation_id for i in round_})
        await act(conn, [(i, rows[targets[i].invocation_id]) for i in round_], results)
    return results  # type: ignore[return-value]


# --- call trees: cancel and kill -----------------------------------------------------


@dataclasses.dataclass
class _Trees:
    rows: dict[str, asyncpg.Record]  # every locked row: targets, their trees, callers
    members: dict[str, list[str]]  # each target's call tree, in ID order, target excluded


async def _lock_trees(
    conn: asyncpg.Connection, ids: Sequence[str], locked: Locked | None
) -> _Trees:
    """Lock the invocations, every not-completed invocation each called (recursively) and
    their callers, in ID order (unless `locked` holds them): one statement, unless one of
    them called more between that statement's snapshot and its lock."""
    if locked is None:
        locked = await lock_batch(conn, (("kill", i) for i in ids))
    rows = dict(locked.rows)
    if locked.current:
        return _Trees(rows, {i: sorted(locked.members.get(i, ())) for i in ids})
    while True:
        # Look again once locked: a member that was running may have called more before
        # it was locked; once locked, none can.
        found = await _call_trees(conn, ids)
        missing = set().union(*found.values()) - rows.keys()
        if not missing:
            return _Trees(rows, {i: sorted(found[i]) for i in ids})
        more = await conn.fetch(Q["invocations_lock_with_callers"], sorted(missing))
        rows.update({r["id"]: r for r in more})


async def _call_trees(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, set[str]]:
    trees: dict[str, set[str]] = {i: set() for i in ids}
    for r in await conn.fetch(Q["invocation_call_trees"], list(ids)):
        trees[r["root"]].add(r["id"])
    return trees


async def _tree_action(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    operation: str,
    event: Event,
    act: Callable[..., Any],
    actor: str,
    now: datetime,
    locked: Locked | None,
) -> list[Result]:
    """Lock the targets with their call trees (unless `locked` holds them) and, per round,
    call `act(conn, work, rows)`, where `work` holds (index, target row, not-completed
    members) of targets whose trees and callers do not meet. `act` makes its own
    transitions and returns the invocations to complete (Finishing) and the signals for
    running attempts; this completes them with `event`. A completed target is refused."""
    ids = list(dict.fromkeys(t.invocation_id for t in targets))
    trees = await _lock_trees(conn, ids, locked)
    rows = trees.rows

    def touches(i: int) -> set[str]:
        tid = targets[i].invocation_id
        caller = rows[tid]["caller_id"]
        return {tid, *trees.members[tid], *([caller] if caller else [])}

    results: list[Result | None] = [None] * len(targets)
    for i, t in enumerate(targets):
        if t.invocation_id not in rows:
            results[i] = _not_found(t.invocation_id)
    live = [i for i, r in enumerate(results) if r is None]
    for n, round_ in enumerate(_rounds(live, touches)):
        if n:
            await _reread(conn, rows, set().union(*(touches(i) for i in round_)))
        work = []
        for i in round_:
            target = rows[targets[i].invocation_id]
            if target["state"] == State.COMPLETED:
                results[i] = _refuse(target, operation)
                continue
            members = [rows[m] for m in trees.members[target["id"]]]
            work.append((i, target, [m for m in members if m["state"] != State.COMPLETED]))
        finishing, signals = await act(conn, work, rows)
        for row in await finish_many(conn, finishing, event, actor=actor, now=now):
            rows[row["id"]] = row
        await _signal(conn, signals)
        for i, target, _ in work:
            results[i] = rows[target["id"]]
    return results  # type: ignore[return-value]


def _started(row: asyncpg.Record) -> bool:
    return started(State(row["state"]), row["attempt"])


async def cancel_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Cancel each invocation and its not-completed call tree, leaves first: each handler
    sees the cancellation at its next await, but one awaiting a call to a not-completed
    invocation of the tree sees it at that await only once the callee ended, whose real
    outcome its call entry records. So compensation flows from the leaves up.

    A member that has not started (pending, scheduled, ready before its first attempt)
    completes cancelled at once, and its caller gets the failure. A started one is marked
    cancelled and goes on to let its handler see it: a running attempt is signalled; a
    suspended one awaiting a callee stays suspended until the callee's end wakes it, and
    its next attempt raises the cancellation at that call (cancel_pending, waiting_on);
    one asleep has its sleep completed with the cancellation and wakes; a paused or
    backing-off one becomes ready, and its next attempt sees the cancellation at its
    first live await. A member cancelled before is left as it is (a cancel is delivered
    once)."""
    failure = CANCELLED_FAILURE

    async def act(conn, work, rows):
        steps, signals, woken, not_started = [], [], [], []
        for i, target, members in work:
            parent = targets[i].parent
            # The call entries awaiting a member: every callee of a tree node is a member.
            awaited = {(m["caller_id"], m["caller_entry"]) for m in members}
            for m in (target, *members):
                if m["cancelled_at"] is not None:
                    continue
                if not _started(m):
                    not_started.append((m["id"], parent))
                    continue
                state = State(m["state"])
                # Suspended and not on a callee: on a sleep (a suspended call's callee is
                # never completed, or it would have woken its caller).
                asleep = state == State.SUSPENDED and (m["id"], m["waiting_on"]) not in awaited
                stays = state == State.RUNNING or (state == State.SUSPENDED and not asleep)
                changes = {
                    "cancelled_at": now,
                    "cancel_pending": not asleep,
                    "due_at": m["due_at"] if stays else None,
                    "waiting_on": m["waiting_on"] if stays else None,
                }
                if state == State.RUNNING:
                    signals.append(Signal(m["session_id"], m["id"], m["attempt"], "cancel"))
                if asleep:
                    # The sleep is cut short: its await raises the cancellation.
                    woken.append((m["id"], m["waiting_on"], None, failure))
                to = state if stays else State.READY
                steps.append(transition.Step(m, to, changes, parent=parent))
        await journal_complete_many(conn, woken)
        for a in await transition.apply(conn, steps, Event.CANCELLED, actor=actor, now=now):
            rows[a.row["id"]] = a.row
        # After the started ones: finishing a not-started callee wakes its caller if that
        # one waits for it, and must see the caller as the cancel left it.
        finishing = [
            Finishing(rows[m], rows.get(rows[m]["caller_id"]), Outcome.CANCELLED, None, failure,
                      parent=parent)
            for m, parent in not_started
        ]  # fmt: skip
        return finishing, signals

    return await _tree_action(conn, targets, "cancelled", Event.CANCELLED, act, actor, now, locked)


async def kill_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Complete each invocation and its not-completed call tree with outcome killed, at
    once and without compensation. Running attempts are fenced (and signalled), object
    keys pass to the next pending invocation, and the target's caller gets the failure."""
    failure = KILLED_FAILURE

    async def act(conn, work, rows):
        items, signals = [], []
        for i, target, members in work:
            parent = targets[i].parent
            caller = rows.get(target["caller_id"]) if target["caller_id"] else None
            items.append(Finishing(target, caller, Outcome.KILLED, None, failure, parent=parent))
            # The callers of tree members are killed with them: nobody to hand a result to.
            items += [
                Finishing(m, None, Outcome.KILLED, None, failure, parent=parent) for m in members
            ]
            signals += [
                Signal(r["session_id"], r["id"], r["attempt"], "kill")
                for r in (target, *members)
                if r["state"] == State.RUNNING
            ]
        return items, signals

    return await _tree_action(conn, targets, "killed", Event.KILLED, act, actor, now, locked)


# --- the target alone ------------------------------------------------------------------


async def pause_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Pause each running (its attempt is fenced and signalled to stop) or backing-off (its
    retry timer is dropped) invocation. Pausing a paused one changes nothing."""

    async def act(conn, round_, results) -> None:
        steps, order, signals = [], [], []
        for i, row in round_:
            if row["state"] == State.PAUSED:
                results[i] = row
            elif State.PAUSED not in allowed_targets(State(row["state"]), Event.PAUSED):
                results[i] = _refuse(row, "paused")
            else:
                changes = {"session_id": None, "due_at": None}
                steps.append(transition.Step(row, State.PAUSED, changes, parent=targets[i].parent))
                order.append(i)
                if row["state"] == State.RUNNING:
                    signals.append(Signal(row["session_id"], row["id"], row["attempt"], "pause"))
        applied = await transition.apply(conn, steps, Event.PAUSED, actor=actor, now=now)
        for i, a in zip(order, applied, strict=True):
            results[i] = a.row
        await _signal(conn, signals)

    return await _simple(conn, targets, act, locked)


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
                state=row["state"],
            ) from exc
    if not await deployment_exists(conn, deployment):
        raise DeploymentNotFound(f"deployment {deployment} not found", deployment_id=deployment)
    if await handler_in(conn, deployment, row["service"], row["handler"]) is None:
        raise DeploymentDoesNotServe(
            f"deployment {deployment} does not serve {row['service']}/{row['handler']}",
            invocation_id=row["id"],
            state=row["state"],
            deployment_id=deployment,
        )
    return deployment


async def resume_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Make each paused, suspended or backing-off invocation ready now: a new attempt
    replays its journal, on the deployment its target names. A ready one that has started
    before (its deployment's workers may be gone) is re-pinned the same way."""

    async def act(conn, round_, results) -> None:
        steps, order = [], []
        for i, row in round_:
            try:
                if State.READY not in allowed_targets(State(row["state"]), Event.RESUMED) or (
                    not _started(row)
                ):
                    raise _refuse(row, "resumed")
                deployment = await _deployment_for(conn, row, targets[i].deployment)
            except DomainError as refused:
                results[i] = refused
                continue
            changes = {
                "deployment_id": deployment,
                "due_at": None,
                # With a cancel pending: the await that raises it (see attempts.wake_changes).
                "waiting_on": row["waiting_on"] if row["cancel_pending"] else None,
            }
            steps.append(transition.Step(row, State.READY, changes, parent=targets[i].parent))
            order.append(i)
        applied = await transition.apply(conn, steps, Event.RESUMED, actor=actor, now=now)
        for i, a in zip(order, applied, strict=True):
            results[i] = a.row

    return await _simple(conn, targets, act, locked)


def _completed_only(round_, results, operation: str) -> list[tuple[int, asyncpg.Record]]:
    """The (index, row) of completed targets; the others are refused."""
    completed = []
    for i, row in round_:
        if row["state"] == State.COMPLETED:
            completed.append((i, row))
        else:
            results[i] = _refuse(row, operation)
    return completed


async def purge_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Delete each completed invocation with its journal and history; its idempotency key
    is free again. Returns the rows as they were."""

    async def act(conn, round_, results) -> None:
        completed = _completed_only(round_, results, "purged")
        await conn.execute(Q["invocations_delete"], [row["id"] for _, row in completed])
        for i, row in completed:
            results[i] = row
            transition.trace_purge(row, actor=actor, parent=targets[i].parent)

    return await _simple(conn, targets, act, locked)


async def journal_purge_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Delete the journal of each completed invocation; its result stays."""

    async def act(conn, round_, results) -> None:
        completed = _completed_only(round_, results, "purged of its journal")
        ids = [row["id"] for _, row in completed]
        await conn.execute(Q["journals_delete"], ids)
        purged = {r["id"]: r for r in await conn.fetch(Q["invocations_journal_purged"], ids, now)}
        for i, row in completed:
            results[i] = purged[row["id"]]

    return await _simple(conn, targets, act, locked)


async def restart_many(
    conn: asyncpg.Connection,
    targets: Sequence[Target],
    *,
    actor: str,
    now: datetime,
    locked: Locked | None = None,
) -> list[Result]:
    """Start a new invocation with the target, input and headers of each completed one.
    With from_entry N it starts with entries [0, N) of the old journal, which its first
    attempt replays; N must follow a completed entry, and not the point where the old
    handler saw its cancellation. Returns the new invocations: each target is checked on
    its own, and those that pass are created together (invocations_create_many)."""

    async def act(conn, round_, results) -> None:
        checked: list[tuple[int, asyncpg.Record, NewInvocation]] = []
        for i, old in round_:
            try:
                new = await _restart_of(conn, old, targets[i])
            except DomainError as refused:
                results[i] = refused
                continue
            checked.append((i, old, new))
        created = await invocations_create_many(
            conn, [(new, targets[i].parent) for i, _, new in checked], actor=actor, now=now
        )
        for (i, old, _), made in zip(checked, created, strict=True):
            if isinstance(made, DomainError) or targets[i].from_entry == 0:
                results[i] = made if isinstance(made, DomainError) else made.row
                continue
            new_id, from_entry = made.row["id"], targets[i].from_entry
            await conn.execute(Q["journal_copy_prefix"], old["id"], new_id, from_entry, now)
            results[i] = await conn.fetchrow(Q["invocation_journal_length"], new_id, from_entry)

    return await _simple(conn, targets, act, locked)


async def _restart_of(
    conn: asyncpg.Connection, old: asyncpg.Record, target: Target
) -> NewInvocation:
    """The new invocation that restarts `old`, or the DomainError that refuses it."""
    invocation_id, from_entry = old["id"], target.from_entry
    if old["state"] != State.COMPLETED:
        raise _refuse(old, "restarted")
    if old["journal_purged"]:
        raise JournalPurged(
            f"the journal of {invocation_id} was purged: it cannot be restarted",
            invocation_id=invocation_id,
            state=old["state"],
        )
    if not 0 <= from_entry <= old["journal_length"]:
        raise InvalidFromEntry(
            f"from_entry {from_entry} is outside the journal (0..{old['journal_length']})",
            invocation_id=invocation_id,
            state=old["state"],
        )
    if from_entry > 0:
        last = await conn.fetchrow(Q["journal_entry"], invocation_id, from_entry - 1)
        if not last["completed"]:
            raise InvalidFromEntry(
                f"entry {from_entry - 1} of {invocation_id} did not complete: cut after a "
                "completed entry",
                invocation_id=invocation_id,
                state=old["state"],
            )
        # A restart is a new invocation that nobody cancelled: replaying the point where
        # the old handler saw its cancellation would raise it again.
        seen = await conn.fetchval(Q["journal_cancel_seen"], invocation_id, from_entry)
        if seen is not None:
            raise InvalidFromEntry(
                f"entry {seen} of {invocation_id} is where its handler saw its cancellation, "
                f"and a restart is not cancelled: restart from entry {seen} or before",
                invocation_id=invocation_id,
                state=old["state"],
                cancelled_at_entry=str(seen),
            )
    deployment = target.deployment
    pinned = None if deployment in ("", LATEST) else await _deployment_for(conn, old, deployment)
    return NewInvocation(
        service=old["service"],
        handler=old["handler"],
        key=old["object_key"],
        input=old["input"],
        headers=json.loads(old["headers"]) if old["headers"] else {},
        restarted_from=invocation_id,
        deployment_id=pinned,
    )


# --- retention -------------------------------------------------------------------------


async def invocations_expire(
    conn: asyncpg.Connection, *, limit: int, actor: str, now: datetime
) -> int:
    """Delete up to `limit` completed invocations whose retention ended (with their
    journals and histories); each deletion is traced. Returns how many it deleted."""
    rows = await conn.fetch(Q["invocations_expired_delete"], now, limit)
    for row in rows:
        transition.trace_purge(row, actor=actor)
    return len(rows)
