"""The common case of an operator request in one round trip (issue 15, point 2).

A kill, cancel, pause, resume (on the deployment it has) or purge of an invocation that
needs nothing but itself (no call tree in flight below it, no caller waiting for it, no
object key to hand on when it completes) is one statement, run without BEGIN and COMMIT:
it locks the targets in ID order, checks each against the state table, writes the change,
the history row and the audit entry, and notifies attached clients, dispatchers and the
worker sessions of running attempts. Through operations.py the same is five or six round
trips.

A target the statement cannot do alone (every other case, and every refusal) is left
unchanged and returned as None: the caller acts on it through operations.py, which
handles every case and gives every refusal. So this module only has to be right where it
acts, and `ACTIONS` says where that is.

The state table stays in one place: the statement checks each change against the pairs of
domain/states.py for the action's event, generated into it. The changes are the SQL form
of what operations.py writes for the same case; tests/integration/test_single_statement.py
runs every action on invocations in many states both ways and compares what they wrote.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace

from ..domain.states import TRANSITIONS, Event, Outcome, State
from . import notify, transition
from .attempts import CANCELLED_FAILURE, KILLED_FAILURE
from .deployments import DEFAULT_RETENTION_MS
from .operations import KEEP


@dataclasses.dataclass(frozen=True)
class Request:
    """An operator's request to act on one invocation."""

    invocation_id: str
    actor: str  # in the history and on the span
    parent: otel_context.Context | None  # the trace its span belongs to
    identity: str  # who asked, and why, for the audit log
    reason: str


@dataclasses.dataclass(frozen=True)
class _Action:
    """An action in SQL over `l`, the target's locked row. `acts`: where this statement
    acts (every other case goes to operations.py); `to` and `changes`: the state and
    columns after; `signal`: the kind a running attempt's session is sent."""

    event: Event
    acts: str
    to: str
    changes: dict[str, str]
    detail: str = "NULL"
    signal: str | None = None
    wakes_sleep: bool = False  # a sleep it cuts short completes with the cancellation


def lit(value: str) -> str:
    """A constant of this module (or complete_statement's) as an SQL literal, never a
    value from a request."""
    if "'" in value:
        raise ValueError(value)
    return f"'{value}'"


# A completion hands a key on (exclusive) and a result to a caller: operations.py does those.
ALONE = "l.caller_id IS NULL AND NOT l.exclusive"
# domain/states.started(): pending, scheduled, and ready before its first attempt have not.
_STARTED = "NOT (l.state IN ('pending', 'scheduled') OR (l.state = 'ready' AND l.attempt = 0))"
# The retention of the locked row `l`'s handler, as attempts._policy_of finds it.
RETENTION_MS = f"""coalesce((
    SELECT s.retention_ms FROM deployment_services s
    JOIN deployment_handlers h USING (deployment_id, service)
    WHERE s.deployment_id = l.deployment_id AND s.service = l.service
      AND h.handler = l.handler), {DEFAULT_RETENTION_MS})"""

ACTIONS: dict[str, _Action] = {
    # operations.kill_many with no tree: finish_many's changes for a kill.
    "kill": _Action(
        Event.KILLED,
        acts=f"l.state <> 'completed' AND {ALONE}",
        to=lit(State.COMPLETED),
        changes={
            "outcome": lit(Outcome.KILLED),
            "output": "NULL",
            "failure_code": lit(KILLED_FAILURE.code),
            "failure_message": lit(KILLED_FAILURE.message),
            "completed_at": "$now",
            "expires_at": f"$now + {RETENTION_MS} * interval '1 millisecond'",
            "due_at": "NULL",
            "session_id": "NULL",
            "waiting_on": "NULL",
            "cancel_pending": "false",
        },
        detail=lit(KILLED_FAILURE.message),
        signal="kill",
    ),
    # operations.cancel_many on a started invocation not cancelled before, with no tree:
    # a suspended one is asleep (what it awaits is not in flight); only a running one stays.
    "cancel": _Action(
        Event.CANCELLED,
        acts=f"l.cancelled_at IS NULL AND l.state <> 'completed' AND {_STARTED}",
        to=f"CASE WHEN l.state = 'running' THEN 'running' ELSE {lit(State.READY)} END",
        changes={
            "cancelled_at": "$now",
            "cancel_pending": "l.state <> 'suspended'",
            "due_at": "CASE WHEN l.state = 'running' THEN l.due_at END",
            "waiting_on": "CASE WHEN l.state = 'running' THEN l.waiting_on END",
        },
        signal="cancel",
        wakes_sleep=True,
    ),
    # operations.pause_many on one not paused yet.
    "pause": _Action(
        Event.PAUSED,
        acts="l.state <> 'paused'",
        to=lit(State.PAUSED),
        changes={"session_id": "NULL", "due_at": "NULL"},
        signal="pause",
    ),
    # operations.resume_many on the deployment it has (keep).
    "resume": _Action(
        Event.RESUMED,
        acts=_STARTED,
        to=lit(State.READY),
        changes={
            "due_at": "NULL",
            "waiting_on": "CASE WHEN l.cancel_pending THEN l.waiting_on END",
        },
    ),
}
# Purged: a completed invocation is deleted (operations.purge_many).
PURGE = "purge"


