"""Bulk operator commands: `invoctl invocations cancel|kill|pause|resume|purge|restart-as-new
QUERY` and `invoctl bulk ls|watch|stop`.

A bulk command counts first (a dry run), asks, then follows the operation's progress
stream. The operation runs on the server, not in the stream: leaving the stream (Ctrl-C,
a lost connection) never stops it, and `invoctl bulk watch` re-attaches.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
import threading
from collections.abc import AsyncIterator

from rich.text import Text

from invoctl.client import BULK_OPERATIONS, Client, InvoctlError, selector
from invoctl.v1 import bulk_pb2

from . import _bulk_format as bfmt
from . import _format as fmt
from . import _hints, _operations
from ._commands import Output
from ._operations import SELECTOR_FLAGS

__all__ = [
    "LIST_STATES",
    "SELECTOR_FLAGS",
    "bulk_ls",
    "bulk_stop",
    "bulk_watch",
    "exit_code",
    "invocations_operate",
    "is_bulk",
    "selector_of",
    "takes_query",
    "usage_problem",
]

#: `invoctl bulk ls --state`: the states ListBulkOperations filters on (not dry-run,
#: which is never stored).
LIST_STATES = {
    "running": bulk_pb2.BULK_OPERATION_STATE_RUNNING,
    "completed": bulk_pb2.BULK_OPERATION_STATE_COMPLETED,
    "stopped": bulk_pb2.BULK_OPERATION_STATE_STOPPED,
}
# ListBulkOperations caps a page at 1000 (bulk.proto).
_MAX_PAGE = 1000
# IDs of the dry run's sample shown before asking; enough to spot a wrong query.
_SAMPLE = 5


# -- which mode -----------------------------------------------------------------------


def takes_query(operation: _operations.Operation) -> bool:
    """Whether the operation has a bulk form (purge-journal has none)."""
    return operation.command in BULK_OPERATIONS


def _has_selector_flags(args: argparse.Namespace) -> bool:
    return any(getattr(args, flag, None) for flag in SELECTOR_FLAGS)


def is_bulk(args: argparse.Namespace) -> bool:
    """Whether the command acts on a query rather than on one invocation.

    One `inv_` argument alone keeps the unary RPC, as before bulk operations existed.
    `--dry-run` and `--max-per-second` only mean something in bulk, so they force it
    rather than being silently dropped (a dry run must never act).
    """
    if not takes_query(args.operation) or args.invocation_ids:
        return False
    query = (args.invocation_id or "").strip()
    return (
        not query.startswith("inv_")
        or _has_selector_flags(args)
        or args.dry_run
        or args.max_per_second is not None
    )


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with an operation's arguments beyond what argparse checks; None if
    nothing. `main` reports it as a usage error (exit 2)."""
    operation = getattr(args, "operation", None)
    if operation is None or not takes_query(operation):
        return None
    if args.invocation_ids:
        return None  # several IDs: split_ids checked them
    if not args.invocation_id and not _has_selector_flags(args):
        return (
            f"invocations {operation.command}: an invocation ID, a QUERY or selector flags "
            "(--service, --state, --id, ...) are required"
        )
    if is_bulk(args) and getattr(args, "from_entry", 0):
        return "--from applies to one invocation: give its ID alone, without selector flags"
    return None


def selector_of(args: argparse.Namespace) -> bulk_pb2.BulkSelector:
    """The BulkSelector the command line describes."""
    return selector(
        (args.invocation_id or "").strip(),
        service=args.service,
        handler=args.handler,
        key=args.key,
        states=args.state or (),
        deployment_id=args.deployment_id,
        created_before=args.created_before,
        created_after=args.created_after,
        invocation_ids=args.ids or (),
    )


def exit_code(final: bulk_pb2.BulkOperationProgress) -> int:
    """0 when every matched invocation was processed and none failed, else 1."""
    completed = final.state == bulk_pb2.BULK_OPERATION_STATE_COMPLETED
    return 0 if completed and final.failed == 0 else 1


