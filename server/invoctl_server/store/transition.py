"""The one place that changes an invocation's state.

`apply` takes rows the caller locked in this transaction (`lock` or a claim with SKIP
LOCKED), checks every step against the table in `domain/states.py`, writes the new state
and the step's column changes, appends one history row per step and emits one span per
step, all with one statement, which also notifies the listeners of every server when a
row becomes ready (dispatchers) or completed (attached clients); the notifications are
delivered at commit. `accept` does the same for invocations that do not exist yet.

Lock order: invocations are always locked in ID order, then object_locks rows, so two
transactions that touch overlapping sets wait for each other instead of deadlocking.

Where a span goes (DESIGN.md section 6): a step a request caused (Step.parent: an operator
RPC, a bulk page) is in that request's trace, linked to the invocation's own trace; every
other step is a child of the invocation's accepted span (its row keeps the traceparent),
never of whatever context the caller runs in (a worker's long-lived session stream). The
first step in its own trace after a request's links to the request's spans, so each trace
leads to the other.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace

from .. import page_spans
from ..domain.errors import InvalidTransition
from ..domain.states import NEW, Event, State, allowed_targets
from ..metrics import TransitionCount
from . import notify
from ._sql import Q

_tracer = trace.get_tracer("invoctl.server")


# Spans of transitions made inside db.transaction() end when it commits: a transition
# that is rolled back (a deadlock retry, a failed batch) leaves no span behind. Their
# counts (metrics.py, one TransitionCount per apply() batch) are ended just before the
# COMMIT goes out, so that whoever sees the commit (a bulk operation's progress, a
# scrape after it) sees them counted; only a connection lost during the COMMIT, whose
# outcome nobody knows, can count transitions that did not happen. What else the server
# may only do once the database holds it waits for the commit here too (after_commit).
@dataclasses.dataclass
class Committing:
    spans: list = dataclasses.field(default_factory=list)
    counts: list[TransitionCount] = dataclasses.field(default_factory=list)
    # (committed, rolled_back) callbacks of after_commit.
    hooks: list[tuple[Callable[[], None], Callable[[], None]]] = dataclasses.field(
        default_factory=list
    )

    def count(self) -> None:
        """Count the transitions collected so far: call it right before COMMIT."""
        for c in self.counts:
            c.end()
        self.counts.clear()

    def end(self) -> None:
        """The transaction committed: end the spans (and count what is not yet), then
        run the committed callbacks."""
        self.count()
        for sp in self.spans:
            sp.end()
        for committed, _rolled_back in self.hooks:
            committed()

    def abandon(self) -> None:
        """The transaction rolled back: its spans are dropped, never ended, and the
        rolled-back callbacks run."""
        for _committed, rolled_back in self.hooks:
            rolled_back()


_after_commit: contextvars.ContextVar[Committing | None] = contextvars.ContextVar(
    "invoctl_spans_after_commit", default=None
)


@contextlib.contextmanager
def spans_after_commit() -> Iterator[Committing]:
    """Collect the spans of transitions made in this block, their counts and the
    after_commit callbacks; the caller counts them before its COMMIT and ends them once
    it committed, and abandons them if it did not."""
    committing = Committing()
    token = _after_commit.set(committing)
    try:
        yield committing
    finally:
        _after_commit.reset(token)


def after_commit(committed: Callable[[], None], rolled_back: Callable[[], None]) -> None:
    """From work run by db.transaction: call `committed()` once its transaction committed,
    or `rolled_back()` if it did not (an error, a deadlock retry: then the work runs again
    and registers anew). Neither may raise. For what the rest of the server may only act
    on once the database holds it (an attempt claimed in the transaction goes to its worker
    after the commit, never before). Raises LookupError outside a transaction."""
    pending = _after_commit.get()
    if pending is None:
        raise LookupError("after_commit outside db.transaction")
    pending.hooks.append((committed, rolled_back))


def _done(spans: list, event: str) -> None:
    count = TransitionCount(event, len(spans))
    pending = _after_commit.get()
    if pending is None:
        for sp in spans:
            sp.end()
        count.end()
    else:
        pending.spans.extend(spans)
        pending.counts.append(count)


def _failed(spans: list, exc: BaseException) -> None:
    if _after_commit.get() is not None:
        return  # the transaction rolls back: these transitions never happened
    for sp in spans:
        sp.record_exception(exc)
        sp.set_status(trace.StatusCode.ERROR)
        sp.end()


# Columns a transition may change, with the array type used to pass them in bulk.
COLUMN_TYPES: dict[str, str] = {
    "outcome": "text",
    "deployment_id": "text",
    "attempt": "int4",
    "session_id": "text",
    "due_at": "timestamptz",
    "waiting_on": "int4",
    "last_failure_code": "text",
    "last_failure_message": "text",
    "output": "text",
    "failure_code": "text",
    "failure_message": "text",
    "completed_at": "timestamptz",
    "expires_at": "timestamptz",
    "cancelled_at": "timestamptz",
    "cancel_pending": "bool",
}

# Columns of a new invocation, in insert order, with their array types.
_INSERT_TYPES: dict[str, str] = {
    "id": "text",
    "service": "text",
    "handler": "text",
    "object_key": "text",
    "exclusive": "bool",
    "state": "text",
    "deployment_id": "text",
    "input": "text",
    "headers": "jsonb",
    "idempotency_key": "text",
    "caller_id": "text",
    "caller_entry": "int4",
    "restarted_from": "text",
    "due_at": "timestamptz",
}


@dataclasses.dataclass(frozen=True)
class Step:
    """One invocation's transition: from its locked row to `to`, writing `changes`.

    `actor` overrides the actor of the apply() call (a batch mixes workers), and `parent`
    is the trace context of the request that caused it (an operator RPC, a bulk page): its
    span is in that trace, linked to the invocation's. None: no request caused it (a
    dispatch, a timer, a worker's report), and its span is in the invocation's own trace.
    """

    row: Mapping[str, Any]
    to: State
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    detail: str | None = None
    actor: str | None = None
    parent: otel_context.Context | None = None


@dataclasses.dataclass(frozen=True)
class Applied:
    """A row after its transition, and the span context the transition was traced in."""

    row: asyncpg.Record
    span_context: trace.SpanContext


async def lock(conn: asyncpg.Connection, ids: Sequence[str]) -> list[asyncpg.Record]:
    """Lock invocations FOR UPDATE in ID order and return them (missing IDs are absent)."""
    return await conn.fetch(Q["invocations_lock"], list(ids))


def target_of(row: Mapping[str, Any]) -> str:
    """Restate-style target: `Service/handler` or `Object/key/handler`."""
    if row["object_key"] is None:
        return f"{row['service']}/{row['handler']}"
    return f"{row['service']}/{row['object_key']}/{row['handler']}"


def check(state: State | None, event: Event, to: State, invocation_id: str) -> None:
    """Raise InvalidTransition unless the table allows `event` to move `state` to `to`."""
    if to not in allowed_targets(state, event):
        raise InvalidTransition(
            f"invocation {invocation_id} is {state or 'new'}: {event} cannot make it {to}",
            invocation_id=invocation_id,
            state=str(state) if state else "",
            event=str(event),
        )


def _ids(span) -> tuple[str | None, str | None, str | None]:
    """Hex trace and span IDs for the history row, and the span's W3C traceparent; None
    when tracing is off."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None, None
    trace_id, span_id = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{ctx.trace_flags:02x}"