def allowed(event: Event, to: str) -> str:
    """The condition that the state table allows `event` to move the locked row `l` to
    the state `to` (an SQL expression): the (from, to) pairs compared in the row, not
    joined (a join would be planned as if the statement had one target)."""
    pairs = [(str(f), str(t)) for (f, e), tos in TRANSITIONS.items() if e == event and f
             for t in tos]  # fmt: skip
    listed = ", ".join(f"({lit(f)}, {lit(t)})" for f, t in pairs)
    return f"(l.state, {to}) IN ({listed})"


# Each target locked by primary key in the order of the requests (ID order: the callers
# sort them), as `l`: the row as locked (the newest version), which the changes read.
LOCK_EACH = "CROSS JOIN LATERAL (SELECT * FROM invocations x WHERE x.id = r.id FOR UPDATE) l"


def locked_update(requests: str, sets: str, where: str, returning: str) -> str:
    """An UPDATE of the invocations of `requests` (a FROM item `r` with an `id` column):
    it locks each (LOCK_EACH), changes those `where` holds for (`sets` and `where` read
    `l` and `r`), and returns their rows after with `returning`.

    The target is joined to `r`, which drives the plan whatever the statistics, as in
    transition.apply: each row is found by primary key. An UPDATE ... FROM a CTE of the
    locked rows was planned as a nested loop over both (a CTE's estimate says one row):
    quadratic in the batch, 0.3 s for a bulk page of 500."""
    return f"""UPDATE invocations i
            SET {sets}
            FROM {requests}
                {LOCK_EACH}
            WHERE i.id = r.id AND {where}
            RETURNING i.*, {returning}"""


# The parameters of both statements: per request ($1-$7), then the time of the change.
_PARAMETERS = (
    "ids text[]", "actors text[]", "identities text[]", "reasons text[]", "trace_ids text[]",
    "span_ids text[]", "links text[]", "now timestamptz",
)  # fmt: skip
_P = {p.split()[0]: f"${i + 1}::{p.split()[1]}" for i, p in enumerate(_PARAMETERS)}

# The requests' columns (_PARAMETERS $1-$7), as the FROM item `r`.
_REQUESTS = """unnest({ids}, {actors}, {identities}, {reasons}, {trace_ids}, {span_ids}, {links})
                AS r(id, actor, identity, reason, trace_id, span_id, link)""".format(**_P)
# A target that journaled a call since the statement's snapshot (a running one) may have a
# callee the snapshot does not show: it is left to operations.py.
_CURRENT = "l.journal_length = (SELECT s.journal_length FROM invocations s WHERE s.id = r.id)"
# No invocation it called is in flight (read by index: see invocation_call_trees).
_NO_TREE = """NOT EXISTS (SELECT 1 FROM invocations c
                  WHERE c.caller_id = l.id AND c.state <> 'completed' OFFSET 0)"""


def _audit(operation: str | None, state_after: str, src: str) -> str:
    """The audit entries of the requests (`operation`: the RPC's name; None: a bulk
    page's, which are not audited one by one: their bulk operation is)."""
    if operation is None:
        return ""
    return f""", a AS (
        INSERT INTO audit_log (at, identity, operation, invocation_id, reason, result,
                               state_after)
        SELECT {_P["now"]}, t_identity, {lit(operation)}, id, t_reason, 'OK', {state_after}
        FROM {src}
    )"""