# -- invoctl invocations <operation> ------------------------------------------------


async def invocations_operate(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations cancel|kill|pause|resume|purge|restart-as-new ID|QUERY`."""
    if not is_bulk(args):
        return await _operations.invocations_operate(client, args, out)
    command = args.operation.command
    where = selector_of(args)
    options = {
        "reason": args.reason,
        "request_id": args.request_id,
        "max_per_second": args.max_per_second or 0,
        "deployment": getattr(args, "deployment", None),
    }
    dry_run = await _last(client.bulk_operation(command, where, dry_run=True, **options))
    if dry_run is None:
        _error("the dry run ended without an answer from the server")
        return 1
    if args.dry_run or dry_run.matched == 0:
        if out.json:
            out.document(fmt.message_to_json(dry_run))
        elif dry_run.matched == 0:
            out.note("no invocations match; nothing to do")
        else:
            out.console.print(bfmt.matches(dry_run, _SAMPLE))
            out.note("dry run: nothing changed")
        return 0
    if not out.json:
        out.console.print(bfmt.matches(dry_run, _SAMPLE))
    if not args.yes:
        if not sys.stdin.isatty():
            _error(
                f"refusing to {command} {bfmt.count(dry_run.matched)} without confirmation: "
                "stdin is not a terminal (pass --yes to go ahead)"
            )
            return 2
        if not _confirm(out, bfmt.question(command, dry_run.matched)):
            out.note("nothing started")
            return 1
    stream = client.bulk_operation(command, where, **options)
    return await _follow(stream, out, args, verb="started")


# -- invoctl bulk ---------------------------------------------------------------------


async def bulk_ls(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl bulk ls`: bulk operations, newest first, up to --limit."""
    operations: list[bulk_pb2.BulkOperationProgress] = []
    token: str | None = None
    while True:
        page, token = await client.list_bulk_operations(
            states=args.state or (),
            page_size=min(args.limit - len(operations), _MAX_PAGE),
            page_token=token,
        )
        operations += page
        if token is None or len(operations) >= args.limit:
            break
    more = token is not None or len(operations) > args.limit
    operations = operations[: args.limit]
    if out.json:
        # The field name of ListBulkOperationsResponse, as proto3 JSON spells it.
        out.document({"bulkOperations": [fmt.message_to_json(o) for o in operations]})
        return 0
    if not operations:
        out.note("no bulk operations match")
        return 0
    out.console.print(bfmt.bulk_table(operations, _now(), out.console.width), crop=False)
    if more:
        out.note(f"showing the newest {args.limit}; there are more (raise --limit)")
    return 0


async def bulk_watch(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl bulk watch BULK_ID`: the progress to the end, then the summary."""
    return await _follow(client.watch_bulk_operation(args.bulk_id), out, args, verb="watching")


async def bulk_stop(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl bulk stop BULK_ID`: stop after the current page; prints the snapshot."""
    progress = await client.stop_bulk_operation(args.bulk_id)
    if out.json:
        out.document(fmt.message_to_json(progress))
        return 0
    out.console.print(bfmt.summary(progress))
    if progress.state == bulk_pb2.BULK_OPERATION_STATE_COMPLETED:
        out.note("it had completed already: nothing to stop")
    elif progress.failures:
        out.console.print(bfmt.failures_table(progress))
    return 0


# -- following a stream ---------------------------------------------------------------


async def _follow(
    stream: AsyncIterator[bulk_pb2.BulkOperationProgress],
    out: Output,
    args: argparse.Namespace,
    *,
    verb: str,
) -> int:
    """Show the progress bar to the final snapshot, then the summary and the failures.

    Returns the exit code (see `exit_code`). Ctrl-C leaves the stream, says how to
    re-attach, and lets the interruption go on to `main` (exit 130).
    """
    last: bulk_pb2.BulkOperationProgress | None = None
    try:
        with bfmt.progress_bar(out.err, hidden=out.json) as bar:
            task = bar.add_task("", total=None, rate="", eta="")
            async for progress in stream:
                if last is None:
                    # First, so a log or a second terminal can re-attach by this ID.
                    out.note(_first_line(progress, verb, args))
                last = progress
                bar.update(task, **bfmt.progress_fields(progress))
    except (asyncio.CancelledError, KeyboardInterrupt):
        # asyncio.run turns the first Ctrl-C into a cancellation of the main task.
        _detached(last, args, starting=verb == "started")
        raise
    except InvoctlError:
        if last is not None and not last.final:
            _reattach_hint(last.bulk_operation_id, args)
        raise
    if last is None or not last.final:
        # A server that shuts down may close the stream cleanly; the operation goes on
        # (another server takes it over).
        _error("the progress stream ended before the operation did")
        if last is not None:
            _reattach_hint(last.bulk_operation_id, args)
        return 1
    if out.json:
        out.document(fmt.message_to_json(last))
        return exit_code(last)
    out.console.print(bfmt.summary(last))
    if last.failures:
        out.console.print(bfmt.failures_table(last))
        if last.failed > len(last.failures):
            out.note(f"showing the first {len(last.failures)} of {last.failed:,} failures")
    return exit_code(last)


async def _last(
    stream: AsyncIterator[bulk_pb2.BulkOperationProgress],
) -> bulk_pb2.BulkOperationProgress | None:
    last = None
    async for progress in stream:
        last = progress
    return last


def _first_line(
    progress: bulk_pb2.BulkOperationProgress, verb: str, args: argparse.Namespace
) -> str:
    """`started bulk_…: kill of 40 invocations`, or, when the request ID matched an
    operation started before, that this is that one (nothing new was started)."""
    what = f"{bfmt.bulk_kind_name(progress.kind)} of {bfmt.count(progress.matched)}"
    bulk_id = progress.bulk_operation_id
    if progress.reattached and verb == "started":
        request_id = getattr(args, "request_id", None)
        return (
            f"re-attached to {bulk_id}: {what}, started earlier by request ID "
            f"{request_id!r}; nothing new was started (a new operation needs a new "
            "--request-id)"
        )
    return f"{verb} {bulk_id}: {what}"


def _detached(
    last: bulk_pb2.BulkOperationProgress | None, args: argparse.Namespace, *, starting: bool
) -> None:
    if last is None:
        if starting:
            print(
                "interrupted before the server answered: the operation may have started "
                f"(see {_hints.command(args, 'bulk', 'ls')})",
                file=sys.stderr,
            )
    elif not last.final:
        bulk_id = last.bulk_operation_id
        print(
            f"detached: {bulk_id} keeps running; re-attach with: "
            f"{_hints.command(args, 'bulk', 'watch', bulk_id)}",
            file=sys.stderr,
        )


def _reattach_hint(bulk_id: str, args: argparse.Namespace) -> None:
    print(
        f"hint: {bulk_id} goes on without this stream; re-attach with: "
        f"{_hints.command(args, 'bulk', 'watch', bulk_id)}",
        file=sys.stderr,
    )


def _confirm(out: Output, question: str) -> bool:
    """Ask on the terminal; only y or yes goes ahead."""
    # asyncio.run's SIGINT handler only cancels the main task, which a blocking input()
    # never notices: the default handler makes Ctrl-C abort the prompt at once.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main_thread else None
    try:
        answer = out.err.input(Text(f"{question} [y/N] "))
    except EOFError:
        answer = ""
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the prompt's line; main exits 130
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return answer.strip().lower() in ("y", "yes")


def _error(message: str) -> None:
    # Plain print, as main's errors: the message may hold user text rich reads as markup.
    print(f"error: {message}", file=sys.stderr)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
