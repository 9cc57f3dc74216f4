"""The operator commands: `invoctl invocations cancel|kill|pause|...` and `invoctl audit ls`.

One table (`OPERATIONS`) describes every single-invocation operation, so the parser,
the help and the command share one list; one command function runs any of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from invoctl.client import Client
from invoctl.v1 import control_pb2, invocation_pb2

from . import _format as fmt
from ._commands import Output

__all__ = ["OPERATIONS", "Operation", "audit_ls", "invocations_operate", "operation_options"]

# ListAuditEntries caps a page at 1000 (control.proto).
_MAX_PAGE = 1000


@dataclass(frozen=True)
class Operation:
    """One operator action on a single invocation, as the CLI offers it."""

    command: str
    """The subcommand of `invoctl invocations`."""
    summary: str
    verb: str
    """Past tense, for the line that reports it: `killed inv_...`."""
    call: Callable[..., Awaitable[invocation_pb2.Invocation]]
    """The Client method: (client, invocation_id, **options) -> the resulting invocation."""
    deployment: bool = False
    """Whether it takes `--deployment`."""
    from_entry: bool = False
    """Whether it takes `--from`."""


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "cancel",
        "cancel an invocation and its call tree; handlers compensate, leaves first",
        "cancelled",
        Client.cancel_invocation,
    ),
    Operation(
        "kill",
        "kill an invocation and its call tree now, without compensation",
        "killed",
        Client.kill_invocation,
    ),
    Operation(
        "pause",
        "pause a running or backing-off invocation until it is resumed",
        "paused",
        Client.pause_invocation,
    ),
    Operation(
        "resume",
        "resume a paused, suspended or backing-off invocation, or move a ready one that"
        " started before (its deployment may have no worker left) to another deployment",
        "resumed",
        Client.resume_invocation,
        deployment=True,
    ),
    Operation(
        "purge",
        "delete a completed invocation, its journal and its history",
        "purged",
        Client.purge_invocation,
    ),
    Operation(
        "purge-journal",
        "delete the journal of a completed invocation, keeping its result",
        "purged the journal of",
        Client.purge_journal,
    ),
    Operation(
        "restart-as-new",
        "start a new invocation with the target, input and headers of a completed one",
        "restarted",
        Client.restart_invocation_as_new,
        deployment=True,
        from_entry=True,
    ),
)


def operation_options(operation: Operation, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the Client method, from the parsed command line.

    Options the user left out are passed as None (or 0 for `--from`), which the
    server reads as its documented default.
    """
    options: dict[str, Any] = {"reason": args.reason, "request_id": args.request_id}
    if operation.deployment:
        options["deployment"] = args.deployment
    if operation.from_entry:
        options["from_entry"] = args.from_entry
    return options


async def invocations_operate(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations cancel|kill|pause|resume|purge|purge-journal|restart-as-new ID`.

    Prints the resulting invocation: for a restart, the new one.
    """
    operation: Operation = args.operation
    options = operation_options(operation, args)
    invocation = await operation.call(client, args.invocation_id, **options)
    if out.json:
        out.document(fmt.message_to_json(invocation))
        return 0
    out.console.print(fmt.operation_headline(operation.verb, args.invocation_id, invocation))
    out.console.print(fmt.invocation_details(invocation, _now()))
    return 0


async def audit_ls(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl audit ls`: operator requests, newest first, up to --limit."""
    entries: list[control_pb2.AuditEntry] = []
    token: str | None = None
    while True:
        page, token = await client.list_audit_entries(
            invocation_id=args.invocation,
            page_size=min(args.limit - len(entries), _MAX_PAGE),
            page_token=token,
        )
        entries += page
        if token is None or len(entries) >= args.limit:
            break
    more = token is not None or len(entries) > args.limit
    entries = entries[: args.limit]
    if out.json:
        out.document({"entries": [fmt.message_to_json(e) for e in entries]})
        return 0
    if not entries:
        out.note("no audit entries match")
        return 0
    out.console.print(fmt.audit_table(entries, _now()))
    if more:
        out.note(f"showing the newest {args.limit}; there are more (raise --limit)")
    return 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