def _transition_sql(kind: str, operation: str | None) -> str:
    action = ACTIONS[kind]

    def sub(sql: str) -> str:
        return sql.replace("$now", _P["now"])

    to = sub(action.to)
    sets = "".join(
        f", {c} = ({sub(action.changes[c])})::{transition.COLUMN_TYPES[c]}"
        for c in sorted(action.changes)
    )
    tree = f" AND {_NO_TREE}" if action.event in (Event.KILLED, Event.CANCELLED) else ""
    update = locked_update(
        _REQUESTS,
        f"""state = {to}, modified_at = {_P["now"]}{sets},
                pending_links = CASE WHEN r.link IS NULL THEN l.pending_links
                    ELSE array_append(l.pending_links, r.link) END""",
        f"{_CURRENT} AND {action.acts}{tree} AND {allowed(action.event, to)}",
        """l.state AS from_state, l.session_id AS from_session_id,
                      l.attempt AS from_attempt, l.waiting_on AS from_waiting_on,
                      r.actor AS t_actor, r.identity AS t_identity, r.reason AS t_reason,
                      r.trace_id AS t_trace_id, r.span_id AS t_span_id""",
    )
    signal = ""
    if action.signal:
        signal = f""", sig AS (
            SELECT pg_notify({lit(notify.SIGNAL)},
                   concat_ws(' ', from_session_id, id, from_attempt, {lit(action.signal)}))
            FROM u WHERE from_state = 'running'
        )"""
    wake = ""
    if action.wakes_sleep:
        wake = f""", w AS (
            UPDATE journal_entries j
            SET completed = true, value = NULL, failure_code = {lit(CANCELLED_FAILURE.code)},
                failure_message = {lit(CANCELLED_FAILURE.message)}
            FROM u WHERE u.from_state = 'suspended' AND j.invocation_id = u.id
              AND j.idx = u.from_waiting_on AND NOT j.completed
        )"""
    history = transition.history_sql(lit(action.event), _P["now"], action.detail)
    return f"""
        WITH u AS (
            {update}
        ), {history}{_audit(operation, "state", "u")}{signal}{wake},
        {transition.notify_sql("u", also=("sig",) if signal else ())}
    """  # identifiers and constants come from this module; values are bound


def _purge_sql(operation: str | None) -> str:
    return f"""
        WITH d AS (
            DELETE FROM invocations i
            USING {_REQUESTS}
                {LOCK_EACH}
            WHERE i.id = r.id AND l.state = 'completed'
            RETURNING i.*, r.identity AS t_identity, r.reason AS t_reason
        ){_audit(operation, "NULL", "d")}
        SELECT * FROM d
    """


def _values(requests: Sequence[Request], spans: Sequence[trace.Span] | None, now: datetime):
    """The statements' parameters (_PARAMETERS) for these requests and their spans."""
    ids = [transition.span_ids(sp) for sp in spans] if spans else [(None,) * 3] * len(requests)
    return (
        [q.invocation_id for q in requests],
        [q.actor for q in requests],
        [q.identity for q in requests],
        [q.reason for q in requests],
        [t for t, _, _ in ids],
        [s for _, s, _ in ids],
        # A request's step is linked from the next step in the invocation's own trace.
        [tp for _, _, tp in ids],
        now,
    )


def supports(kind: str, deployment: str = "") -> bool:
    """Whether the statement may act for an action (`kind`, as in bulk.KINDS): a resume
    only on the deployment the invocation has (`deployment`: "" or keep)."""
    if kind == "resume":
        return deployment in ("", KEEP)
    return kind in ACTIONS or kind == PURGE


@functools.cache
def statement(kind: str, operation: str | None) -> str:
    """The statement of an action this module supports (`kind`, as in bulk.KINDS) for
    requests of the RPC `operation` (None: a bulk page's), as Postgres logs it. Built
    once: the same string object each time, whose hash the statement cache of asyncpg
    does not compute again."""
    return (_purge_sql(operation) if kind == PURGE else _transition_sql(kind, operation)).strip()


async def act(
    conn: asyncpg.Connection,
    kind: str,
    requests: Sequence[Request],
    *,
    operation: str | None,
    now: datetime,
) -> list[asyncpg.Record | None]:
    """Act on each request's invocation in one statement where that is all it takes (see
    the module docstring): per request the row after (the row as it was, for a purge), or
    None where it changed nothing and operations.py must act. The invocation IDs must be
    distinct. Each request it acts on is audited as one of the RPC `operation` (the others
    are audited by whoever acts on them or refuses them); with None, as in a bulk page,
    none is. In a bulk page (page_spans.page()) its spans are page spans."""
    if not requests:
        return []
    asked, requests = requests, sorted(requests, key=lambda q: q.invocation_id)  # lock order
    if kind == PURGE:
        values = _values(requests, None, now)
        # Unaudited, a purge has no use for the time: Postgres refuses a parameter unused.
        values = values if operation is not None else values[:-1]
        rows = await conn.fetch(statement(kind, operation), *values)
        by_id = {r["id"]: r for r in rows}
        for q in requests:  # not a transition, but traced like one
            if q.invocation_id in by_id:
                transition.trace_purge(by_id[q.invocation_id], actor=q.actor, parent=q.parent)
        return [by_id.get(q.invocation_id) for q in asked]
    event = ACTIONS[kind].event
    spans = [transition.request_span(q.invocation_id, event, q.actor, q.parent) for q in requests]
    try:
        rows = await conn.fetch(statement(kind, operation), *_values(requests, spans, now))
    except BaseException as exc:
        transition.spans_failed(spans, exc)
        raise
    by_id = transition.spans_of_statement(
        spans, [q.invocation_id for q in requests], rows, transition.request_span_placed, event
    )
    return [by_id.get(q.invocation_id) for q in asked]
