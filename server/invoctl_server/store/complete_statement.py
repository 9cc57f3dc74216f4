"""The common completion of an attempt in one round trip.

A worker's report that an invocation's handler finished (AttemptComplete) is, through
attempts.attempts_complete_many, four round trips: BEGIN, the lock of the invocation with
its caller and the invocation pending on its key, the transition, COMMIT. When nobody
waits for its result (no caller) and it holds no object key to hand on, it is one
statement here, run without BEGIN and COMMIT: it locks the invocation by primary key,
checks the attempt's fence and the state table, writes the result, the end of retention
and the history row, and notifies attached clients.

Its span is in the invocation's own trace, whose parent is in the row: the statement
needs the span's IDs for the history row before it reads the row, so it runs only for
attempts this server claimed, whose claim read the trace (attempts.claim_known); the
statement checks the row still says so. Every other completion (a caller, a key, an
attempt claimed elsewhere, a fence that does not hold) is left unchanged and returned as
None: attempts_complete_many completes it or gives the refusal.
tests/integration/test_single_statement.py runs completions both ways and compares what
they wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ..domain.states import Event, Outcome, State
from . import transition
from .attempts import CANCELLED, Completion
from .single_statement import ALONE, RETENTION_MS, allowed, lit, locked_update

# The time of the completion (the statement's last parameter).
NOW = "$11::timestamptz"


@functools.cache
def statement() -> str:
    """The statement, as Postgres logs it: built once, the same string object each time
    (asyncpg's statement cache then does not hash it again)."""
    # attempts._outcome: a handler that ends with the cancellation it was given completes
    # cancelled; any other terminal failure is failed.
    outcome = f"""CASE WHEN r.failure_code IS NULL THEN {lit(Outcome.SUCCEEDED)}
        WHEN r.failure_code = {lit(CANCELLED)} AND l.cancelled_at IS NOT NULL
            THEN {lit(Outcome.CANCELLED)}
        ELSE {lit(Outcome.FAILED)} END"""
    completed = lit(State.COMPLETED)
    # attempts.finish_many's changes for a completion (no last failure of its own).
    update = locked_update(
        """unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[])
                AS r(id, attempt, session_id, output, failure_code, failure_message,
                     traceparent, actor, trace_id, span_id)""",
        f"""state = {completed}, modified_at = {NOW}, outcome = {outcome},
                output = r.output, failure_code = r.failure_code,
                failure_message = r.failure_message, completed_at = {NOW},
                expires_at = {NOW} + {RETENTION_MS} * interval '1 millisecond',
                due_at = NULL, session_id = NULL, waiting_on = NULL,
                cancelled_at = coalesce(l.cancelled_at, CASE
                    WHEN {outcome} = {lit(Outcome.CANCELLED)} THEN {NOW} END),
                cancel_pending = false, pending_links = NULL""",
        f"""l.state = {lit(State.RUNNING)} AND l.attempt = r.attempt
              AND l.session_id = r.session_id AND {ALONE}
              AND l.traceparent IS NOT DISTINCT FROM r.traceparent
              AND {allowed(Event.COMPLETED, completed)}""",
        """l.state AS from_state, l.pending_links AS from_pending_links,
                      r.actor AS t_actor, r.trace_id AS t_trace_id, r.span_id AS t_span_id""",
    )
    return f"""
        WITH u AS (
            {update}
        ), {transition.history_sql(lit(Event.COMPLETED), NOW, "failure_message")},
        {transition.notify_sql("u")}
    """.strip()  # constants come from the domain modules; values are bound


def _linked(span, row: asyncpg.Record) -> None:
    transition.own_trace_span_linked(span, row["from_pending_links"])


def acts_on(c: Completion) -> bool:
    """Whether the statement may complete `c` (the rest is attempts_complete_many's): its
    span goes in the invocation's own trace, not a request's (`parent`)."""
    known = c.claimed
    return (
        known is not None
        and c.parent is None
        and known["caller_id"] is None
        and not known["exclusive"]
    )


async def complete(
    conn: asyncpg.Connection, completions: Sequence[Completion], *, now: datetime
) -> list[asyncpg.Record | None]:
    """Complete each attempt in one statement where that is all it takes (see the module
    docstring): per completion the completed row, or None where it changed nothing."""
    picked: dict[int, Completion] = {}  # by position
    seen: set[str] = set()
    for i, c in enumerate(completions):
        # One reported twice in a batch: the second is refused by attempts_complete_many.
        if c.invocation_id not in seen and acts_on(c):
            picked[i] = c
        seen.add(c.invocation_id)
    if not picked:
        return [None] * len(completions)
    todo = sorted(picked.values(), key=lambda c: c.invocation_id)  # lock order
    spans = [
        transition.own_trace_span(c.claimed, State.RUNNING, State.COMPLETED, Event.COMPLETED,
                                  c.actor)
        for c in todo
    ]  # fmt: skip
    ids = [transition.span_ids(sp) for sp in spans]
    try:
        rows = await conn.fetch(
            statement(),
            [c.invocation_id for c in todo],
            [c.attempt for c in todo],
            [c.session_id for c in todo],
            [c.output for c in todo],
            [c.failure.code if c.failure else None for c in todo],
            [c.failure.message if c.failure else None for c in todo],
            [c.claimed["traceparent"] for c in todo],
            [c.actor for c in todo],
            [t for t, _, _ in ids],
            [s for _, s, _ in ids],
            now,
        )
    except BaseException as exc:
        transition.spans_failed(spans, exc)
        raise
    by_id = transition.spans_of_statement(
        spans, [c.invocation_id for c in todo], rows, _linked, Event.COMPLETED
    )
    return [by_id.get(c.invocation_id) if i in picked else None for i, c in enumerate(completions)]
