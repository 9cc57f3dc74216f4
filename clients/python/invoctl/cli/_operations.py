"""The operator commands: `invoctl invocations cancel|kill|pause|...` and `invoctl audit ls`.

One table (`OPERATIONS`) describes every single-invocation operation, so the parser,
the help and the command share one list; one command function runs any of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from invoctl.client import Client, InvoctlError
from invoctl.v1 import control_pb2, invocation_pb2

from . import _format as fmt
from ._commands import Output

__all__ = [
    "OPERATIONS",
    "Operation",
    "SplitIds",
    "audit_ls",
    "ids_problem",
    "invocations_operate",
    "operation_options",
]

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


#: The `argparse` destinations of the flags that narrow a bulk selector.
SELECTOR_FLAGS = (
    "service",
    "handler",
    "key",
    "state",
    "deployment_id",
    "created_before",
    "created_after",
    "ids",
)
# The flags that make an operation a bulk one; several IDs are acted on one by one.
_BULK_ONLY = (*SELECTOR_FLAGS, "dry_run", "max_per_second")


class SplitIds(argparse.Action):
    """The positional IDs of an operation: one goes to `invocation_id` (an ID or a
    query, as before several were allowed), several to `invocation_ids` (in the order
    given, each once) with `invocation_id` None. `ids_problem` checks them."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = [v.strip() for v in values or ()]
        if len(given) <= 1:
            namespace.invocation_id = given[0] if given else None
            namespace.invocation_ids = []
        else:
            namespace.invocation_id = None
            namespace.invocation_ids = list(dict.fromkeys(given))


def ids_problem(args: argparse.Namespace) -> str | None:
    """A usage problem with several positional arguments, or None: they must all be
    IDs, and are not mixed with the flags of a bulk operation (which acts on a
    selector, not on a list)."""
    operation = getattr(args, "operation", None)
    ids = getattr(args, "invocation_ids", None)
    if operation is None or not ids:
        return None
    command = f"invocations {operation.command}"
    not_ids = [a for a in ids if not a.startswith("inv_")]
    if not_ids:
        return (
            f"{command}: {not_ids[0]!r} is not an invocation ID; give several IDs "
            "(inv_...), or one QUERY"
        )
    if any(getattr(args, flag, None) for flag in _BULK_ONLY):
        return (
            f"{command}: several IDs are acted on one by one, without selector flags, "
            "--dry-run or --max-per-second; for one bulk operation on them, give each "
            "with --id"
        )
    return None


async def invocations_operate(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations cancel|kill|pause|resume|purge|purge-journal|restart-as-new ID...`.

    Prints the resulting invocation: for a restart, the new one.
    """
    if getattr(args, "invocation_ids", None):
        return await _operate_each(client, args, out)
    operation: Operation = args.operation
    options = operation_options(operation, args)
    invocation = await operation.call(client, args.invocation_id, **options)
    if out.json:
        out.document(fmt.message_to_json(invocation))
        return 0
    out.console.print(fmt.operation_headline(operation.verb, args.invocation_id, invocation))
    out.console.print(fmt.invocation_details(invocation, _now()))
    return 0


async def _operate_each(client: Client, args: argparse.Namespace, out: Output) -> int:
    """Several IDs: one request each, in the order given, a line each; exit 1 if any
    failed. As Restate's CLI does: one refusal does not stop the others.

    A `--request-id` R becomes `R:ID` per invocation, so that a retry of the whole
    command is still a no-op for each, and one ID's first answer is not returned for
    another's.
    """
    operation: Operation = args.operation
    results: list[dict[str, Any]] = []
    failed = 0
    for inv_id in args.invocation_ids:
        options = operation_options(operation, args)
        if args.request_id:
            options["request_id"] = f"{args.request_id}:{inv_id}"
        try:
            invocation = await operation.call(client, inv_id, **options)
        except InvoctlError as err:
            failed += 1
            results.append(
                {
                    "invocationId": inv_id,
                    "error": {
                        "code": err.code.name,
                        "reason": err.reason,
                        "message": err.message,
                        "metadata": err.metadata,
                    },
                }
            )
            if not out.json:
                print(f"error: {inv_id}: {err}", file=sys.stderr)
            continue
        results.append({"invocationId": inv_id, "invocation": fmt.message_to_json(invocation)})
        if not out.json:
            out.console.print(fmt.operation_headline(operation.verb, inv_id, invocation))
    if out.json:
        out.document({"results": results})
    elif failed:
        print(
            f"{failed} of {len(args.invocation_ids)} failed; the others were {operation.verb}",
            file=sys.stderr,
        )
    return 1 if failed else 0


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
    out.console.print(fmt.audit_table(entries, _now(), out.console.width), crop=False)
    if more:
        out.note(f"showing the newest {args.limit}; there are more (raise --limit)")
    return 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
