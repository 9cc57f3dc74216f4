"""The `invoctl` command line: argument parsing, dispatch, and error presentation.

Exit codes: 0 success, 1 a failed request or invocation (or a bulk operation with
failures, or stopped), 2 bad usage (or a bulk operation without --yes and without a
terminal to ask on), 130 interrupted.
Errors are one line on stderr (`error: NOT_FOUND (INVOCATION_NOT_FOUND): ...`), never a
stack trace: the reason is what an operator searches for.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import math
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from invoctl.client import (
    DEFAULT_ADDRESS,
    OUTCOME_NAMES,
    STATE_NAMES,
    Client,
    InvocationFailed,
    InvoctlError,
    ParsedTarget,
    parse_outcome,
    parse_state,
    parse_target,
    tls_credentials,
)
from invoctl.v1 import invocation_pb2

from . import _bulk, _commands, _hints, _operations
from ._commands import Output

__all__ = ["build_parser", "main"]

Command = Callable[[Client, argparse.Namespace, Output], Awaitable[int]]

# Global options that take a value; `serve` detection must skip their values.
_GLOBAL_OPTIONS_WITH_VALUE = frozenset(
    {"--server", "--token", "--tls-ca", "--tls-cert", "--tls-key"}
)


# -- argument types: a bad value is a usage error (exit 2) naming the argument ----------


def _state(text: str) -> invocation_pb2.InvocationState.ValueType:
    try:
        return parse_state(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r} (choose from {', '.join(STATE_NAMES)})"
        ) from None


def _outcome(text: str) -> invocation_pb2.Outcome.ValueType:
    try:
        return parse_outcome(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown outcome {text!r} (choose from {', '.join(OUTCOME_NAMES)})"
        ) from None


def _target(text: str) -> ParsedTarget:
    try:
        return parse_target(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({err}); quote strings, e.g. '\"Ada\"'"
        ) from None


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return seconds


def _non_negative_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return number


def _deployment(text: str) -> str:
    # Checked here so a typo is a usage error, not a NOT_FOUND from the server.
    if text in ("keep", "latest") or (text.startswith("dp_") and len(text) > 3):
        return text
    raise argparse.ArgumentTypeError(
        f"expected keep, latest or a deployment ID (dp_...), got {text!r}"
    )


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return number


def _datetime(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2025-03-01T12:00:00Z, got {text!r}"
        ) from None
    # Naive means UTC, as every time the server shows is: the local zone would make one
    # command select differently on two machines.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not (rate > 0 and math.isfinite(rate)):
        raise argparse.ArgumentTypeError(f"expected a number of invocations > 0, got {text!r}")
    return rate


def _bulk_state(text: str) -> int:
    try:
        return _bulk.LIST_STATES[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r} (choose from {', '.join(_bulk.LIST_STATES)})"
        ) from None


# -- the parser -----------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--server, --json, --token and the TLS options, accepted before and after the command.

    On subcommands the defaults are suppressed so that an option given before the
    command is not overwritten by the subcommand's default.
    """
    server_default = os.environ.get("INVOCTL_SERVER", DEFAULT_ADDRESS)
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS if suppress else server_default,
        help=f"server address (env INVOCTL_SERVER; now {server_default})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print one JSON document (proto3 JSON mapping) instead of tables",
    )

    def from_env(name: str) -> str | None:
        return argparse.SUPPRESS if suppress else os.environ.get(name) or None

    # The token's value is never shown in the help.
    parser.add_argument(
        "--token",
        default=from_env("INVOCTL_TOKEN"),
        help="bearer token for a server with auth (env INVOCTL_TOKEN, which keeps it "
        "out of the process list)",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        default=from_env("INVOCTL_TLS_CA"),
        help="connect with TLS, trusting this CA (env INVOCTL_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        default=from_env("INVOCTL_TLS_CERT"),
        help="client certificate for mutual TLS, with --tls-key (env INVOCTL_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        metavar="PEM",
        default=from_env("INVOCTL_TLS_KEY"),
        help="client private key for mutual TLS (env INVOCTL_TLS_KEY)",
    )


