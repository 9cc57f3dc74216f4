"""Pure rendering of bulk operations: the match count, the progress bar's fields, the
summary line, and the tables of failures and of `invoctl bulk ls`.

Like `_format`, nothing here talks to a server: every function takes a constructed
`BulkOperationProgress`, and `now` is a parameter wherever a relative time is shown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from invoctl.client import bulk_kind_name, bulk_state_name, state_name
from invoctl.v1 import bulk_pb2

from ._format import Cells, Layout, _add_row, _short_time, _truncate, fitted_table, format_time

__all__ = [
    "bulk_kind_name",
    "bulk_state_name",
    "bulk_table",
    "count",
    "eta",
    "failures_table",
    "format_duration",
    "matches",
    "progress_bar",
    "progress_fields",
    "question",
    "summary",
]

_STATE_STYLES = {
    "running": "cyan",
    "completed": "green",
    "stopped": "yellow",
    "dry-run": "blue",
}
# Questions whose verb does not simply go in front: "Restart 3 invocations as new?".
_QUESTIONS = {"restart-as-new": "Restart {n} as new?"}


def count(n: int) -> str:
    """`1 invocation`, `1,234 invocations`."""
    return f"{n:,} invocation" + ("" if n == 1 else "s")


def format_duration(seconds: float) -> str:
    """`8.2s`, `2m05s`, `1h02m`: short enough for a progress bar."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _elapsed(progress: bulk_pb2.BulkOperationProgress) -> float | None:
    # The server's own times, so that watching a finished operation later shows how
    # long it took, not how long ago it started.
    if not progress.HasField("created_at"):
        return None
    end = progress.completed_at if progress.HasField("completed_at") else progress.updated_at
    return (end.ToDatetime() - progress.created_at.ToDatetime()).total_seconds()


def eta(progress: bulk_pb2.BulkOperationProgress) -> str:
    """`ETA 12.0s` from the server's rate; "" when done or when no rate is known yet."""
    left = progress.matched - progress.processed
    if progress.final or left <= 0 or progress.rate <= 0:
        return ""
    return f"ETA {format_duration(left / progress.rate)}"


def question(command: str, matched: int) -> str:
    """The confirmation question: `Cancel 1,234 invocations?`."""
    template = _QUESTIONS.get(command, command.capitalize() + " {n}?")
    return template.format(n=count(matched))


# -- before: the dry run ------------------------------------------------------------


def matches(dry_run: bulk_pb2.BulkOperationProgress, sample: int = 5) -> Text:
    """`3,087 invocations match: it would act on 32 and skip 3,055`, the matches by state
    with what it would do to each, and a few IDs, one a line, to check the query selects
    what was meant before anything changes."""
    n = dry_run.matched
    if n == 0:
        return Text("no invocations match")
    shown = list(dry_run.sample_invocation_ids[:sample])
    verb = " invocation matches" if n == 1 else " invocations match"
    text = Text.assemble((f"{n:,}", "bold"), verb)
    if dry_run.matched_by_state:  # a server that counts them by state
        text.append(": it would act on ")
        text.append(f"{dry_run.would_act_on:,}", style="bold")
        text.append(f" and skip {dry_run.would_skip:,}")
        for c in dry_run.matched_by_state:
            skip = c.matched - c.would_act_on
            does = (
                "act on all" if skip == 0
                else "skip all" if c.would_act_on == 0
                else f"act on {c.would_act_on:,}, skip {skip:,}"
            )  # fmt: skip
            text.append(f"\n  {state_name(c.state):<12}{c.matched:>8,}  {does}")
    if shown and dry_run.matched_by_state:
        text.append("\nfor example:")
    elif shown:
        text.append(":" if len(shown) == n else ", for example:")
    for inv_id in shown:
        text.append(f"\n  {inv_id}")
    if shown and n > len(shown):
        text.append(f"\n  … and {n - len(shown):,} more", style="dim")
    return text


# -- during: the progress bar -------------------------------------------------------


def progress_bar(console: Console, *, hidden: bool = False) -> Progress:
    """A bar fed by `progress_fields`: kind, bar, processed/matched, rate, ETA.

    Hidden when the console is not a terminal: a bar in a log file is noise, and the
    summary says everything that matters there.
    """
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TextColumn("{task.fields[eta]}", markup=False),
        console=console,
        disable=hidden or not console.is_terminal,
    )


