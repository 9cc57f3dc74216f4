"""Pure rendering of invoctl messages for people (rich) and for scripts (JSON).

Nothing here talks to a server, so every function can be tested on a constructed
message. `now` is a parameter wherever time is shown, so relative times are testable.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.table import Table
from rich.text import Text

from invoctl.client import (
    journal_entry_kind_name,
    outcome_name,
    service_kind_name,
    state_name,
)
from invoctl.v1 import control_pb2, invocation_pb2, workers_pb2

__all__ = [
    "audit_table",
    "deployments_table",
    "dumps_json",
    "entries_table",
    "fitted_table",
    "format_relative",
    "format_time",
    "invocation_details",
    "invocations_table",
    "message_to_json",
    "operation_headline",
    "state_text",
    "transitions_table",
    "waiting_key",
    "waiting_line",
]

# Colours follow "does this need me?": green fine, yellow waiting on time, magenta
# waiting on an operator, red ended badly.
_STATE_STYLES = {
    "pending": "yellow",
    "scheduled": "blue",
    "ready": "cyan",
    "running": "green",
    "backing-off": "bold yellow",
    "suspended": "cyan",
    "paused": "bold magenta",
}
_OUTCOME_STYLES = {
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "killed": "red",
}
# Values longer than this are cut in tables; `--json` always has them whole.
_CELL_LIMIT = 80


# -- JSON ---------------------------------------------------------------------------


def message_to_json(message: Message) -> dict[str, Any]:
    """A message as canonical proto3 JSON (what grpcurl and `buf curl` print).

    Fields at their default are included, so scripts see `"key": ""` rather than
    a missing field.
    """
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def dumps_json(document: Any) -> str:
    """One JSON document as the CLI prints it with `--json`."""
    return json.dumps(document, indent=2, ensure_ascii=False)


# -- times --------------------------------------------------------------------------


def format_relative(delta: dt.timedelta) -> str:
    """`then - now` as `3m ago` or `in 3m`, at the coarsest unit that is not zero."""
    seconds = delta.total_seconds()
    magnitude = abs(seconds)
    if magnitude < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if magnitude >= size:
            amount = f"{int(magnitude // size)}{unit}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def format_time(ts: timestamp_pb2.Timestamp | None, now: dt.datetime) -> str:
    """Absolute UTC time and relative time: `2025-01-02 03:04:05Z (3m ago)`; "" if unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return ""
    when = ts.ToDatetime(tzinfo=dt.UTC)
    return f"{when:%Y-%m-%d %H:%M:%S}Z ({format_relative(when - now)})"


# -- small pieces -------------------------------------------------------------------


def state_text(invocation: invocation_pb2.Invocation) -> Text:
    """The state, with the outcome when completed: `completed (failed)`, coloured."""
    state = state_name(invocation.state)
    if invocation.state != invocation_pb2.INVOCATION_STATE_COMPLETED:
        return Text(state, style=_STATE_STYLES.get(state, ""))
    outcome = outcome_name(invocation.outcome)
    return Text(f"{state} ({outcome})", style=_OUTCOME_STYLES.get(outcome, ""))


def _add_row(table: Table, *cells: str | Text) -> None:
    # Cells hold user data such as `[TERMINAL] boom`; as Text, rich never reads it as markup.
    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))