def _command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    run: Command,
    *,
    allow_abbrev: bool = True,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help=help_text, description=help_text, allow_abbrev=allow_abbrev
    )
    _global_options(parser, suppress=True)
    parser.set_defaults(run=run)
    return parser


def _group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)


def _version() -> str:
    """The installed package's version (what `pip show invoctl` says)."""
    try:
        return importlib.metadata.version("invoctl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def build_parser() -> argparse.ArgumentParser:
    """The full `invoctl` parser (`serve` is listed, but its arguments go to the server)."""
    parser = argparse.ArgumentParser(
        prog="invoctl", description="Durable invocations on Postgres: operate and invoke."
    )
    _global_options(parser, suppress=False)
    parser.add_argument(
        "--version", action="version", version=f"invoctl {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "serve",
        help="run the server, from the invoctl-server distribution (all further arguments "
        "go to it; see invoctl serve --help)",
        add_help=False,
    )

    invocations = _group(commands, "invocations", "inspect and operate on invocations")
    ls = _command(invocations, "ls", "list invocations, newest first", _commands.invocations_ls)
    _target_filters(ls)
    ls.add_argument("--deployment", metavar="DP", help="only invocations pinned to this deployment")
    ls.add_argument(
        "--outcome",
        type=_outcome,
        metavar="OUTCOME",
        help=f"only completed invocations with this outcome ({', '.join(OUTCOME_NAMES)})",
    )
    _created_filters(ls)
    ls.add_argument("--idempotency-key", metavar="K", help="only invocations started with key K")
    pages = ls.add_mutually_exclusive_group()
    pages.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="show at most N (default 50)"
    )
    pages.add_argument("--all", action="store_true", help="show every match, however many")
    ls.add_argument(
        "--page-token",
        metavar="TOKEN",
        help="go on after the last invocation an earlier ls showed (it prints the token)",
    )
    for name, help_text, run in (
        ("get", "show one invocation", _commands.invocations_get),
        ("journal", "show an invocation's journal and history", _commands.invocations_journal),
        (
            "attach",
            "wait for an invocation to complete and print its output, as invoke does",
            _commands.invocations_attach,
        ),
    ):
        sub = _command(invocations, name, help_text, run)
        sub.add_argument("invocation_id", metavar="ID", help="invocation ID (inv_...)")
    for operation in _operations.OPERATIONS:
        _operation_command(invocations, operation)

    audit = _group(commands, "audit", "inspect the audit log of operator requests")
    als = _command(audit, "ls", "list operator requests, newest first", _operations.audit_ls)
    als.add_argument("--invocation", metavar="ID", help="only requests about this invocation")
    als.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="show at most N (default 50)"
    )

    _bulk_commands(commands)

    deployments = _group(commands, "deployments", "inspect deployments")
    dls = _command(
        deployments,
        "ls",
        "list deployments, newest first: identity, services, the worker sessions connected"
        " now (or when one was last seen), and the not-completed invocations pinned to each"
        " (PINNED 0: drained)",
        _commands.deployments_ls,
    )
    dls.add_argument("--service", help="only deployments serving this service")

    invoke = _command(commands, "invoke", "call a handler and print its output", _commands.invoke)
    invoke.add_argument(
        "target", type=_target, metavar="TARGET", help="Service/handler or Object/key/handler"
    )
    invoke.add_argument(
        "input", type=_json_value, nargs="?", metavar="JSON", help="the argument, as JSON"
    )
    invoke.add_argument("--send", action="store_true", help="do not wait; print the invocation ID")
    invoke.add_argument(
        "--delay", type=_seconds, metavar="SECONDS", help="start later (with --send)"
    )
    invoke.add_argument("--idempotency-key", metavar="K", help="deduplicate on this key")
    invoke.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a header for the handler (repeatable)",
    )
    return parser


