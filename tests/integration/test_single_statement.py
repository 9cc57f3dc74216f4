"""The one-statement form of the common operator actions (store/single_statement.py) does
exactly what the general path (store/operations.py) does, wherever it acts, and nothing
at all where it does not.

Every action meets twin invocations in each case below (the same row, journal and
neighbours, under two IDs): one goes through the statement (api/operator._write_first),
the other through the general path's transaction (api/operator._write). Where the
statement acts, both must have written the same row, history, journal, audit entry,
notifications and span; where it does not, its twin must be untouched. Which cases the
statement acts on is asserted too, so a statement that never acts cannot pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from invoctl_server.api import operator
from invoctl_server.runtime.batcher import Request as Batched
from invoctl_server.store import attempts, complete_statement, notify
from invoctl_server.store import db as store_db

DEPLOYMENT = "dp_" + "0" * 22
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION_MS = 12_345


@dataclasses.dataclass(frozen=True)
class Case:
    """An invocation's columns (besides the common ones), its journal (idx, kind,
    completed), and its neighbours: a callee in flight, a caller, the key it holds."""

    columns: dict
    journal: tuple = ()
    callee: bool = False  # it called an invocation that has not completed
    caller: bool = False  # an invocation called it and waits for it
    holds_key: bool = False


COMMON = dict(
    service="S",
    handler="h",
    exclusive=False,
    input="null",
    attempt=0,
    deployment_id=DEPLOYMENT,
    created_at=T0,
    modified_at=T0,
)
SLEEPING = dict(journal_length=2, waiting_on=1, due_at=T0 + timedelta(hours=1))
TRACED = dict(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
# fmt: off
CASES = {
    "pending": Case(dict(state="pending", exclusive=True, object_key="k")),
    "scheduled": Case(dict(state="scheduled", due_at=T0 + timedelta(minutes=5))),
    "ready, never started": Case(dict(state="ready")),
    "ready, started before": Case(dict(state="ready", attempt=2, journal_length=1),
                                  journal=((0, "run", True),)),
    "running": Case(dict(state="running", attempt=3, session_id="sess_a",
                         due_at=T0 + timedelta(seconds=30))),
    "running, cancelled": Case(dict(state="running", attempt=3, session_id="sess_a",
                                    cancelled_at=T0, cancel_pending=True)),
    "backing-off": Case(dict(state="backing-off", attempt=2, due_at=T0 + timedelta(seconds=9),
                             last_failure_code="E", last_failure_message="boom")),
    "suspended on a sleep": Case(dict(state="suspended", attempt=1, **SLEEPING, **TRACED),
                                 journal=((0, "run", True), (1, "sleep", False))),
    "suspended on a call": Case(dict(state="suspended", attempt=1, journal_length=1,
                                     waiting_on=0),
                                journal=((0, "call", False),), callee=True),
    "suspended, called": Case(dict(state="suspended", attempt=1, **SLEEPING),
                              journal=((0, "run", True), (1, "sleep", False)),
                              caller=True),
    "suspended, holding its key": Case(dict(state="suspended", attempt=1, exclusive=True,
                                            object_key="k", **SLEEPING),
                                       journal=((0, "run", True), (1, "sleep", False)),
                                       holds_key=True),
    "paused": Case(dict(state="paused", attempt=4, last_failure_code="E")),
    "paused, cancel pending": Case(dict(state="paused", attempt=4, cancelled_at=T0,
                                        cancel_pending=True, waiting_on=0, journal_length=1),
                                   journal=((0, "sleep", True),)),
    "completed": Case(dict(state="completed", attempt=1, outcome="succeeded", output="1",
                           completed_at=T0, expires_at=T0 + timedelta(days=1))),
}

# Where the one statement acts; everywhere else the general path does.
ACTS = {
    "KillInvocation": {"scheduled", "ready, never started", "ready, started before", "running",
                       "running, cancelled", "backing-off", "suspended on a sleep", "paused",
                       "paused, cancel pending"},
    "CancelInvocation": {"ready, started before", "running", "backing-off",
                         "suspended on a sleep", "suspended, called",
                         "suspended, holding its key", "paused"},
    "PauseInvocation": {"running", "running, cancelled", "backing-off"},
    "ResumeInvocation": {"ready, started before", "backing-off", "suspended on a sleep",
                         "suspended on a call", "suspended, called",
                         "suspended, holding its key", "paused", "paused, cancel pending"},
    "PurgeInvocation": {"completed"},
}
# fmt: on


async def _deployment(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO deployments (id, created_at) VALUES ($1, $2)", DEPLOYMENT, T0)
    await db.execute(
        "INSERT INTO deployment_services VALUES ($1, 'S', 'service', $2)", DEPLOYMENT,
        RETENTION_MS,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO deployment_handlers VALUES ($1, 'S', 'h', false, '{}')", DEPLOYMENT
    )


def _id(name: str) -> str:
    return "inv_" + name.rjust(22, "0")[-22:]


async def _seed(conn: asyncpg.Connection, inv: str, case: Case) -> None:
    columns = {**COMMON, **case.columns}
    if case.caller:
        caller = inv[:-1] + "C"
        await _insert(conn, {**COMMON, "id": caller, "state": "suspended", "attempt": 1,
                             "waiting_on": 0, "journal_length": 1})  # fmt: skip
        await conn.execute(
            "INSERT INTO journal_entries (invocation_id, idx, kind, completed, callee_id,"
            " created_at) VALUES ($1, 0, 'call', false, $2, $3)", caller, inv, T0,
        )  # fmt: skip
        columns.update(caller_id=caller, caller_entry=0)
    await _insert(conn, {"id": inv, **columns})
    for idx, kind, completed in case.journal:
        await conn.execute(
            "INSERT INTO journal_entries (invocation_id, idx, kind, completed, created_at)"
            " VALUES ($1, $2, $3, $4, $5)", inv, idx, kind, completed, T0,
        )  # fmt: skip
    if case.callee:
        await _insert(conn, {**COMMON, "id": inv[:-1] + "D", "state": "running", "attempt": 1,
                             "session_id": "sess_b", "caller_id": inv,
                             "caller_entry": 0})  # fmt: skip
    if case.holds_key:
        await conn.execute(
            "INSERT INTO object_locks (service, object_key, holder_id) VALUES ('S', $1, $2)",
            inv, inv,
        )  # fmt: skip
        await conn.execute("UPDATE invocations SET object_key = $1 WHERE id = $1", inv)


async def _insert(conn: asyncpg.Connection, row: dict) -> None:
    names = ", ".join(row)
    marks = ", ".join(f"${i + 1}" for i in range(len(row)))
    await conn.execute(f"INSERT INTO invocations ({names}) VALUES ({marks})", *row.values())


@dataclasses.dataclass
class Written:
    """What one request wrote, with its invocation's ID (and its neighbours') as X."""

    row: dict | None
    history: list
    journal: list
    audit: list
    notifications: list
    spans: list


def _normal(value, inv: str):
    """IDs of the invocation and its neighbours (the same but for the last character) as
    X and a suffix."""
    if isinstance(value, str):
        return value.replace(inv[:-1], "X")
    return value


def _column(name: str, value, now: datetime):
    """A column of a row the request changed at `now` (its modified_at), or of the seed's
    row (at T0), as comparable between the twins: span IDs by their number, times the
    request wrote as "now" (and the end of retention as the time after it)."""
    if name == "pending_links":
        return len(value or ())
    if isinstance(value, datetime) and now != T0:
        if name == "expires_at":
            return value - now
        return "now" if value == now else value
    return value


async def _written(conn, inv: str, heard: list, spans) -> Written:
    row = await conn.fetchrow("SELECT * FROM invocations WHERE id = $1", inv)
    normal = None
    if row is not None:
        normal = {k: _normal(_column(k, v, row["modified_at"]), inv) for k, v in row.items()}
    history = [
        (r["from_state"], r["to_state"], r["event"], r["actor"], r["attempt"], r["detail"],
         r["trace_id"] is not None, r["span_id"] is not None)
        for r in await conn.fetch(
            "SELECT * FROM invocation_transitions WHERE invocation_id = $1 ORDER BY id", inv)
    ]  # fmt: skip
    journal = [
        tuple(r) for r in await conn.fetch(
            "SELECT idx, kind, completed, value, failure_code, failure_message"
            " FROM journal_entries WHERE invocation_id = $1 ORDER BY idx", inv)
    ]  # fmt: skip
    audit = [
        tuple(r) for r in await conn.fetch(
            "SELECT identity, operation, reason, request_id, result, state_after,"
            " new_invocation_id FROM audit_log WHERE invocation_id = $1 ORDER BY id", inv)
    ]  # fmt: skip
    notes = sorted((c, _normal(p, inv)) for c, p in heard if inv[:-1] in p or c == notify.READY)
    traced = [
        (s.name, {k: _normal(v, inv) for k, v in s.attributes.items()}, len(s.links),
         s.parent is not None)
        for s in spans.get_finished_spans()
        if s.attributes.get("restate.invocation.id") == inv
    ]  # fmt: skip
    return Written(normal, history, journal, audit, notes, traced)


class Listener:
    """Every notification on the server's channels, in the order they were sent; `drain`
    returns those sent before it (a marker sent after them arrives after them)."""

    CHANNELS = (notify.READY, notify.COMPLETED, notify.SIGNAL)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.heard: list[tuple[str, str]] = []
        self._markers: asyncio.Queue[str] = asyncio.Queue()

    async def start(self) -> None:
        for channel in self.CHANNELS:
            await self.conn.add_listener(channel, self._on)

    def _on(self, _conn, _pid, channel: str, payload: str) -> None:
        if payload.startswith("marker "):
            self._markers.put_nowait(payload)
        else:
            self.heard.append((channel, payload))

    async def drain(self, sender: asyncpg.Connection, name: str) -> list[tuple[str, str]]:
        for channel in self.CHANNELS:
            await sender.execute("SELECT pg_notify($1, $2)", channel, f"marker {name}")
        for _ in self.CHANNELS:
            await asyncio.wait_for(self._markers.get(), 10)
        heard, self.heard = self.heard, []
        return heard


@contextlib.asynccontextmanager
async def _both_ways(database: str) -> AsyncIterator[tuple[asyncpg.Pool, Listener]]:
    """The server's kind of pool, for both ways of writing, and a listener of the
    notifications they send."""
    pool = await store_db.create_pool(database, min_size=1, max_size=2)
    listener_conn = await asyncpg.connect(database)
    try:
        listener = Listener(listener_conn)
        await listener.start()
        yield pool, listener
    finally:
        await listener_conn.close()
        await pool.close()


async def _request(pool, write, operation: str, inv: str) -> object:
    """Run one request through `write` (first: the one statement; else: the general
    path's transaction) as the operator's batcher does."""
    loop = asyncio.get_running_loop()
    q = operator.OperatorRequest(operation, inv, "why", None, "alice")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request"):
        batched = Batched(q, otel_context.get_current(), loop.create_future())
        if write == "first":
            [result] = await store_db.statement(pool, lambda c: operator._write_first(c, [batched]))
        else:
            [result] = await store_db.transaction(pool, lambda c: operator._write(c, [batched]))
    return result


@pytest.mark.parametrize("operation", sorted(ACTS))
async def test_the_one_statement_writes_what_the_general_path_writes(
    database, db, spans, operation
) -> None:
    await _deployment(db)
    acted = set()
    async with _both_ways(database) as (pool, listener):
        for n, (name, case) in enumerate(CASES.items()):
            fast, slow = _id(f"{n}a0"), _id(f"{n}b0")
            for inv in (fast, slow):
                await _seed(db, inv, case)
            untouched = await _written(db, fast, [], spans)

            result = await _request(pool, "first", operation, fast)
            fast_written = await _written(db, fast, await listener.drain(db, fast), spans)
            if result is None:
                assert fast_written == untouched, f"{operation} of {name}: wrote, then declined"
                continue
            acted.add(name)
            await _request(pool, "slow", operation, slow)
            slow_written = await _written(db, slow, await listener.drain(db, slow), spans)
            assert fast_written == slow_written, f"{operation} of {name}"
            assert fast_written.history or operation == "PurgeInvocation"
    assert acted == ACTS[operation]


# A worker's completion of attempt 3 in session sess_a (store/complete_statement.py).
RUNNING = dict(state="running", attempt=3, session_id="sess_a", due_at=T0 + timedelta(seconds=30))
# fmt: off
COMPLETING = {
    "running": Case(RUNNING),
    "running, traced, linked from requests": Case(
        {**RUNNING, **TRACED, "pending_links": ["00-" + "3" * 32 + "-" + "4" * 16 + "-01"]}),
    "running, cancelled": Case({**RUNNING, "cancelled_at": T0, "cancel_pending": True}),
    "running, failed before": Case({**RUNNING, "last_failure_code": "E",
                                    "last_failure_message": "boom"}),
    "running, called": Case(RUNNING, caller=True),
    "running, holding its key": Case({**RUNNING, "exclusive": True, "object_key": "k"},
                                     holds_key=True),
    "running in another session": Case({**RUNNING, "session_id": "sess_b"}),
    "running a later attempt": Case({**RUNNING, "attempt": 4}),
    "suspended": Case(dict(state="suspended", attempt=3, **SLEEPING),
                      journal=((0, "run", True), (1, "sleep", False))),
    "completed": Case(dict(state="completed", attempt=3, outcome="succeeded", output="1",
                           completed_at=T0, expires_at=T0 + timedelta(days=1))),
}
COMPLETES = {"running", "running, traced, linked from requests", "running, cancelled",
             "running, failed before"}
RESULTS = {
    "output": ("42", None),
    "terminal failure": (None, attempts.Failure("TERMINAL", "no")),
    "its cancellation": (None, attempts.CANCELLED_FAILURE),
}
# fmt: on


async def _complete(pool, db, write: str, inv: str, result: tuple) -> object:
    """Complete attempt 3 of `inv` in sess_a through the one statement (first), with what
    a claim on this server read of its row, or through attempts_complete_many."""
    output, failure = result
    claimed = attempts.claim_known(
        await db.fetchrow("SELECT * FROM invocations WHERE id = $1", inv)
    )
    c = attempts.Completion(inv, 3, "sess_a", output, failure, "worker:w", claimed=claimed)
    now = datetime.now(UTC)
    if write == "first":
        [row] = await store_db.statement(
            pool, lambda conn: complete_statement.complete(conn, [c], now=now)
        )
        return row
    [row] = await store_db.transaction(
        pool, lambda conn: attempts.attempts_complete_many(conn, [c], now=now)
    )
    return row


@pytest.mark.parametrize("result", sorted(RESULTS))
async def test_the_one_statement_completes_as_the_general_path_does(database, db, spans, result):
    await _deployment(db)
    acted = set()
    async with _both_ways(database) as (pool, listener):
        for n, (name, case) in enumerate(COMPLETING.items()):
            fast, slow = _id(f"{n}c0"), _id(f"{n}d0")
            for inv in (fast, slow):
                await _seed(db, inv, case)
            untouched = await _written(db, fast, [], spans)

            row = await _complete(pool, db, "first", fast, RESULTS[result])
            fast_written = await _written(db, fast, await listener.drain(db, fast), spans)
            if row is None:
                assert fast_written == untouched, f"completing {name}: wrote, then declined"
                continue
            acted.add(name)
            # What waiters on this server are handed: the row as it now is.
            after = await db.fetchrow("SELECT * FROM invocations WHERE id = $1", fast)
            assert {k: row[k] for k in after.keys()} == dict(after)
            await _complete(pool, db, "slow", slow, RESULTS[result])
            slow_written = await _written(db, slow, await listener.drain(db, slow), spans)
            assert fast_written == slow_written, f"completing {name} with {result}"
    assert acted == COMPLETES