# A parent without a span: the span starts a trace of its own.
_ROOT = otel_context.Context()
# Links a parent context asks the accepted span to carry (see started_by).
_LINKS = otel_context.create_key("invoctl.transition.links")


class _Trace:
    """A stored traceparent as a link and, built when first asked for, as a parent: a bulk
    page's steps only link to each invocation's trace, its own steps only use the parent."""

    __slots__ = ("_parent", "link")

    def __init__(self, span_context: trace.SpanContext) -> None:
        self.link = trace.Link(span_context)  # immutable: the spans that link share it
        self._parent: otel_context.Context | None = None

    @property
    def parent(self) -> otel_context.Context:
        if self._parent is None:
            span = trace.NonRecordingSpan(self.link.context)
            self._parent = trace.set_span_in_context(span, _ROOT)
        return self._parent


@functools.lru_cache(maxsize=8192)
def _remote(traceparent: str) -> _Trace | None:
    """A traceparent this module stored (`00-<trace>-<span>-<flags>`, see _ids), or None.
    Cached: an invocation's own steps parse its trace once, not once each."""
    if len(traceparent) != 55:
        return None
    try:
        ctx = trace.SpanContext(
            int(traceparent[3:35], 16), int(traceparent[36:52], 16), is_remote=True,
            trace_flags=trace.TraceFlags(int(traceparent[53:55], 16)),
        )  # fmt: skip
    except ValueError:
        return None
    return _Trace(ctx) if ctx.is_valid else None


