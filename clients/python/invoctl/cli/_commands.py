"""One async function per CLI command: call the client, then print a table or JSON.

Each takes the connected client, the parsed arguments and the output, and returns the
exit code. Errors are raised, never printed here: `main` owns their presentation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shlex
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from invoctl.client import Client, invoke_request, output_of
from invoctl.v1 import ingress_pb2, invocation_pb2

from . import _format as fmt
from . import _hints

__all__ = [
    "Output",
    "deployments_ls",
    "invocations_attach",
    "invocations_get",
    "invocations_journal",
    "invocations_ls",
    "invoke",
    "wait_completed",
]

# ListInvocations caps a page at 1000 (control.proto).
_MAX_PAGE = 1000
# Wide enough that piped tables never wrap; tables are only as wide as their content.
_PIPE_WIDTH = 10_000
# How often a waiting call reads its invocation to show its state: often enough that a
# retrying handler is visible at once, rarely enough to cost the server nothing.
WAIT_POLL_SECONDS = 1.0


@dataclass
class Output:
    """Where and how a command prints: rich tables for people, one JSON document for scripts."""

    json: bool = False
    console: Console = field(default_factory=lambda: _console())
    err: Console = field(default_factory=lambda: _console(stderr=True))

    def document(self, document: object) -> None:
        """Print the command's one JSON document, unwrapped (rich would fold long lines)."""
        sys.stdout.write(fmt.dumps_json(document) + "\n")

    def note(self, text: str) -> None:
        """A hint for people, on stderr so it never mixes with the data on stdout."""
        self.err.print(Text(text, style="dim"))


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        # Piped: rich would fold tables to 80 columns; one row per line keeps grep working.
        console = Console(stderr=stderr, width=_PIPE_WIDTH)
    return console


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def invocations_ls(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations ls`: matching invocations, newest first, up to --limit (or --all).

    When more match, it says how to see the next page: the same command with
    `--page-token`, which goes on after the last invocation shown.
    """
    invocations: list[invocation_pb2.Invocation] = []
    token: str | None = args.page_token
    limit = None if args.all else args.limit
    while True:
        wanted = _MAX_PAGE if limit is None else min(limit - len(invocations), _MAX_PAGE)
        page, token = await client.list_invocations(
            service=args.service,
            handler=args.handler,
            key=args.key,
            states=args.state,
            deployment_id=args.deployment,
            outcome=args.outcome,
            created_before=args.created_before,
            created_after=args.created_after,
            idempotency_key=args.idempotency_key,
            page_size=wanted,
            page_token=token,
        )
        invocations += page
        if token is None or (limit is not None and len(invocations) >= limit):
            break
    # Each page asked for no more than was left, so `token` follows the last one shown.
    if out.json:
        out.document(
            {
                "invocations": [fmt.message_to_json(i) for i in invocations],
                "nextPageToken": token or "",
            }
        )
        return 0
    if not invocations:
        out.note("no invocations match")
        return 0
    out.console.print(fmt.invocations_table(invocations, _now(), out.console.width), crop=False)
    if token is not None:
        # The token is left out: a hint must not print a secret back.
        argv = _without_option(getattr(args, "argv", None) or [], "--page-token")
        argv = _without_option(argv, "--token")
        next_page = shlex.join(["invoctl", *argv, "--page-token", token])
        out.note(f"showing {len(invocations)}; more match. Next page: {next_page}")
        out.note("(or --all for every match, or a larger --limit)")
    return 0


def _without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option` and its value (either `--opt V` or `--opt=V`)."""
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == option:
            skip = True
        elif not word.startswith(option + "="):
            kept.append(word)
    return kept


async def invocations_get(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations get ID`: every field of one invocation."""
    invocation = await client.get_invocation(args.invocation_id)
    if out.json:
        out.document(fmt.message_to_json(invocation))
    else:
        out.console.print(fmt.invocation_details(invocation, _now()))
    return 0


async def invocations_journal(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations journal ID`: the journal entries and the transition history."""
    response = await client.get_journal(args.invocation_id)
    if out.json:
        out.document(fmt.message_to_json(response))
        return 0
    now = _now()
    inv = response.invocation
    out.console.print(Text.assemble((inv.id, "bold"), "  ", inv.target, "  ", fmt.state_text(inv)))
    out.console.print()
    out.console.print(fmt.entries_table(response, now))
    out.console.print()
    out.console.print(fmt.transitions_table(response, now))
    return 0


async def deployments_ls(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl deployments ls`: registered deployments, newest first."""
    deployments = await client.list_deployments(service=args.service)
    if out.json:
        out.document({"deployments": [fmt.message_to_json(d) for d in deployments]})
    elif deployments:
        out.console.print(fmt.deployments_table(deployments, _now()))
    else:
        out.note("no deployments registered")
    return 0


async def invoke(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invoke TARGET [JSON]`: call (print the output) or send (print the ID).

    A call is sent, then attached to: the ID is known at once, so it goes to stderr
    before the wait, the state shows while the handler retries, and Ctrl-C can say how
    to find the invocation again. The server runs a send and a call alike; only the
    waiting differs.
    """
    service, key, handler = args.target
    request = invoke_request(
        service,
        handler,
        args.input,
        key=key,
        headers=dict(args.header),
        idempotency_key=args.idempotency_key,
        send=True,
        delay=args.delay,
    )
    try:
        response = await client.invoke_raw(request)
    except asyncio.CancelledError:
        if not args.send:
            print(
                "interrupted before the server answered: the invocation may have started "
                f"(see {_hints.command(args, 'invocations', 'ls', '--service', service)})",
                file=sys.stderr,
            )
        raise
    if args.send:
        if out.json:
            out.document(fmt.message_to_json(response))
        else:
            _print_sent(response, out)
        return 0
    inv_id = response.invocation_id
    existing = " (an existing invocation: idempotency key matched)" if response.deduplicated else ""
    out.note(f"{inv_id}{existing}: waiting for its result; Ctrl-C stops waiting, not it")
    invocation = await wait_completed(client, args, out, response.invocation)
    # Print the whole response for scripts before judging the outcome, so a failed
    # call still yields its document (with the failure) and exit code 1.
    if out.json:
        response.invocation.CopyFrom(invocation)
        out.document(fmt.message_to_json(response))
    value = output_of(invocation)  # InvocationFailed: main reports it, exit 1
    if not out.json:
        out.document(value)
    return 0


async def invocations_attach(client: Client, args: argparse.Namespace, out: Output) -> int:
    """`invoctl invocations attach ID`: wait for it to complete, then print as `invoke`."""
    invocation = await client.get_invocation(args.invocation_id)
    invocation = await wait_completed(client, args, out, invocation)
    if out.json:
        document = ingress_pb2.AttachResponse(invocation=invocation)
        out.document(fmt.message_to_json(document))
    value = output_of(invocation)  # InvocationFailed: main reports it, exit 1
    if not out.json:
        out.document(value)
    return 0


async def wait_completed(
    client: Client,
    args: argparse.Namespace,
    out: Output,
    invocation: invocation_pb2.Invocation,
) -> invocation_pb2.Invocation:
    """Attach until the invocation completes, showing on stderr each change of its state,
    attempt count or last failure (a handler that keeps failing is not a silent hang).

    Ctrl-C (a cancellation) prints how to attach again, cancel or kill it, and goes on
    to `main` (exit 130). The invocation itself is left running.
    """
    inv_id = invocation.id
    attach = asyncio.ensure_future(client.attach(inv_id))
    last = invocation
    shown = fmt.waiting_key(invocation)
    try:
        while True:
            done, _ = await asyncio.wait({attach}, timeout=WAIT_POLL_SECONDS)
            if done:
                return attach.result()
            last = await client.get_invocation(inv_id)
            if last.state == invocation_pb2.INVOCATION_STATE_COMPLETED:
                continue  # attach answers at once now, with the same row
            if fmt.waiting_key(last) != shown:
                shown = fmt.waiting_key(last)
                out.err.print(fmt.waiting_line(last, _now()), soft_wrap=True)
    except asyncio.CancelledError:
        _left_running(args, last)
        raise
    finally:
        attach.cancel()
        if attach.done() and not attach.cancelled():
            attach.exception()  # a failure the poll reported first: retrieved, not logged


def _left_running(args: argparse.Namespace, invocation: invocation_pb2.Invocation) -> None:
    inv_id = invocation.id
    state = fmt.state_text(invocation).plain
    lines = [
        f"interrupted: {inv_id} goes on ({state}, attempt {invocation.attempt_count}); "
        "it was not cancelled",
        f"  wait for its result: {_hints.command(args, 'invocations', 'attach', inv_id)}",
        f"  cancel it:           {_hints.command(args, 'invocations', 'cancel', inv_id)}",
        f"  kill it:             {_hints.command(args, 'invocations', 'kill', inv_id)}",
    ]
    # Plain print: the state line is already on stderr, and rich is not needed here.
    print("\n".join(lines), file=sys.stderr)


def _print_sent(response: ingress_pb2.InvokeResponse, out: Output) -> None:
    inv = response.invocation
    line = Text.assemble(("sent ", "green"), (response.invocation_id, "bold"))
    if inv.id:
        line.append("  ")
        line.append_text(fmt.state_text(inv))
        run_at = fmt.format_time(inv.run_at, _now())
        if run_at:
            line.append(f"  runs at {run_at}")
    if response.deduplicated:
        line.append("  (existing invocation: idempotency key matched)", style="yellow")
    out.console.print(line)