def _operation_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    operation: _operations.Operation,
) -> None:
    """`invoctl invocations <operation> ID|QUERY` with the options that operation takes."""
    bulk = _bulk.takes_query(operation)
    run = _bulk.invocations_operate if bulk else _operations.invocations_operate
    # No abbreviations where a selector can widen what is acted on: on kill, `--deployment`
    # would otherwise be taken for `--deployment-id`, a filter.
    sub = _command(subparsers, operation.command, operation.summary, run, allow_abbrev=not bulk)
    sub.set_defaults(operation=operation)
    # The destination stays invocation_id: one ID is still the common case. Several go
    # to invocation_ids (see _operations.SplitIds).
    sub.set_defaults(invocation_ids=[])
    if bulk:
        sub.add_argument(
            "invocation_id",
            action=_operations.SplitIds,
            nargs="*",
            metavar="ID|QUERY",
            help="invocation IDs (inv_...; each acted on and reported alone), or one "
            "query: every invocation of Service, Service/handler, Object/key or "
            "Object/key/handler",
        )
    else:
        sub.add_argument(
            "invocation_id",
            action=_operations.SplitIds,
            nargs="+",
            metavar="ID",
            help="invocation IDs (inv_...)",
        )
    sub.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    sub.add_argument(
        "--request-id",
        metavar="ID",
        help="makes a repeat of this request a no-op that returns the first result",
    )
    if operation.from_entry:
        sub.add_argument(
            "--from",
            dest="from_entry",
            type=_non_negative_int,
            default=0,
            metavar="N",
            help="replay the old journal's entries before N first (default 0: none)",
        )
    if operation.deployment:
        default = "latest" if operation.from_entry else "keep"
        sub.add_argument(
            "--deployment",
            type=_deployment,
            metavar="keep|latest|dp_...",
            help=f"the deployment to run on (default {default})",
        )
    if bulk:
        _selector_options(sub)