def _own_trace(row: Mapping[str, Any]) -> _Trace | None:
    """The invocation's accepted span, if it was traced."""
    traceparent = row["traceparent"]
    return _remote(traceparent) if traceparent else None


def _own_parent(row: Mapping[str, Any]) -> otel_context.Context:
    """The parent of a step in the invocation's own trace: its accepted span, or none (a
    trace of its own) if it was not traced."""
    own = _own_trace(row)
    return own.parent if own else _ROOT


def _pending(pending_links: Sequence[str] | None) -> list[trace.Link] | None:
    """The links of a step in the invocation's own trace to the request spans before it
    (the row's pending_links)."""
    if not pending_links:
        return None
    return [t.link for t in map(_remote, pending_links) if t is not None]


def _placed(
    row: Mapping[str, Any], parent: otel_context.Context | None
) -> tuple[otel_context.Context, Sequence[trace.Link] | None, bool]:
    """The parent and links of a step's span, and whether it is in the invocation's own
    trace (see the module docstring)."""
    if parent is not None:
        own = _own_trace(row)
        return parent, [own.link] if own else None, False
    return _own_parent(row), _pending(row["pending_links"]), True


def started_by(caller: Mapping[str, Any], *, call: bool) -> otel_context.Context:
    """The trace context in which an invocation that `caller`'s attempt creates is
    accepted. A call's callee joins the caller's trace, as a child of its accepted span:
    a caller and what it calls read as one trace. A send's invocation outlives its sender
    (and may be delayed for days, or send on in turn): it starts a trace of its own, whose
    accepted span links to the sender's."""
    if call:
        return _own_parent(caller)
    own = _own_trace(caller)
    return otel_context.set_value(_LINKS, (own.link,), _ROOT) if own else _ROOT


def _span_starter():
    """The tracer's start_span, or in a bulk page's transaction page_spans' (the same
    spans, for a fraction of the CPU)."""
    page = page_spans.current()
    if page is not None and _after_commit.get() is not None:
        return page.start_span
    return _tracer.start_span


def _start_span(
    start,
    row: Mapping[str, Any],
    before: str,
    to: State,
    event: Event,
    actor: str,
    parent: otel_context.Context | None,
    links: Sequence[trace.Link] | None = None,
):
    return start(
        f"invocation {event}",
        context=parent,
        links=links,
        attributes={
            "restate.invocation.id": row["id"],
            "restate.invocation.target": target_of(row),
            "invoctl.state.from": before,
            "invoctl.state.to": str(to),
            "invoctl.event": str(event),
            "invoctl.actor": actor,
        },
    )


# Wakes attached clients (completed) and dispatchers (ready) of every server at commit.
_CHANNELS = {"completed": notify.COMPLETED, "ready": notify.READY}
# Dispatchers need one wake-up per statement, attached clients one per invocation. The
# count is a condition, not a join: an uncorrelated subquery runs once, where a join with
# it may be planned to read it again for every row.
_NOTIFY = """
    n AS (
        SELECT pg_notify(channel, payload) FROM (
            SELECT DISTINCT
                CASE WHEN state = 'completed' THEN '{completed}' ELSE '{ready}' END,
                CASE WHEN state = 'completed' THEN id ELSE '' END
            FROM {src} WHERE state IN ('ready', 'completed')
        ) AS wake(channel, payload)
    )
    SELECT {src}.* FROM {src} WHERE (SELECT count(*) FROM n) >= 0
"""


