"""The one place that changes an invocation's state.

`apply` takes rows the caller locked in this transaction (`lock` or a claim with SKIP
LOCKED), checks every step against the table in `domain/states.py`, writes the new state
and the step's column changes, appends one history row per step and emits one span per
step, all with one statement, which also notifies the listeners of every server when a
row becomes ready (dispatchers) or completed (attached clients); the notifications are
delivered at commit. `accept` does the same for invocations that do not exist yet.

Lock order: invocations are always locked in ID order, then object_locks rows, so two
transactions that touch overlapping sets wait for each other instead of deadlocking.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import trace

from ..domain.errors import InvalidTransition
from ..domain.states import NEW, Event, State, allowed_targets
from ._sql import Q

_tracer = trace.get_tracer("invoctl.server")

# Columns a transition may change, with the array type used to pass them in bulk.
_COLUMN_TYPES: dict[str, str] = {
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
    """One invocation's transition: from its locked row to `to`, writing `changes`."""

    row: Mapping[str, Any]
    to: State
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    detail: str | None = None


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


def _ids(span) -> tuple[str | None, str | None]:
    """Hex trace and span IDs for the history row; None when tracing is off."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _start_span(invocation_id: str, target: str, before: str, to: State, event: Event, actor: str):
    return _tracer.start_span(
        f"invocation {event}",
        attributes={
            "restate.invocation.id": invocation_id,
            "restate.invocation.target": target,
            "invoctl.state.from": before,
            "invoctl.state.to": str(to),
            "invoctl.event": str(event),
            "invoctl.actor": actor,
        },
    )


async def apply(
    conn: asyncpg.Connection,
    steps: Sequence[Step],
    event: Event,
    *,
    actor: str,
    now: datetime,
) -> list[Applied]:
    """Apply `event` to locked rows. All steps must change the same set of columns.

    Raises InvalidTransition (and writes nothing) if any step is not in the table.
    """
    if not steps:
        return []
    columns = sorted(steps[0].changes)
    for step in steps:
        check(State(step.row["state"]), event, step.to, step.row["id"])
        if sorted(step.changes) != columns:
            raise ValueError("all steps of one apply() must change the same columns")
    unknown = set(columns) - _COLUMN_TYPES.keys()
    if unknown:
        raise ValueError(f"not a transition column: {sorted(unknown)}")

    spans = [
        _start_span(s.row["id"], target_of(s.row), s.row["state"], s.to, event, actor)
        for s in steps
    ]
    try:
        arrays: list[list[Any]] = [
            [s.row["id"] for s in steps],
            [str(s.to) for s in steps],
            [s.row["state"] for s in steps],
            [s.detail for s in steps],
            [_ids(sp)[0] for sp in spans],
            [_ids(sp)[1] for sp in spans],
        ]
        arrays += [[s.changes[c] for s in steps] for c in columns]
        names = ["id", "to_state", "from_state", "detail", "trace_id", "span_id", *columns]
        types = ["text"] * 6 + [_COLUMN_TYPES[c] for c in columns]
        unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
        assignments = "".join(f", {c} = u.{c}" for c in columns)
        n = len(arrays)
        sql = f"""
            WITH u AS (
                UPDATE invocations AS i
                SET state = u.to_state, modified_at = ${n + 1}{assignments}
                FROM unnest({unnest}) AS u({", ".join(names)})
                WHERE i.id = u.id
                RETURNING i.*, u.from_state, u.detail AS t_detail,
                          u.trace_id AS t_trace_id, u.span_id AS t_span_id
            ), h AS (
                INSERT INTO invocation_transitions
                    (invocation_id, from_state, to_state, event, actor, at, attempt,
                     trace_id, span_id, detail)
                SELECT id, from_state, state, ${n + 2}, ${n + 3}, ${n + 1}, attempt,
                       t_trace_id, t_span_id, t_detail
                FROM u
            ), n AS (
                -- Wake attached clients (completed) and dispatchers (ready) at commit.
                SELECT pg_notify(
                    CASE WHEN state = 'completed' THEN 'invoctl_completed' ELSE 'invoctl_ready' END,
                    CASE WHEN state = 'completed' THEN id ELSE '' END)
                FROM u WHERE state IN ('ready', 'completed')
            )
            SELECT u.* FROM u, (SELECT count(*) FROM n) AS notified
        """
        rows = await conn.fetch(sql, *arrays, now, str(event), actor)
    except BaseException as exc:
        for sp in spans:
            sp.record_exception(exc)
            sp.set_status(trace.StatusCode.ERROR)
            sp.end()
        raise
    by_id = {r["id"]: r for r in rows}
    out = []
    for step, sp in zip(steps, spans, strict=True):
        sp.end()
        out.append(Applied(by_id[step.row["id"]], sp.get_span_context()))
    return out


async def accept(
    conn: asyncpg.Connection,
    new_rows: Sequence[Mapping[str, Any]],
    *,
    actor: str,
    now: datetime,
) -> list[Applied]:
    """Insert new invocations (the ACCEPTED transition from nothing), with history and spans.

    Each mapping holds the columns of `_INSERT_TYPES`; `state` is the state it starts in.
    """
    if not new_rows:
        return []
    for row in new_rows:
        check(NEW, Event.ACCEPTED, State(row["state"]), row["id"])
    spans = [
        _start_span(r["id"], target_of(r), "", State(r["state"]), Event.ACCEPTED, actor)
        for r in new_rows
    ]
    try:
        cols = list(_INSERT_TYPES)
        arrays: list[list[Any]] = []
        for c in cols:
            values = [r.get(c) for r in new_rows]
            if c == "headers":
                values = [json.dumps(v or {}) for v in values]
            arrays.append(values)
        arrays.append([_ids(sp)[0] for sp in spans])
        arrays.append([_ids(sp)[1] for sp in spans])
        types = [("text" if t == "jsonb" else t) for t in _INSERT_TYPES.values()]
        types += ["text", "text"]
        unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
        n = len(arrays)
        col_list = ", ".join(cols)
        select_list = ", ".join("u.headers::jsonb" if c == "headers" else f"u.{c}" for c in cols)
        sql = f"""
            WITH u AS (
                SELECT * FROM unnest({unnest}) AS u({col_list}, trace_id, span_id)
            ), i AS (
                INSERT INTO invocations ({col_list}, created_at, modified_at)
                SELECT {select_list}, ${n + 1}, ${n + 1} FROM u
                RETURNING *
            ), h AS (
                INSERT INTO invocation_transitions
                    (invocation_id, from_state, to_state, event, actor, at, attempt,
                     trace_id, span_id)
                SELECT u.id, NULL, u.state, ${n + 2}, ${n + 3}, ${n + 1}, 0,
                       u.trace_id, u.span_id
                FROM u
            ), n AS (
                -- Wake attached clients (completed) and dispatchers (ready) at commit.
                SELECT pg_notify(
                    CASE WHEN state = 'completed' THEN 'invoctl_completed' ELSE 'invoctl_ready' END,
                    CASE WHEN state = 'completed' THEN id ELSE '' END)
                FROM i WHERE state IN ('ready', 'completed')
            )
            SELECT i.* FROM i, (SELECT count(*) FROM n) AS notified
        """
        rows = await conn.fetch(sql, *arrays, now, str(Event.ACCEPTED), actor)
    except BaseException as exc:
        for sp in spans:
            sp.record_exception(exc)
            sp.set_status(trace.StatusCode.ERROR)
            sp.end()
        raise
    by_id = {r["id"]: r for r in rows}
    out = []
    for row, sp in zip(new_rows, spans, strict=True):
        sp.end()
        out.append(Applied(by_id[row["id"]], sp.get_span_context()))
    return out