def _target_filters(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--service, --handler, --key and --state: the filters `ls` and bulk forms share."""
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--handler", help="only this handler")
    parser.add_argument("--key", help="only this object key")
    parser.add_argument(
        "--state",
        type=_state,
        nargs="+",
        action="extend",
        metavar="STATE",
        help=f"only these states ({', '.join(STATE_NAMES)})",
    )


def _created_filters(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--created-before and --created-after, as `ls` and the bulk forms share them."""
    parser.add_argument(
        "--created-before",
        type=_datetime,
        metavar="TIME",
        help="only invocations created before TIME (ISO 8601; UTC unless it names a zone)",
    )
    parser.add_argument(
        "--created-after",
        type=_datetime,
        metavar="TIME",
        help="only invocations created at or after TIME",
    )


def _selector_options(parser: argparse.ArgumentParser) -> None:
    """The flags of an operation's bulk form: a selector, the rate, and confirmation."""
    group = parser.add_argument_group(
        "acting on many invocations",
        "A QUERY other than one ID, or any of these flags, starts a bulk operation: it "
        "counts the matches, asks (--yes skips; refused without a terminal), then shows "
        "progress. Ctrl-C detaches; the operation goes on (invoctl bulk watch).",
    )
    _target_filters(group)
    group.add_argument(
        "--deployment-id", metavar="DP", help="only invocations pinned to this deployment"
    )
    _created_filters(group)
    group.add_argument(
        "--id",
        dest="ids",
        action="append",
        metavar="ID",
        help="only this invocation (repeatable)",
    )
    group.add_argument(
        "--max-per-second", type=_rate, metavar="N", help="act on at most N invocations a second"
    )
    group.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    group.add_argument(
        "--dry-run", action="store_true", help="print the count and a sample; change nothing"
    )


def _bulk_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`invoctl bulk ls|watch|stop`."""
    bulk = _group(commands, "bulk", "follow and stop bulk operations")
    ls = _command(bulk, "ls", "list bulk operations, newest first", _bulk.bulk_ls)
    ls.add_argument(
        "--state",
        type=_bulk_state,
        nargs="+",
        action="extend",
        metavar="STATE",
        help=f"only these states ({', '.join(_bulk.LIST_STATES)})",
    )
    ls.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="show at most N (default 50)"
    )
    for name, help_text, run in (
        ("watch", "show a bulk operation's progress until it ends", _bulk.bulk_watch),
        ("stop", "stop a running bulk operation after its current page", _bulk.bulk_stop),
    ):
        sub = _command(bulk, name, help_text, run)
        sub.add_argument("bulk_id", metavar="BULK_ID", help="bulk operation ID (bulk_...)")


def _serve_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after `serve` when it is the command, else None.

    `serve` is split off before argparse sees it: argparse would claim options such
    as `--help` and reorder or drop unknown ones, and every argument belongs to the
    server's own parser.
    """
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "serve":
            return list(argv[i + 1 :])
        if not token.startswith("-"):
            return None
        i += 2 if token in _GLOBAL_OPTIONS_WITH_VALUE else 1
    return None


def _serve(argv: list[str]) -> int:
    try:
        # Lazy, and in another distribution: the server (`invoctl-server`) pulls in asyncpg
        # and Postgres, which a worker or a client that installs `invoctl` alone never needs.
        from invoctl_server.__main__ import main as server_main
    except ImportError as err:
        if (err.name or "").partition(".")[0] == "invoctl_server":
            print(
                "error: invoctl serve needs the server, and this environment has only the "
                "client: install the invoctl-server distribution beside it (in a clone of "
                "the repository: make install, or pip install . at its top level)",
                file=sys.stderr,
            )
        else:
            print(f"error: cannot start the server: {err}", file=sys.stderr)
        return 1
    result = server_main(argv)
    return result if isinstance(result, int) else 0


# -- running --------------------------------------------------------------------------


def _report(message: str) -> None:
    # Plain print, not rich: messages contain user text such as `[TERMINAL]` that
    # rich would take for markup.
    print(f"error: {message}", file=sys.stderr)


def _uses_tls(args: argparse.Namespace) -> bool:
    return any((args.tls_ca, args.tls_cert, args.tls_key))


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials when a TLS option is given, else None (plaintext).

    Raises:
        ValueError: --tls-cert without --tls-key or the reverse.
        OSError: a PEM file cannot be read.
    """
    if not _uses_tls(args):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    return tls_credentials(args.tls_ca, args.tls_cert or None, args.tls_key or None)


async def _run(
    args: argparse.Namespace, out: Output, credentials: grpc.ChannelCredentials | None
) -> int:
    async with Client(args.server, token=args.token, credentials=credentials) as client:
        return await args.run(client, args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `invoctl` with `argv` (default `sys.argv[1:]`) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    serve_args = _serve_args(argv)
    if serve_args is not None:
        return _serve(serve_args)

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = argv  # for hints that repeat the command (`ls` next page)
        if args.command == "invoke" and args.delay is not None and not args.send:
            parser.error("--delay needs --send: only one-way sends can be delayed")
        problem = _operations.ids_problem(args) or _bulk.usage_problem(args)
        if problem:
            parser.error(problem)
        try:
            credentials = _credentials(args)
        except (ValueError, OSError) as err:
            parser.error(f"TLS: {err}")
    except SystemExit as exit_:  # argparse: --help (0) or bad usage (2)
        return exit_.code if isinstance(exit_.code, int) else 2

    try:
        return asyncio.run(_run(args, Output(json=args.json), credentials))
    except InvoctlError as err:
        _report(str(err))
        for hint in _hints.for_error(err, args):
            print(f"hint: {hint}", file=sys.stderr)
        return 1
    except InvocationFailed as err:
        _report(str(err))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
