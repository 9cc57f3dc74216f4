"""Attempts: claiming ready invocations for a worker session, what the worker writes while
it runs (journal, suspend, complete, fail), and the timers that move invocations on.

Every write of an attempt is fenced: it must come from the session holding the running
attempt with the same attempt number, or it is rejected with StaleAttempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from opentelemetry import context as otel_context

from ..domain.errors import (
    DomainError,
    InvalidArgument,
    InvocationNotFound,
    JournalMismatch,
    StaleAttempt,
)
from ..domain.retry import OnMaxAttempts, RetryPolicy
from ..domain.states import Event, Outcome, State
from . import transition
from ._sql import Q
from .deployments import DEFAULT_RETENTION_MS, handler_in
from .invocations import NewInvocation, invocation_create, object_lock_acquire, object_lock_release


@dataclasses.dataclass(frozen=True)
class Claimed:
    row: asyncpg.Record
    journal: list[asyncpg.Record]
    span_context: Any


@dataclasses.dataclass(frozen=True)
class EntryIn:
    """A journal entry as a worker sends it (server-filled fields are computed here)."""

    index: int
    kind: str  # run | sleep | call | send | get_state | set_state | clear_state | cancel
    name: str = ""
    value: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    target_service: str | None = None
    target_handler: str | None = None
    target_key: str | None = None
    argument: str | None = None
    delay_ms: int = 0


@dataclasses.dataclass(frozen=True)
class Failure:
    code: str
    message: str


# --- claiming -------------------------------------------------------------------------


async def attempts_claim(
    conn: asyncpg.Connection,
    *,
    deployment_id: str,
    session_id: str,
    limit: int,
    lease: timedelta,
    actor: str,
    now: datetime,
    locked: Sequence[asyncpg.Record] | None = None,
) -> list[Claimed]:
    """Claim up to `limit` ready invocations for a session of `deployment_id`.

    Unpinned invocations get pinned to the deployment here, at their first attempt.
    `locked`: claim these ready rows instead (up to `limit`), which this transaction
    holds already and which `deployment_id` may run (an invoke's new invocations).
    """
    if locked is None:
        rows = await conn.fetch(Q["ready_claim"], deployment_id, limit)
    else:
        rows = list(locked[:limit])
    if not rows:
        return []
    steps = [
        transition.Step(
            r,
            State.RUNNING,
            {
                "attempt": r["attempt"] + 1,
                "session_id": session_id,
                "deployment_id": deployment_id,
                "due_at": now + lease,
            },
        )
        for r in rows
    ]
    applied = await transition.apply(conn, steps, Event.CLAIMED, actor=actor, now=now)
    journals: dict[str, list[asyncpg.Record]] = {a.row["id"]: [] for a in applied}
    replaying = [a.row["id"] for a in applied if a.row["journal_length"] > 0]
    if replaying:  # a first attempt has nothing to replay
        for entry in await conn.fetch(Q["journal_entries_many"], replaying):
            journals[entry["invocation_id"]].append(entry)
    return [Claimed(a.row, journals[a.row["id"]], a.span_context) for a in applied]


# --- what a running attempt writes -----------------------------------------------------


async def attempts_lock(conn: asyncpg.Connection, invocation_ids: Sequence[str]) -> None:
    """Lock, in ID order, the invocations whose attempts a batch is about to write, with
    everything their ends may touch (callers, the next invocation pending on their keys),
    before any of the writes locks its own."""
    await conn.execute(Q["invocations_lock_with_callers"], sorted(set(invocation_ids)))


async def _lock_attempt(
    conn: asyncpg.Connection,
    invocation_id: str,
    attempt: int,
    session_id: str,
    *,
    with_caller: bool = False,
) -> tuple[asyncpg.Record, asyncpg.Record | None]:
    """Lock the invocation (and its caller, in ID order) and check the attempt's fence."""
    query = Q["invocations_lock_with_callers"] if with_caller else Q["invocations_lock"]
    rows = {r["id"]: r for r in await conn.fetch(query, [invocation_id])}
    row = rows.get(invocation_id)
    _check_fence(row, invocation_id, attempt, session_id)
    caller = rows.get(row["caller_id"]) if row["caller_id"] else None
    return row, caller


def _stale(invocation_id: str, attempt: int, row: Mapping[str, Any] | None) -> StaleAttempt:
    state = row["state"] if row else ""
    current = row["attempt"] if row else 0
    return StaleAttempt(
        f"attempt {attempt} of {invocation_id} no longer runs (state {state}, "
        f"current attempt {current})",
        invocation_id=invocation_id,
        state=state,
        attempt=str(current),
    )


def _check_fence(
    row: Mapping[str, Any] | None, invocation_id: str, attempt: int, session_id: str
) -> None:
    """Raise unless `row` is running `attempt` in `session_id`."""
    if row is None:
        raise InvocationNotFound(
            f"invocation {invocation_id} not found", invocation_id=invocation_id
        )
    if (
        row["state"] != State.RUNNING
        or row["attempt"] != attempt
        or row["session_id"] != session_id
    ):
        raise _stale(invocation_id, attempt, row)


async def journal_append(
    conn: asyncpg.Connection,
    *,
    invocation_id: str,
    attempt: int,
    session_id: str,
    entries: Sequence[EntryIn],
    lease: timedelta,
    actor: str,
    now: datetime,
) -> list[asyncpg.Record]:
    """Persist entries of a running attempt and return them as stored.

    Fills in what the server decides: a get's value, a sleep's wake time, the invocation a
    call or send created. Raises StaleAttempt, JournalMismatch (index does not continue the
    journal), InvalidArgument (state access outside an exclusive object handler).
    """
    row, _ = await _lock_attempt(conn, invocation_id, attempt, session_id)
    # Every check comes before the first write: a refused append changes nothing.
    length = row["journal_length"]
    for offset, e in enumerate(entries):
        if e.index != length + offset:
            raise JournalMismatch(
                f"entry index {e.index} does not continue the journal of {invocation_id} "
                f"(length {length})",
                invocation_id=invocation_id,
                journal_length=str(length),
            )
        if e.kind in _STATE_KINDS and (
            row["object_key"] is None or (e.kind != "get_state" and not row["exclusive"])
        ):
            raise InvalidArgument(
                f"{e.kind} needs an exclusive handler of a virtual object",
                invocation_id=row["id"],
            )
    stored: list[dict[str, Any]] = []
    for e in entries:
        stored.append(await _entry_effect(conn, row, e, actor=actor, now=now))
    columns = [
        "idx", "kind", "name", "completed", "value", "failure_code", "failure_message",
        "target_service", "target_handler", "target_key", "argument", "callee_id", "wake_at",
        "delay_ms",
    ]  # fmt: skip
    arrays = [[s[c] for s in stored] for c in columns]
    inserted = await conn.fetch(Q["journal_insert"], invocation_id, *arrays, now)
    # A cancel entry delivers the pending cancellation, and so does a call that ended
    # cancelled at once because of it (only a pending cancel makes a call end so here).
    delivers = any(
        s["kind"] == "cancel" or (s["kind"] == "call" and s["failure_code"] == CANCELLED)
        for s in stored
    )
    await conn.execute(
        Q["invocation_journal_written"],
        invocation_id,
        length + len(entries),
        now,
        now + lease,
        now + lease / 2,
        delivers,
    )
    return sorted(inserted, key=lambda r: r["idx"])


SIMPLE_KINDS = frozenset({"run", "sleep", "cancel"})
# The failure code of a cancellation, as the handler sees it and the invocation ends with.
CANCELLED = "CANCELLED"
CANCELLED_FAILURE = Failure(CANCELLED, "cancelled by an operator")
KILLED_FAILURE = Failure("KILLED", "killed by an operator")
_STATE_KINDS = frozenset({"get_state", "set_state", "clear_state"})


@dataclasses.dataclass(frozen=True)
class Append:
    """Journal entries from one attempt."""

    invocation_id: str
    attempt: int
    session_id: str
    entries: Sequence[EntryIn]


def is_simple(append: Append) -> bool:
    """Entries without side effects, contiguous: journal_append_many can write them."""
    first = append.entries[0].index if append.entries else 0
    return bool(append.entries) and all(
        e.kind in SIMPLE_KINDS and e.index == first + i for i, e in enumerate(append.entries)
    )


async def journal_append_many(
    conn: asyncpg.Connection, appends: Sequence[Append], *, lease: timedelta, now: datetime
) -> list[list[asyncpg.Record] | None]:
    """`journal_append` for many attempts at once, in one statement, for entries without
    side effects (see is_simple). Per append: the stored entries, or None when its fence or
    the journal's continuity did not hold (call `journal_append` for the precise error).
    An invocation appears at most once per call."""
    if len({a.invocation_id for a in appends}) != len(appends):
        raise ValueError("journal_append_many takes one append per invocation")
    entries = [(a.invocation_id, e) for a in appends for e in a.entries]
    rows = await conn.fetch(
        Q["journal_append_many"],
        [a.invocation_id for a in appends],
        [a.attempt for a in appends],
        [a.session_id for a in appends],
        [a.entries[0].index for a in appends],
        [len(a.entries) for a in appends],
        now,
        [i for i, _ in entries],
        [e.index for _, e in entries],
        [e.kind for _, e in entries],
        [e.name for _, e in entries],
        [e.kind != "sleep" or e.delay_ms <= 0 for _, e in entries],
        [e.value for _, e in entries],
        [e.failure_code for _, e in entries],
        [e.failure_message for _, e in entries],
        [now + timedelta(milliseconds=max(e.delay_ms, 0)) if e.kind == "sleep" else None
         for _, e in entries],
        [e.delay_ms for _, e in entries],
        now + lease,
        now + lease / 2,
        [any(e.kind == "cancel" for e in a.entries) for a in appends],
    )  # fmt: skip
    stored: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        stored.setdefault(r["invocation_id"], []).append(r)
    return [
        sorted(stored[a.invocation_id], key=lambda r: r["idx"])
        if a.invocation_id in stored
        else None
        for a in appends
    ]


async def _entry_effect(
    conn: asyncpg.Connection, row: asyncpg.Record, e: EntryIn, *, actor: str, now: datetime
) -> dict[str, Any]:
    """Carry out what one entry does and return the row to store for it."""
    out: dict[str, Any] = {
        "idx": e.index,
        "kind": e.kind,
        "name": e.name,
        "completed": True,
        "value": e.value,
        "failure_code": e.failure_code,
        "failure_message": e.failure_message,
        "target_service": e.target_service,
        "target_handler": e.target_handler,
        "target_key": e.target_key,
        "argument": e.argument,
        "callee_id": None,
        "wake_at": None,
        "delay_ms": e.delay_ms,
    }
    if e.kind == "sleep":
        out["wake_at"] = now + timedelta(milliseconds=max(e.delay_ms, 0))
        out["completed"] = e.delay_ms <= 0
    elif e.kind in ("call", "send"):
        is_call = e.kind == "call"
        new = NewInvocation(
            service=e.target_service or "",
            handler=e.target_handler or "",
            key=e.target_key or None,
            input=e.argument or "null",
            delay=timedelta(milliseconds=e.delay_ms) if e.delay_ms > 0 and not is_call else None,
            caller_id=row["id"] if is_call else None,
            caller_entry=e.index if is_call else None,
            parent=transition.started_by(row, call=is_call),
        )
        try:
            async with conn.transaction():  # a savepoint: a refused target writes nothing
                created = await invocation_create(conn, new, actor=actor, now=now)
        except DomainError as err:
            # The handler sees this as a terminal error of the call (or of the send's entry).
            out.update(failure_code=err.reason, failure_message=err.message, completed=True)
        else:
            out["callee_id"] = created.row["id"]
            out["completed"] = not is_call
            if new.delay is not None:
                out["wake_at"] = created.row["due_at"]  # when the delayed send is due
            if is_call and row["cancel_pending"]:
                # The caller was cancelled before its handler saw it (the signal is on its
                # way): the callee is in the cancelled tree and has not started, so it
                # completes cancelled at once, and the call records that real outcome.
                item = Finishing(created.row, None, Outcome.CANCELLED, None, CANCELLED_FAILURE)
                await finish(conn, item, Event.CANCELLED, actor=actor, now=now)
                out.update(
                    completed=True,
                    failure_code=CANCELLED_FAILURE.code,
                    failure_message=CANCELLED_FAILURE.message,
                )
    elif e.kind in _STATE_KINDS:
        svc, key = row["service"], row["object_key"]
        if e.kind == "get_state":
            value = await conn.fetchval(Q["object_state_get"], svc, key, e.name)
            out["value"] = "null" if value is None else value
        elif e.kind == "set_state":
            await conn.execute(Q["object_state_set"], svc, key, e.name, e.value or "null")
        else:
            await conn.execute(Q["object_state_clear"], svc, key, e.name)
    return out


async def attempt_suspend(
    conn: asyncpg.Connection,
    *,
    invocation_id: str,
    attempt: int,
    session_id: str,
    waiting_on: int,
    actor: str,
    now: datetime,
) -> None:
    """End the attempt; the invocation waits on a sleep or call entry without a worker.

    If the entry completed already (a fast call, a due timer), it is woken at once. With
    a cancellation pending, a sleep is cut short (it completes with the cancellation and
    wakes), while a call goes on waiting for its callee, which the cancel reached first;
    either way the await of this entry raises the cancellation.
    """
    row, _ = await _lock_attempt(conn, invocation_id, attempt, session_id)
    entry = await conn.fetchrow(Q["journal_entry"], invocation_id, waiting_on)
    if entry is None or entry["kind"] not in ("sleep", "call"):
        raise JournalMismatch(
            f"entry {waiting_on} of {invocation_id} is not a sleep or call to wait on",
            invocation_id=invocation_id,
        )
    completed = entry["completed"]
    cancel_pending = row["cancel_pending"]
    if cancel_pending and not completed and entry["kind"] == "sleep":
        # Cancelled while it ran: the sleep it suspends on raises the cancellation on the
        # next attempt, which starts at once.
        await conn.execute(
            Q["journal_complete_entry"], invocation_id, waiting_on, None,
            CANCELLED_FAILURE.code, CANCELLED_FAILURE.message,
        )  # fmt: skip
        completed, cancel_pending = True, False
    if entry["kind"] == "sleep" and not completed and entry["wake_at"] <= now:
        await conn.execute(Q["journal_complete_entry"], invocation_id, waiting_on, None, None, None)
        completed = True
    due = entry["wake_at"] if entry["kind"] == "sleep" and not completed else None
    changes = {
        "session_id": None,
        "due_at": due,
        "waiting_on": waiting_on,
        # Delivered by the sleep above, or still to be seen, at the await of this entry.
        "cancel_pending": cancel_pending,
    }
    [suspended] = await transition.apply(
        conn,
        [transition.Step(row, State.SUSPENDED, changes)],
        Event.SUSPENDED,
        actor=actor,
        now=now,
    )
    if completed:
        await _wake(conn, [suspended.row], actor=actor, now=now)


def wake_changes(row: Mapping[str, Any]) -> dict[str, Any]:
    """What waking a suspended invocation changes besides its state. With a cancellation
    pending, waiting_on stays: the await of that entry raises it (AttemptStart's
    cancel_at_entry), in place of the result the entry now holds."""
    return {"due_at": None, "waiting_on": row["waiting_on"] if row["cancel_pending"] else None}


async def _wake(
    conn: asyncpg.Connection, rows: Sequence[Mapping[str, Any]], *, actor: str, now: datetime
) -> list[transition.Applied]:
    steps = [transition.Step(r, State.READY, wake_changes(r)) for r in rows]
    applied = await transition.apply(conn, steps, Event.WOKEN, actor=actor, now=now)
    return applied


@dataclasses.dataclass(frozen=True)
class Completion:
    """A worker's report that an attempt finished the handler."""

    invocation_id: str
    attempt: int
    session_id: str
    output: str | None
    failure: Failure | None
    actor: str
    parent: otel_context.Context | None = None
    # What the attempt's claim on this server read of the row (claim_known), if it made
    # it: what complete_statement.py needs to know before it reads the row itself.
    claimed: Mapping[str, Any] | None = None


# Columns of an invocation that never change once it exists, which a claim hands on for
# its attempt's completion (complete_statement.py).
_CLAIM_KNOWN = ("id", "service", "handler", "object_key", "traceparent", "caller_id", "exclusive")


def claim_known(row: Mapping[str, Any]) -> dict[str, Any]:
    """What of a claimed row an attempt's completion may rely on (see Completion)."""
    return {k: row[k] for k in _CLAIM_KNOWN}


async def attempts_complete_many(
    conn: asyncpg.Connection, completions: Sequence[Completion], *, now: datetime
) -> list[asyncpg.Record | DomainError]:
    """The handlers of these attempts finished: complete each with outcome succeeded
    (output) or failed (terminal failure). One lock statement (invocations and their
    callers, in ID order), the fence checked for each, one transition statement for all.
    Per completion: the completed row, or the refusal (StaleAttempt, InvocationNotFound)."""
    ids = [c.invocation_id for c in completions]
    rows = {r["id"]: r for r in await conn.fetch(Q["invocations_lock_with_callers"], ids)}
    results: list[asyncpg.Record | DomainError | None] = []
    finishing: list[Finishing] = []
    taken: set[str] = set()
    for c in completions:
        row = rows.get(c.invocation_id)
        try:
            if c.invocation_id in taken:  # the same attempt reported twice in one batch
                raise _stale(c.invocation_id, c.attempt, row)
            _check_fence(row, c.invocation_id, c.attempt, c.session_id)
        except DomainError as refused:
            results.append(refused)
            continue
        taken.add(c.invocation_id)
        caller = rows.get(row["caller_id"]) if row["caller_id"] else None
        outcome = _outcome(row, c.failure)
        finishing.append(Finishing(row, caller, outcome, c.output, c.failure, c.actor, c.parent))
        results.append(None)
    done = iter(await finish_many(conn, finishing, Event.COMPLETED, actor="worker", now=now))
    return [next(done) if r is None else r for r in results]


def _outcome(row: Mapping[str, Any], failure: Failure | None) -> Outcome:
    """A handler that ends with the cancellation it was given (or one from its callee)
    after a cancel reached it completes cancelled; any other terminal failure is failed."""
    if failure is None:
        return Outcome.SUCCEEDED
    if failure.code == CANCELLED and row["cancelled_at"] is not None:
        return Outcome.CANCELLED
    return Outcome.FAILED


async def attempt_fail(
    conn: asyncpg.Connection,
    *,
    invocation_id: str,
    attempt: int,
    session_id: str,
    failure: Failure,
    actor: str,
    now: datetime,
) -> asyncpg.Record:
    """The attempt failed with a retryable error: back off, or give up per the policy.

    An invocation with a cancellation its handler has yet to see completes cancelled
    instead, keeping this failure as its last: a retry would only fail again before it
    reached the await that raises the cancellation (a handler that raises before its
    first await would retry until its attempts ran out)."""
    row, caller = await _lock_attempt(conn, invocation_id, attempt, session_id, with_caller=True)
    if row["cancel_pending"]:
        return await finish(
            conn,
            Finishing(row, caller, Outcome.CANCELLED, None, CANCELLED_FAILURE,
                      last_failure=failure),
            Event.ATTEMPT_FAILED, actor=actor, now=now,
        )  # fmt: skip
    return await _retry_or_give_up(
        conn, row, caller, failure, Event.ATTEMPT_FAILED, actor=actor, now=now
    )


async def _policy_of(conn: asyncpg.Connection, row: Mapping[str, Any]):
    resolved = await handler_in(conn, row["deployment_id"], row["service"], row["handler"])
    if resolved is None:
        return RetryPolicy(), DEFAULT_RETENTION_MS
    return resolved.retry_policy, resolved.retention_ms


async def _retry_or_give_up(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    caller: asyncpg.Record | None,
    failure: Failure,
    event: Event,
    *,
    actor: str,
    now: datetime,
) -> asyncpg.Record:
    policy, _ = await _policy_of(conn, row)
    common = {
        "session_id": None,
        "last_failure_code": failure.code,
        "last_failure_message": failure.message,
    }
    if not policy.exhausted(row["attempt"]):
        changes = {**common, "due_at": now + policy.delay_after(row["attempt"])}
        [a] = await transition.apply(
            conn, [transition.Step(row, State.BACKING_OFF, changes, failure.message)], event,
            actor=actor, now=now,
        )  # fmt: skip
        return a.row
    detail = f"{row['attempt']} attempts: {failure.message}"
    if policy.on_max_attempts == OnMaxAttempts.PAUSE:
        changes = {**common, "due_at": None}
        [a] = await transition.apply(
            conn, [transition.Step(row, State.PAUSED, changes, detail)],
            Event.RETRIES_EXHAUSTED, actor=actor, now=now,
        )  # fmt: skip
        return a.row
    return await finish(
        conn,
        Finishing(row, caller, Outcome.KILLED, None, Failure("RETRIES_EXHAUSTED", detail),
                  last_failure=failure),
        Event.RETRIES_EXHAUSTED, actor=actor, now=now,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Finishing:
    """A locked invocation about to complete, and its locked caller if any."""

    row: asyncpg.Record
    caller: asyncpg.Record | None
    outcome: Outcome
    output: str | None
    failure: Failure | None
    actor: str | None = None
    parent: otel_context.Context | None = None
    last_failure: Failure | None = None  # None keeps the row's


async def finish_many(
    conn: asyncpg.Connection, items: Sequence[Finishing], event: Event, *, actor: str,
    now: datetime,
) -> list[asyncpg.Record]:  # fmt: skip
    """Complete locked invocations (one statement) and do what completion entails for
    each: free its object key (the next pending invocation becomes ready) and hand the
    result to its caller, waking it if it waits on it (callers locked by the caller of
    this function). Attached clients are notified by the transition itself."""
    steps = []
    for it in items:
        _, retention_ms = await _policy_of(conn, it.row)
        last = it.last_failure
        changes = {
            "outcome": str(it.outcome),
            "output": it.output,
            "failure_code": it.failure.code if it.failure else None,
            "failure_message": it.failure.message if it.failure else None,
            "completed_at": now,
            "expires_at": now + timedelta(milliseconds=retention_ms),
            "due_at": None,
            "session_id": None,
            "waiting_on": None,
            "last_failure_code": last.code if last else it.row["last_failure_code"],
            "last_failure_message": last.message if last else it.row["last_failure_message"],
            "cancelled_at": it.row["cancelled_at"]
            or (now if it.outcome == Outcome.CANCELLED else None),
            "cancel_pending": False,
        }
        detail = it.failure.message if it.failure else None
        steps.append(transition.Step(it.row, State.COMPLETED, changes, detail, it.actor, it.parent))
    done = await transition.apply(conn, steps, event, actor=actor, now=now)
    results, wake = [], []
    for it in items:
        if it.row["exclusive"]:
            await object_lock_release(
                conn, it.row, actor=it.actor or actor, now=now, parent=it.parent
            )
        caller = it.caller
        if caller is not None and it.row["caller_entry"] is not None:
            results.append((caller["id"], it.row["caller_entry"], it.output, it.failure))
            if (
                caller["state"] == State.SUSPENDED
                and caller["waiting_on"] == it.row["caller_entry"]
            ):
                wake.append(
                    transition.Step(
                        caller, State.READY, wake_changes(caller), actor=it.actor, parent=it.parent
                    )
                )
    await journal_complete_many(conn, results)
    await transition.apply(conn, wake, Event.WOKEN, actor=actor, now=now)
    return [d.row for d in done]


async def journal_complete_many(
    conn: asyncpg.Connection, results: Sequence[tuple[str, int, str | None, Failure | None]]
) -> None:
    """Record results in journal entries, (invocation ID, index, value, failure) each: a
    call returned, a timer fired, a cancel reached the await. An entry that has its result
    already keeps it."""
    if results:
        await conn.execute(
            Q["journal_complete_entries"],
            [r[0] for r in results],
            [r[1] for r in results],
            [r[2] if r[3] is None else None for r in results],
            [r[3].code if r[3] else None for r in results],
            [r[3].message if r[3] else None for r in results],
        )


async def finish(
    conn: asyncpg.Connection, item: Finishing, event: Event, *, actor: str, now: datetime
) -> asyncpg.Record:
    """finish_many for one invocation."""
    [row] = await finish_many(conn, [item], event, actor=actor, now=now)
    return row


async def leases_renew(
    conn: asyncpg.Connection, session_id: str, invocation_ids: Sequence[str], until: datetime
) -> None:
    """A heart-beat: the session's attempts still in flight keep their lease until `until`."""
    await conn.execute(Q["session_leases_renew"], session_id, list(invocation_ids), until)


async def leases_expire(conn: asyncpg.Connection, session_id: str, now: datetime) -> None:
    """The session's stream closed: the leases of its running attempts lapse now, and the
    timers retry them."""
    await conn.execute(Q["session_leases_expire"], session_id, now)


# --- timers ------------------------------------------------------------------------------


async def due_next(conn: asyncpg.Connection) -> datetime | None:
    """When the next timer is due (None: no timer is set)."""
    return await conn.fetchval(Q["due_next"])


async def due_process(conn: asyncpg.Connection, *, limit: int, actor: str, now: datetime) -> int:
    """Move on invocations whose timer is due; returns how many it handled.

    scheduled -> ready (or pending behind its key), backing-off -> ready, suspended on a
    sleep -> ready, running with a lapsed lease -> retry or give up.
    """
    rows = await conn.fetch(Q["due_claim"], now, limit)
    by_state: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        by_state.setdefault(r["state"], []).append(r)
    woken: list[transition.Applied] = []

    due_steps, busy_steps = [], []
    for r in by_state.get(State.SCHEDULED, []):
        free = not r["exclusive"] or await object_lock_acquire(
            conn, r["service"], r["object_key"], r["id"]
        )
        (due_steps if free else busy_steps).append(
            transition.Step(r, State.READY if free else State.PENDING, {"due_at": None})
        )
    woken += await transition.apply(conn, due_steps, Event.DUE, actor=actor, now=now)
    await transition.apply(conn, busy_steps, Event.KEY_BUSY, actor=actor, now=now)

    retry = [
        transition.Step(r, State.READY, {"due_at": None})
        for r in by_state.get(State.BACKING_OFF, [])
    ]
    woken += await transition.apply(conn, retry, Event.RETRY_DUE, actor=actor, now=now)

    sleepers = by_state.get(State.SUSPENDED, [])
    await journal_complete_many(conn, [(r["id"], r["waiting_on"], None, None) for r in sleepers])
    if sleepers:
        woken += await _wake(conn, sleepers, actor=actor, now=now)

    for r in by_state.get(State.RUNNING, []):
        # Lock order: the claim holds rows locked by due time, so what a lapsed attempt's
        # end touches besides (its caller, the next invocation pending on its key) is only
        # taken if free, never waited for: a held one leaves it for the next tick.
        locked = {x["id"]: x for x in await conn.fetch(Q["invocations_try_lock_with_callers"],
                                                       [r["id"]])}  # fmt: skip
        if locked[r["id"]]["busy"]:
            continue
        caller = locked.get(r["caller_id"]) if r["caller_id"] else None
        await _retry_or_give_up(
            conn, r, caller, Failure("LEASE_EXPIRED", "the worker's lease on the attempt lapsed"),
            Event.LEASE_EXPIRED, actor=actor, now=now,
        )  # fmt: skip
    return len(rows)