def history_sql(event: str, at: str, detail: str) -> str:
    """The CTE `h` of a statement whose CTE `u` returns changed invocation rows with
    `from_state`, `t_actor`, `t_trace_id` and `t_span_id`: one history row each. `event`,
    `at` and `detail` are SQL (a parameter, a constant, a column of `u`)."""
    return f"""h AS (
                INSERT INTO invocation_transitions
                    (invocation_id, from_state, to_state, event, actor, at, attempt,
                     trace_id, span_id, detail)
                SELECT id, from_state, state, {event}, t_actor, {at}, attempt,
                       t_trace_id, t_span_id, {detail}
                FROM u
            )"""


def notify_sql(src: str, *, also: Sequence[str] = ()) -> str:
    """The tail of a statement whose CTE `src` returns changed invocation rows: it
    notifies as apply's own statements do and selects `src`'s rows. `also`: CTEs of more
    notifications (a CTE that modifies nothing runs only if the query reads it)."""
    tail = _NOTIFY.format(src=src, **_CHANNELS)
    return tail + "".join(f" AND (SELECT count(*) FROM {cte}) >= 0" for cte in also)


def request_span(invocation_id: str, event: Event, actor: str, parent: otel_context.Context | None):
    """The span of a step a request causes on an invocation it has not read (one statement
    reads and changes it, single_statement.py): what depends on the row is added once the
    statement returned it (request_span_placed). It ends with the statement
    (spans_of_statement), or never if the statement did not change the invocation."""
    return _span_starter()(
        f"invocation {event}",
        context=parent,
        attributes={
            "restate.invocation.id": invocation_id,
            "invoctl.event": str(event),
            "invoctl.actor": actor,
        },
    )


def request_span_placed(span, row: Mapping[str, Any]) -> None:
    """What request_span lacked, from the row after the step (with its `from_state`): the
    target, both states and the link to the invocation's own trace, as apply's spans have."""
    if not span.is_recording():
        return
    span.set_attributes(
        {
            "restate.invocation.target": target_of(row),
            "invoctl.state.from": row["from_state"],
            "invoctl.state.to": row["state"],
        }
    )
    own = _own_trace(row)
    if own is not None:
        span.add_link(own.link.context)


def own_trace_span(known: Mapping[str, Any], before: State, to: State, event: Event, actor: str):
    """The span of a step in the invocation's own trace (no request caused it), started
    before the statement that reads and changes the row (complete_statement.py): `known`
    holds what of the row it needs (id, service, handler, object_key, traceparent, none of
    which ever changes), as the attempt's claim read it. The links to the request spans
    that came since (pending_links) are added once the statement returned them
    (own_trace_span_linked). It ends with the statement (spans_of_statement), or never
    if the statement did not change the invocation."""
    parent = _own_parent(known)
    return _start_span(_tracer.start_span, known, str(before), to, event, actor, parent)


def own_trace_span_linked(span, pending_links: Sequence[str] | None) -> None:
    """Link an own_trace_span to the request spans of the row's pending_links, as apply's
    spans in the invocation's own trace are."""
    if span.is_recording():
        for link in _pending(pending_links) or ():
            span.add_link(link.context)


span_ids = _ids


def spans_of_statement(
    spans: Sequence[Any],
    invocation_ids: Sequence[str],
    rows: Sequence[asyncpg.Record],
    placed: Callable[[Any, asyncpg.Record], None],
    event: str,
) -> dict[str, asyncpg.Record]:
    """After one statement made the steps whose spans these are (`spans[i]` that of
    `invocation_ids[i]`, started before it): end the span of each invocation it returned
    a row for, once `placed(span, row)` added what only the row tells, at its transaction's
    commit if any. The others' spans are never ended: nothing happened to them. Returns
    the rows by invocation ID."""
    by_id = {r["id"]: r for r in rows}
    done = []
    for invocation_id, span in zip(invocation_ids, spans, strict=True):
        row = by_id.get(invocation_id)
        if row is not None:
            placed(span, row)
            done.append(span)
    _done(done, event)
    return by_id


