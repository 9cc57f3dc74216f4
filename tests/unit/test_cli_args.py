"""Command-line parsing: globals, serve delegation, and argument validation."""

import sys

import pytest

from invoctl.cli.main import _serve_args, build_parser, main
from invoctl.v1 import invocation_pb2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve"], []),
        (["serve", "--listen", "127.0.0.1:0", "--help"], ["--listen", "127.0.0.1:0", "--help"]),
        (["--server", "h:1", "--json", "serve", "--data-dir", "/d"], ["--data-dir", "/d"]),
        (["--server=h:1", "serve", "--", "x"], ["--", "x"]),
        (["invocations", "ls"], None),
        (["invoke", "serve/x"], None),
        (["--server", "serve", "invocations", "ls"], None),  # "serve" is the address here
        ([], None),
    ],
)
def test_serve_args(argv: list[str], expected: list[str] | None) -> None:
    assert _serve_args(argv) == expected


def test_global_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--server", "h:1", "--json", "invocations", "ls"])
    after = parser.parse_args(["invocations", "ls", "--server", "h:1", "--json"])
    for args in (before, after):
        assert (args.server, args.json) == ("h:1", True)


def test_server_defaults_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCTL_SERVER", "env-host:7")
    assert build_parser().parse_args(["deployments", "ls"]).server == "env-host:7"
    monkeypatch.delenv("INVOCTL_SERVER")
    assert build_parser().parse_args(["deployments", "ls"]).server == "127.0.0.1:9090"


def test_states_accumulate_and_parse() -> None:
    args = build_parser().parse_args(
        ["invocations", "ls", "--state", "suspended", "backing-off", "--state", "PAUSED"]
    )
    assert args.state == [
        invocation_pb2.INVOCATION_STATE_SUSPENDED,
        invocation_pb2.INVOCATION_STATE_BACKING_OFF,
        invocation_pb2.INVOCATION_STATE_PAUSED,
    ]
    assert args.limit == 50


def test_invoke_arguments() -> None:
    args = build_parser().parse_args(
        [
            "invoke",
            "CartObject/cart55/add",
            '{"sku": 1}',
            "--send",
            "--delay",
            "1.5",
            "--header",
            "x-a=1=2",
            "--idempotency-key",
            "k1",
        ]
    )
    assert tuple(args.target) == ("CartObject", "cart55", "add")
    assert args.input == {"sku": 1}
    assert (args.send, args.delay, args.idempotency_key) == (True, 1.5, "k1")
    assert args.header == [("x-a", "1=2")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invocations", "ls", "--state", "asleep"], "unknown state 'asleep'"),
        (["invocations", "ls", "--limit", "0"], "positive integer"),
        (["invoke", "Greeter"], "invalid target"),
        (["invoke", "Greeter/greet", "Ada"], "not valid JSON"),
        (["invoke", "Greeter/greet", "--header", "novalue"], "NAME=VALUE"),
        (["invoke", "Greeter/greet", "--send", "--delay", "-1"], "seconds >= 0"),
        (["invoke", "Greeter/greet", "--delay", "3"], "--delay needs --send"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_version_prints_the_installed_package_version(capsys) -> None:
    import importlib.metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"invoctl {importlib.metadata.version('invoctl')}\n"
    assert main(["--server", "h:1", "--version"]) == 0  # not taken for a command
    assert capsys.readouterr().out.startswith("invoctl ")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "invocations" in capsys.readouterr().out


def test_serve_without_the_server_says_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in an environment with the invoctl distribution alone (the fresh-venv test in
    # tests/e2e/test_client_distribution.py checks the real one): the import fails.
    monkeypatch.setitem(sys.modules, "invoctl_server.__main__", None)
    assert main(["serve", "--listen", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err
    assert "invoctl serve needs the server" in err
    assert "invoctl-server" in err