def _truncate(text: str, limit: int = _CELL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure(failure: invocation_pb2.Failure) -> str:
    if not failure.code and not failure.message:
        return ""
    return f"[{failure.code}] {failure.message}" if failure.code else failure.message


def _target(target: invocation_pb2.Target) -> str:
    if target.key:
        return f"{target.service}/{target.key}/{target.handler}"
    return f"{target.service}/{target.handler}"


# -- invocations --------------------------------------------------------------------


# Tables a person reads in a terminal pick the widest layout that fits its width. Each
# next layout gives up something (absolute times, then whole columns); IDs are in every
# layout and never wrapped or cut, since they are copied into the next command.
Layout = tuple[tuple[str, ...], bool]  # (columns, absolute times as well as relative ones)
Cells = dict[str, str | Text]

_INVOCATION_LAYOUTS: tuple[Layout, ...] = (
    (("ID", "TARGET", "STATE", "ATTEMPTS", "DEPLOYMENT", "CREATED", "MODIFIED"), True),
    (("ID", "TARGET", "STATE", "ATTEMPTS", "DEPLOYMENT", "CREATED", "MODIFIED"), False),
    (("ID", "TARGET", "STATE", "ATTEMPTS", "CREATED", "MODIFIED"), False),
    (("ID", "TARGET", "STATE", "ATTEMPTS", "CREATED"), False),
    (("ID", "TARGET", "STATE", "CREATED"), False),
    (("ID", "TARGET", "STATE"), False),
)
# Space rich puts between two columns of a table without a box and edge padding.
_COLUMN_GAP = 2
# Below this a shortened column is no use; the table is then wider than the terminal.
_MIN_SHORTENED = 12


def _short_time(ts: timestamp_pb2.Timestamp, now: dt.datetime) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    return format_relative(ts.ToDatetime(tzinfo=dt.UTC) - now)


def _cell_width(cell: str | Text) -> int:
    text = cell if isinstance(cell, Text) else Text(cell)
    return max((line.cell_len for line in text.split("\n")), default=0)


def fitted_table(
    layouts: tuple[Layout, ...],
    cells: Callable[[bool], list[Cells]],
    width: int | None,
    *,
    shorten: tuple[str, ...],
    right: frozenset[str] = frozenset(),
    title: str | None = None,
) -> Table:
    """A table in the widest of `layouts` that fits `width` (None: the first layout).

    `cells(absolute)` gives the rows, with absolute times or relative ones. When even
    the last layout is too wide, the `shorten` columns are cut (with an ellipsis) in
    that order, each to no less than _MIN_SHORTENED; no other cell is ever cut or
    wrapped. A table still too wide keeps its width: print it with crop=False, and the
    terminal wraps its lines rather than rich cutting IDs.
    """
    for columns, absolute in layouts:
        rows = cells(absolute)
        needed = {c: max([len(c)] + [_cell_width(r[c]) for r in rows]) for c in columns}
        total = sum(needed.values()) + _COLUMN_GAP * (len(columns) - 1)
        if width is None or total <= width:
            break
    for column in shorten:
        if width is None or total <= width or column not in needed:
            continue
        cut = min(total - width, needed[column] - _MIN_SHORTENED)
        if cut > 0:
            needed[column] -= cut
            total -= cut
    table = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
        width=total,
        title=title,
        title_justify="left",
    )
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in right else "left",
            no_wrap=True,
            overflow="ellipsis",
            # Fixed widths: rich may not shrink an ID to fit; the layout decides.
            width=needed[column],
        )
    for row in rows:
        _add_row(table, *(row[c] for c in columns))
    return table


def invocations_table(
    invocations: list[invocation_pb2.Invocation], now: dt.datetime, width: int | None = None
) -> Table:
    """One row per invocation, as `invoctl invocations ls` shows them.

    With a `width` (the terminal's), it uses the widest layout that fits: times become
    relative, then MODIFIED, DEPLOYMENT, ATTEMPTS and CREATED go, and last the target is
    cut. IDs are never wrapped or cut, whatever the width.
    """

    def cells(absolute: bool) -> list[Cells]:
        time = format_time if absolute else _short_time
        return [
            {
                "ID": inv.id,
                "TARGET": inv.target,
                "STATE": state_text(inv),
                "ATTEMPTS": str(inv.attempt_count),
                "DEPLOYMENT": inv.deployment_id or "-",
                "CREATED": time(inv.created_at, now),
                "MODIFIED": time(inv.modified_at, now),
            }
            for inv in invocations
        ]

    return fitted_table(
        _INVOCATION_LAYOUTS, cells, width, shorten=("TARGET",), right=frozenset({"ATTEMPTS"})
    )


def invocation_details(invocation: invocation_pb2.Invocation, now: dt.datetime) -> Table:
    """Every field of one invocation as a two-column list; unset fields are left out."""
    inv = invocation
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("id", inv.id),
        ("target", inv.target),
        ("state", state_text(inv)),
        ("waiting", no_worker_text(inv, now)),
        ("deployment", inv.deployment_id),
        ("attempts", str(inv.attempt_count)),
        ("journal entries", str(inv.journal_length)),
        ("idempotency key", inv.idempotency_key),
        ("caller", inv.caller_id),
        ("restarted from", inv.restarted_from),
        ("created", format_time(inv.created_at, now)),
        ("modified", format_time(inv.modified_at, now)),
        ("run at", format_time(inv.run_at, now)),
        ("next retry", format_time(inv.next_retry_at, now)),
        ("completed", format_time(inv.completed_at, now)),
        ("input", inv.input),
        ("output", inv.output),
        ("failure", _failure(inv.failure)),
        ("last failure", _failure(inv.last_failure)),
    ]
    rows += [(f"header {k}", v) for k, v in sorted(inv.headers.items())]
    for label, value in rows:
        if value:
            _add_row(table, label, value)
    return table


