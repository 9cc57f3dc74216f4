"""The operator commands: their arguments, the options they pass, and how results read."""

import pytest

from invoctl.cli import _format as fmt
from invoctl.cli._operations import OPERATIONS, operation_options
from invoctl.cli.main import build_parser, main
from invoctl.client import Client
from invoctl.v1 import control_pb2, invocation_pb2
from tests.unit._cli import NOW, render, ts

COMPLETED = invocation_pb2.INVOCATION_STATE_COMPLETED


def _options(*argv: str) -> tuple[str, dict[str, object]]:
    args = build_parser().parse_args(["invocations", *argv])
    return args.invocation_id, operation_options(args.operation, args)


@pytest.mark.parametrize(
    "command", ["cancel", "kill", "pause", "resume", "purge", "purge-journal", "restart-as-new"]
)
def test_every_operation_takes_an_id_a_reason_and_a_request_id(command: str) -> None:
    invocation_id, options = _options(command, "inv_1", "--reason", "stuck", "--request-id", "r1")
    assert invocation_id == "inv_1"
    assert (options["reason"], options["request_id"]) == ("stuck", "r1")


def test_unset_options_are_left_to_the_server_defaults() -> None:
    assert _options("kill", "inv_1")[1] == {"reason": None, "request_id": None}
    assert _options("resume", "inv_1")[1]["deployment"] is None
    restart = _options("restart-as-new", "inv_1")[1]
    assert (restart["from_entry"], restart["deployment"]) == (0, None)


@pytest.mark.parametrize("deployment", ["keep", "latest", "dp_7x"])
def test_resume_takes_a_deployment(deployment: str) -> None:
    assert _options("resume", "inv_1", "--deployment", deployment)[1]["deployment"] == deployment


def test_restart_takes_a_prefix_and_a_deployment() -> None:
    options = _options("restart-as-new", "inv_1", "--from", "3", "--deployment", "keep")[1]
    assert (options["from_entry"], options["deployment"]) == (3, "keep")


def test_each_command_calls_its_client_method() -> None:
    calls = {op.command: op.call for op in OPERATIONS}
    assert calls["purge-journal"] is Client.purge_journal
    assert calls["restart-as-new"] is Client.restart_invocation_as_new


def test_audit_ls_arguments() -> None:
    args = build_parser().parse_args(["audit", "ls", "--invocation", "inv_1", "--limit", "5"])
    assert (args.invocation, args.limit) == ("inv_1", 5)
    assert build_parser().parse_args(["audit", "ls"]).invocation is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invocations", "resume", "inv_1", "--deployment", "newest"], "expected keep, latest"),
        (["invocations", "resume", "inv_1", "--deployment", "dp_"], "expected keep, latest"),
        (["invocations", "restart-as-new", "inv_1", "--from", "-1"], "integer >= 0"),
        (["invocations", "restart-as-new", "inv_1", "--from", "two"], "integer >= 0"),
        (["invocations", "kill", "inv_1", "--deployment", "latest"], "unrecognized"),
        (["invocations", "pause", "inv_1", "--from", "1"], "unrecognized"),
        (["invocations", "kill"], "required"),
        (["audit", "ls", "--limit", "0"], "positive integer"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_headline_names_the_invocation_and_its_state() -> None:
    killed = invocation_pb2.Invocation(
        id="inv_1", state=COMPLETED, outcome=invocation_pb2.OUTCOME_KILLED
    )
    assert fmt.operation_headline("killed", "inv_1", killed).plain == (
        "killed inv_1  completed (killed)"
    )


def test_headline_of_a_restart_ends_with_the_new_id_in_bold() -> None:
    new = invocation_pb2.Invocation(id="inv_2", state=invocation_pb2.INVOCATION_STATE_READY)
    line = fmt.operation_headline("restarted", "inv_1", new)
    assert line.plain == "restarted inv_1 as inv_2  ready"
    [bold] = [line.plain[s.start : s.end] for s in line.spans if s.style == "bold"]
    assert bold == "inv_2"


def test_audit_table() -> None:
    entries = [
        control_pb2.AuditEntry(
            id=2,
            at=ts(-60),
            identity="alice",
            operation="RestartInvocationAsNew",
            invocation_id="inv_1",
            new_invocation_id="inv_2",
            reason="[fix] deployed",
            result="OK",
            state_after=invocation_pb2.INVOCATION_STATE_READY,
        ),
        control_pb2.AuditEntry(
            id=1,
            at=ts(-120),
            identity="anonymous",
            operation="PauseInvocation",
            invocation_id="inv_1",
            result="INVALID_TRANSITION",
        ),
    ]
    text = render(fmt.audit_table(entries, NOW))
    for expected in (
        "TIME",
        "IDENTITY",
        "REASON",
        "2025-03-01 11:59:00Z (1m ago)",
        "alice",
        "RestartInvocationAsNew",
        "inv_1 -> inv_2",
        "[fix] deployed",  # user text is never read as rich markup
        "OK (ready)",
        "INVALID_TRANSITION",
    ):
        assert expected in text