def progress_fields(progress: bulk_pb2.BulkOperationProgress) -> dict[str, Any]:
    """The keyword arguments of `Progress.update` for one snapshot."""
    return {
        "description": bulk_kind_name(progress.kind),
        "completed": progress.processed,
        "total": progress.matched,
        "rate": f"{progress.rate:,.1f}/s",
        "eta": eta(progress),
    }


# -- after: summary and failures ----------------------------------------------------


def summary(progress: bulk_pb2.BulkOperationProgress) -> Text:
    """One line: `bulk_1 cancel completed: 40 succeeded, 2 skipped, 0 failed (42 of 42
    in 8.4s, 5.0/s)`."""
    p = progress
    state = bulk_state_name(p.state)
    if p.state == bulk_pb2.BULK_OPERATION_STATE_COMPLETED and p.failed:
        state_style = "yellow"
    else:
        state_style = _STATE_STYLES.get(state, "")
    line = Text.assemble(
        (p.bulk_operation_id, "bold"),
        f" {bulk_kind_name(p.kind)} ",
        (state, state_style),
        f": {p.succeeded:,} succeeded, {p.skipped:,} skipped, ",
        (f"{p.failed:,} failed", "bold red" if p.failed else ""),
    )
    details = [f"{p.processed:,} of {p.matched:,}"]
    elapsed = _elapsed(p)
    if elapsed is not None:
        details[0] += f" in {format_duration(elapsed)}"
    details.append(f"{p.rate:,.1f}/s")
    line.append(f" ({', '.join(details)})")
    return line


def failures_table(progress: bulk_pb2.BulkOperationProgress) -> Table:
    """The invocations the operation failed on (the server keeps the first 20)."""
    table = Table(title="failures", title_justify="left", box=None, header_style="bold")
    # IDs are copied into the next command: never wrap or cut them.
    table.add_column("INVOCATION", no_wrap=True)
    table.add_column("REASON")
    table.add_column("MESSAGE")
    for failure in progress.failures:
        _add_row(
            table,
            failure.invocation_id or "-",
            Text(failure.reason, style="red"),
            _truncate(failure.message),
        )
    return table


_NUMBERS = frozenset({"PROCESSED", "SUCCEEDED", "SKIPPED", "FAILED"})
_BULK_LAYOUTS: tuple[Layout, ...] = (
    (("ID", "KIND", "STATE", "PROCESSED", "SUCCEEDED", "SKIPPED", "FAILED", "CREATED", "REASON"),
     True),
    (("ID", "KIND", "STATE", "PROCESSED", "SUCCEEDED", "SKIPPED", "FAILED", "CREATED", "REASON"),
     False),
    (("ID", "KIND", "STATE", "PROCESSED", "SUCCEEDED", "SKIPPED", "FAILED", "CREATED"), False),
    (("ID", "KIND", "STATE", "PROCESSED", "FAILED", "CREATED"), False),
    (("ID", "KIND", "STATE", "PROCESSED", "FAILED"), False),
    (("ID", "STATE", "PROCESSED", "FAILED"), False),
)  # fmt: skip


def bulk_table(
    operations: list[bulk_pb2.BulkOperationProgress], now: dt.datetime, width: int | None = None
) -> Table:
    """One row per bulk operation, as `invoctl bulk ls` shows them; it fits `width` as
    `invocations ls` does, and the ID is never wrapped or cut."""

    def cells(absolute: bool) -> list[Cells]:
        time = format_time if absolute else _short_time
        rows: list[Cells] = []
        for op in operations:
            state = bulk_state_name(op.state)
            rows.append(
                {
                    "ID": op.bulk_operation_id,
                    "KIND": bulk_kind_name(op.kind),
                    "STATE": Text(state, style=_STATE_STYLES.get(state, "")),
                    "PROCESSED": f"{op.processed:,}/{op.matched:,}",
                    "SUCCEEDED": f"{op.succeeded:,}",
                    "SKIPPED": f"{op.skipped:,}",
                    "FAILED": Text(f"{op.failed:,}", style="red" if op.failed else ""),
                    "CREATED": time(op.created_at, now),
                    "REASON": _truncate(op.reason),
                }
            )
        return rows

    return fitted_table(_BULK_LAYOUTS, cells, width, shorten=("KIND",), right=_NUMBERS)