def waiting_key(invocation: invocation_pb2.Invocation) -> tuple[object, ...]:
    """What `waiting_line` shows that is worth a new line when it changes (not the clock)."""
    inv = invocation
    failure = (inv.last_failure.code, inv.last_failure.message)
    return (inv.state, inv.outcome, inv.attempt_count, failure, inv.HasField("no_worker"))


def waiting_line(invocation: invocation_pb2.Invocation, now: dt.datetime) -> Text:
    """One line on what a call waits for: `inv_…  backing-off  attempt 3  last failure: …`."""
    inv = invocation
    line = Text.assemble(inv.id, "  ", state_text(inv), f"  attempt {inv.attempt_count}")
    retry = format_time(inv.next_retry_at, now)
    if inv.state == invocation_pb2.INVOCATION_STATE_BACKING_OFF and retry:
        line.append(f"  next retry {retry}")
    failure = _failure(inv.last_failure)
    if failure:
        line.append(f"  last failure: {_truncate(failure)}", style="red")
    waiting = no_worker_text(inv, now)
    if waiting:
        line.append("  ")
        line.append_text(Text(waiting) if isinstance(waiting, str) else waiting)
    return line


def no_worker_text(invocation: invocation_pb2.Invocation, now: dt.datetime) -> Text | str:
    """`no worker of dp_… connected since …`, when the invocation waits for one."""
    if not invocation.HasField("no_worker"):
        return ""
    absent = invocation.no_worker
    since = format_time(absent.last_seen_at, now) if absent.HasField("last_seen_at") else ""
    text = f"no worker of {absent.deployment_id} connected " + (
        f"since {since}" if since else "(none ever was)"
    )
    return Text(text, style="yellow")


# -- journal ------------------------------------------------------------------------


def _entry_detail(entry: invocation_pb2.JournalEntry, now: dt.datetime) -> str:
    """What an entry did, in one line: addressee, argument, result, wake time."""
    parts: list[str] = []
    if entry.HasField("target"):
        callee = f" -> {entry.callee_invocation_id}" if entry.callee_invocation_id else ""
        parts.append(_target(entry.target) + callee)
    if entry.argument:
        parts.append(f"arg {_truncate(entry.argument)}")
    if entry.delay_ms:
        parts.append(f"delay {entry.delay_ms / 1000:g}s")
    if entry.HasField("wake_at"):
        parts.append(f"wakes {format_time(entry.wake_at, now)}")
    failure = _failure(entry.failure)
    if failure:
        parts.append(f"failed {_truncate(failure)}")
    elif entry.value:
        parts.append(f"= {_truncate(entry.value)}")
    return "  ".join(parts)