def spans_failed(spans: list, exc: BaseException) -> None:
    """The statement that was to make these spans' steps failed."""
    _failed(spans, exc)


def _bind(arrays: list[tuple[str, str, list[Any]]]) -> tuple[str, str, list[list[Any]]]:
    """`unnest($1::t1[], ...)` and its column names for (name, type, values) arrays."""
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, (_n, t, _v) in enumerate(arrays))
    names = ", ".join(n for n, _t, _v in arrays)
    return unnest, names, [v for _n, _t, v in arrays]


async def apply(
    conn: asyncpg.Connection,
    steps: Sequence[Step],
    event: Event,
    *,
    actor: str,
    now: datetime,
) -> list[Applied]:
    """Apply `event` to locked rows in one statement. All steps must change the same
    columns.

    Raises InvalidTransition (and writes nothing) if any step is not in the table.
    """
    if not steps:
        return []
    columns = sorted(steps[0].changes)
    for step in steps:
        check(State(step.row["state"]), event, step.to, step.row["id"])
        if sorted(step.changes) != columns:
            raise ValueError("all steps of one apply() must change the same columns")
    unknown = set(columns) - COLUMN_TYPES.keys()
    if unknown:
        raise ValueError(f"not a transition column: {sorted(unknown)}")

    actors = [s.actor or actor for s in steps]
    spans, own, start = [], [], _span_starter()
    for s, a in zip(steps, actors, strict=True):
        parent, links, in_own_trace = _placed(s.row, s.parent)
        spans.append(_start_span(start, s.row, s.row["state"], s.to, event, a, parent, links))
        own.append(in_own_trace)
    try:
        ids = [_ids(sp) for sp in spans]
        # A request's step is linked from the next step in the invocation's own trace.
        linked = [None if o else tp for o, (_, _, tp) in zip(own, ids, strict=True)]
        unnest, names, values = _bind(
            [
                ("id", "text", [s.row["id"] for s in steps]),
                ("to_state", "text", [str(s.to) for s in steps]),
                ("from_state", "text", [s.row["state"] for s in steps]),
                ("detail", "text", [s.detail for s in steps]),
                ("actor", "text", actors),
                ("trace_id", "text", [t for t, _, _ in ids]),
                ("span_id", "text", [sp for _, sp, _ in ids]),
                ("own_trace", "bool", own),
                ("link", "text", linked),
                *((c, COLUMN_TYPES[c], [s.changes[c] for s in steps]) for c in columns),
            ]
        )
        assignments = "".join(f", {c} = u.{c}" for c in columns)
        n = len(values)
        sql = f"""
            WITH u AS (
                UPDATE invocations AS i
                SET state = u.to_state, modified_at = ${n + 1}{assignments},
                    pending_links = CASE WHEN u.own_trace THEN NULL
                        WHEN u.link IS NULL THEN i.pending_links
                        ELSE array_append(i.pending_links, u.link) END
                FROM unnest({unnest}) AS u({names})
                WHERE i.id = u.id
                RETURNING i.*, u.from_state, u.detail AS t_detail, u.actor AS t_actor,
                          u.trace_id AS t_trace_id, u.span_id AS t_span_id
            ), {history_sql(f"${n + 2}", f"${n + 1}", "t_detail")},
            {_NOTIFY.format(src="u", **_CHANNELS)}
        """  # identifiers come from COLUMN_TYPES, values are bound
        rows = await conn.fetch(sql, *values, now, str(event))
    except BaseException as exc:
        _failed(spans, exc)
        raise
    _done(spans, event)
    by_id = {r["id"]: r for r in rows}
    return [
        Applied(by_id[step.row["id"]], sp.get_span_context())
        for step, sp in zip(steps, spans, strict=True)
    ]


