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
from .single_statement import ALONE, RETENTION_MS, allowed_only, lit

# The time of the completion (the statement's last parameter).
NOW = "$11::timestamptz"


@functools.cache
def statement() -> str:
    """The statement, as Postgres logs it: built once, the same string object each time
    (asyncpg's statement cache then does not hash it again)."""
    # attempts._outcome: a handler that ends with the cancellation it was given completes
    # cancelled; any other terminal failure is failed.
    outcome = f"""CASE WHEN l.r_failure_code IS NULL THEN {lit(Outcome.SUCCEEDED)}
        WHEN l.r_failure_code = {lit(CANCELLED)} AND l.cancelled_at IS NOT NULL
            THEN {lit(Outcome.CANCELLED)}
        ELSE {lit(Outcome.FAILED)} END"""
    # attempts.finish_many's changes for a completion (no last failure of its own).
    return f"""
        WITH locked AS (
            SELECT l.*, r.attempt AS r_attempt, r.session_id AS r_session_id,
                   r.output AS r_output, r.failure_code AS r_failure_code,
                   r.failure_message AS r_failure_message, r.traceparent AS r_traceparent,
                   r.actor AS t_actor, r.trace_id AS t_trace_id, r.span_id AS t_span_id
            FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[],
                        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
                AS r(id, attempt, session_id, output, failure_code, failure_message,
                     traceparent, actor, trace_id, span_id)
            CROSS JOIN LATERAL (SELECT * FROM invocations i WHERE i.id = r.id FOR UPDATE) l
        ), planned AS (
            SELECT l.*, {lit(State.COMPLETED)} AS to_state, {outcome} AS new_outcome,
                   {RETENTION_MS} AS retention_ms
            FROM locked l
            WHERE l.state = {lit(State.RUNNING)} AND l.attempt = l.r_attempt
              AND l.session_id = l.r_session_id AND {ALONE}
              AND l.traceparent IS NOT DISTINCT FROM l.r_traceparent
        ), {allowed_only(Event.COMPLETED)}, u AS (
            UPDATE invocations i
            SET state = ok.to_state, modified_at = {NOW}, outcome = ok.new_outcome,
                output = ok.r_output, failure_code = ok.r_failure_code,
                failure_message = ok.r_failure_message, completed_at = {NOW},
                expires_at = {NOW} + ok.retention_ms * interval '1 millisecond',
                due_at = NULL, session_id = NULL, waiting_on = NULL,
                cancelled_at = coalesce(ok.cancelled_at, CASE
                    WHEN ok.new_outcome = {lit(Outcome.CANCELLED)} THEN {NOW} END),
                cancel_pending = false, pending_links = NULL
            -- The ANY gives the row lookup by primary key whatever the statistics
            -- (single_statement.py).
            FROM ok WHERE i.id = ANY(ARRAY(SELECT id FROM ok)) AND i.id = ok.id
            RETURNING i.*, ok.state AS from_state, ok.pending_links AS from_pending_links,
                      ok.t_actor, ok.t_trace_id, ok.t_span_id
        ), h AS (
            INSERT INTO invocation_transitions
                (invocation_id, from_state, to_state, event, actor, at, attempt, trace_id,
                 span_id, detail)
            SELECT id, from_state, state, {lit(Event.COMPLETED)}, t_actor, {NOW}, attempt,
                   t_trace_id, t_span_id, failure_message
            FROM u
        ),
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