def entries_table(response: control_pb2.GetJournalResponse, now: dt.datetime) -> Table:
    """The journal, one row per entry, in order."""
    table = Table(title="journal", title_justify="left", box=None, header_style="bold")
    for column in ("#", "KIND", "NAME", "DONE", "DETAIL", "AT"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for entry in response.entries:
        _add_row(
            table,
            str(entry.index),
            journal_entry_kind_name(entry.kind),
            entry.name,
            Text("yes", style="green") if entry.completed else Text("no", style="yellow"),
            _entry_detail(entry, now),
            format_time(entry.created_at, now),
        )
    return table


def transitions_table(response: control_pb2.GetJournalResponse, now: dt.datetime) -> Table:
    """The transition history, one row per state change, in order."""
    table = Table(title="history", title_justify="left", box=None, header_style="bold")
    for column in ("AT", "FROM", "TO", "EVENT", "ACTOR", "ATTEMPT", "DETAIL", "TRACE"):
        table.add_column(
            column,
            justify="right" if column == "ATTEMPT" else "left",
            overflow="fold" if column == "TRACE" else "ellipsis",
        )
    for t in response.transitions:
        unset = t.from_state == invocation_pb2.INVOCATION_STATE_UNSPECIFIED
        to = state_name(t.to_state)
        _add_row(
            table,
            format_time(t.at, now),
            "-" if unset else state_name(t.from_state),
            Text(to, style=_STATE_STYLES.get(to, "")),
            t.event,
            t.actor,
            str(t.attempt),
            _truncate(t.detail),
            t.trace_id,
        )
    return table


# -- deployments --------------------------------------------------------------------


def _services(deployment: workers_pb2.Deployment) -> str:
    lines = []
    for service in deployment.services:
        handlers = ", ".join(f"{h.name} (shared)" if h.shared else h.name for h in service.handlers)
        lines.append(f"{service.name} [{service_kind_name(service.kind)}]: {handlers}")
    return "\n".join(lines)


def _workers(deployment: workers_pb2.Deployment, now: dt.datetime) -> Text:
    """The connected worker sessions, or when one was last seen."""
    if deployment.sessions:
        names = ", ".join(f"{s.worker_name} @ {s.server}" for s in deployment.sessions)
        return Text(f"{len(deployment.sessions)}: {names}", style="green")
    if deployment.HasField("last_seen_at"):
        return Text(f"none since {format_time(deployment.last_seen_at, now)}", style="yellow")
    return Text("none ever", style="yellow")


def deployments_table(deployments: list[workers_pb2.Deployment], now: dt.datetime) -> Table:
    """One row per deployment: its identity, the services and handlers it serves, its
    connected workers, and the not-completed invocations pinned to it."""
    table = Table(box=None, header_style="bold")
    for column in ("ID", "IDENTITY", "CREATED", "SERVICES", "WORKERS", "PINNED"):
        table.add_column(
            column,
            justify="right" if column == "PINNED" else "left",
            # IDs are copied into the next command: never wrap or cut them; the other
            # columns fold first.
            overflow="fold",
            no_wrap=column == "ID",
        )
    for deployment in deployments:
        _add_row(
            table,
            deployment.id,
            deployment.identity or "-",
            format_time(deployment.created_at, now),
            _services(deployment),
            _workers(deployment, now),
            str(deployment.pinned_invocations),
        )
    return table


# -- operator actions ---------------------------------------------------------------


def operation_headline(verb: str, requested_id: str, invocation: invocation_pb2.Invocation) -> Text:
    """One line reporting an operator action: `killed inv_1  completed (killed)`.

    When the result is another invocation (a restart), its ID is the one to copy, so
    it comes last and bold: `restarted inv_1 as inv_2  pending`.
    """
    line = Text.assemble((verb, "green"), " ")
    if invocation.id and invocation.id != requested_id:
        line.append(f"{requested_id} as ")
        line.append(invocation.id, style="bold")
    else:
        line.append(requested_id, style="bold")
    line.append("  ")
    line.append_text(state_text(invocation))
    return line


def _audit_result(entry: control_pb2.AuditEntry) -> Text:
    if entry.result != "OK":
        return Text(entry.result or "-", style="red")
    after = entry.state_after
    if after == invocation_pb2.INVOCATION_STATE_UNSPECIFIED:
        return Text("OK", style="green")
    return Text.assemble(("OK", "green"), f" ({state_name(after)})")


_AUDIT_LAYOUTS: tuple[Layout, ...] = (
    (("TIME", "IDENTITY", "OPERATION", "INVOCATION", "REASON", "RESULT"), True),
    (("TIME", "IDENTITY", "OPERATION", "INVOCATION", "REASON", "RESULT"), False),
    (("TIME", "IDENTITY", "OPERATION", "INVOCATION", "RESULT"), False),
    (("TIME", "OPERATION", "INVOCATION", "RESULT"), False),
)


def audit_table(
    entries: list[control_pb2.AuditEntry], now: dt.datetime, width: int | None = None
) -> Table:
    """One row per operator request, as `invoctl audit ls` shows them.

    To fit `width`, times become relative, REASON and IDENTITY go, a restart's new
    invocation goes on a line of its own under the old one (both stay whole), and the
    operation and result are cut last. Piped (no width), each row stays one line.
    """
    arrow = " -> "

    def cells(absolute: bool) -> list[Cells]:
        time = format_time if absolute else _short_time
        rows: list[Cells] = []
        for entry in entries:
            invocation = entry.invocation_id or "-"
            if entry.new_invocation_id:
                invocation += f"{arrow}{entry.new_invocation_id}"
            rows.append(
                {
                    "TIME": time(entry.at, now),
                    "IDENTITY": entry.identity or "-",  # refused before anyone was known
                    "OPERATION": entry.operation,
                    "INVOCATION": invocation,
                    "REASON": _truncate(entry.reason),
                    "RESULT": _audit_result(entry),
                }
            )
        return rows

    shorten = ("REASON", "OPERATION", "RESULT")
    table = fitted_table(_AUDIT_LAYOUTS, cells, width, shorten=shorten)
    if width is not None and (table.width or 0) > width:
        arrow = "\n-> "
        table = fitted_table(_AUDIT_LAYOUTS, cells, width, shorten=shorten)
    return table