def trace_purge(
    row: Mapping[str, Any], *, actor: str, parent: otel_context.Context | None = None
) -> None:
    """A completed invocation was deleted (retention, or an operator's purge): not a state
    change, but traced like one so that its trace ends with it. `row` needs the columns
    of its trace (traceparent, pending_links) besides those of its target."""
    context, links, _ = _placed(row, parent)
    span = _span_starter()(
        "invocation purged",
        context=context,
        links=links,
        attributes={
            "restate.invocation.id": row["id"],
            "restate.invocation.target": target_of(row),
            "invoctl.state.from": str(State.COMPLETED),
            "invoctl.event": "purged",
            "invoctl.actor": actor,
        },
    )
    _done([span], "purged")


async def accept(
    conn: asyncpg.Connection,
    new_rows: Sequence[Mapping[str, Any]],
    *,
    actor: str,
    now: datetime,
    parents: Sequence[otel_context.Context | None] | None = None,
    notify_ready: bool = True,
) -> list[Applied]:
    """Insert new invocations (the ACCEPTED transition from nothing) in one statement,
    with history and spans. With `notify_ready` false the ready ones wake no dispatcher:
    the caller claims them in its transaction, or notifies (invocations.ready_notify).

    Each mapping holds the columns of `_INSERT_TYPES`; `state` is the state it starts in.
    `parents`, if given, holds the trace context each is accepted in (None: the current
    one): the request that created it, or `started_by` its caller. The accepted span
    starts the invocation's own trace (its row keeps the traceparent).
    """
    if not new_rows:
        return []
    for row in new_rows:
        check(NEW, Event.ACCEPTED, State(row["state"]), row["id"])
    parents = parents or [None] * len(new_rows)
    start = _span_starter()
    spans = [
        _start_span(start, r, "", State(r["state"]), Event.ACCEPTED, actor, p, _links_in(p))
        for r, p in zip(new_rows, parents, strict=True)
    ]
    try:
        ids = [_ids(sp) for sp in spans]
        columns = [
            (c, "text" if t == "jsonb" else t, [_insert_value(r, c) for r in new_rows])
            for c, t in _INSERT_TYPES.items()
        ]
        unnest, names, values = _bind(
            [
                *columns,
                ("trace_id", "text", [t for t, _, _ in ids]),
                ("span_id", "text", [sp for _, sp, _ in ids]),
                ("traceparent", "text", [tp for _, _, tp in ids]),
            ]
        )
        n = len(values)
        col_list = ", ".join(_INSERT_TYPES)
        select_list = ", ".join(
            "u.headers::jsonb" if c == "headers" else f"u.{c}" for c in _INSERT_TYPES
        )
        tail = f", {_NOTIFY.format(src='i', **_CHANNELS)}" if notify_ready else " SELECT * FROM i"
        sql = f"""
            WITH u AS (
                SELECT * FROM unnest({unnest}) AS u({names})
            ), i AS (
                INSERT INTO invocations ({col_list}, traceparent, created_at, modified_at)
                SELECT {select_list}, u.traceparent, ${n + 1}, ${n + 1} FROM u
                RETURNING *
            ), h AS (
                INSERT INTO invocation_transitions
                    (invocation_id, from_state, to_state, event, actor, at, attempt,
                     trace_id, span_id)
                SELECT u.id, NULL, u.state, ${n + 2}, ${n + 3}, ${n + 1}, 0,
                       u.trace_id, u.span_id
                FROM u
            ){tail}
        """  # identifiers come from _INSERT_TYPES, values are bound
        rows = await conn.fetch(sql, *values, now, str(Event.ACCEPTED), actor)
    except BaseException as exc:
        _failed(spans, exc)
        raise
    _done(spans, Event.ACCEPTED)
    by_id = {r["id"]: r for r in rows}
    return [
        Applied(by_id[row["id"]], sp.get_span_context())
        for row, sp in zip(new_rows, spans, strict=True)
    ]


def _links_in(parent: otel_context.Context | None) -> Sequence[trace.Link] | None:
    """What started_by asks the accepted span to link to (None: the current context)."""
    return otel_context.get_value(_LINKS, parent)  # type: ignore[return-value]


def _insert_value(row: Mapping[str, Any], column: str) -> Any:
    value = row.get(column)
    return json.dumps(value or {}) if column == "headers" else value
