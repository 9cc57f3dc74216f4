"""The CLI's --token and TLS options: global like --server, with INVOCTL_* defaults."""

from __future__ import annotations

import pytest

from invoctl.cli.main import _serve_args, build_parser, main

NAMES = ("INVOCTL_TOKEN", "INVOCTL_TLS_CA", "INVOCTL_TLS_CERT", "INVOCTL_TLS_KEY")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_options_work_before_and_after_the_command() -> None:
    given = ["--token", "t", "--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "k.pem"]
    parser = build_parser()
    for argv in (["deployments", "ls", *given], [*given, "deployments", "ls"]):
        args = parser.parse_args(argv)
        assert (args.token, args.tls_ca, args.tls_cert, args.tls_key) == (
            "t",
            "ca.pem",
            "c.pem",
            "k.pem",
        )


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["deployments", "ls"])
    assert (args.token, args.tls_ca, args.tls_cert, args.tls_key) == (None, None, None, None)
    for name in NAMES:
        monkeypatch.setenv(name, name.lower())
    args = build_parser().parse_args(["deployments", "ls"])
    assert (args.token, args.tls_ca, args.tls_cert, args.tls_key) == (
        "invoctl_token",
        "invoctl_tls_ca",
        "invoctl_tls_cert",
        "invoctl_tls_key",
    )


def test_the_help_does_not_show_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVOCTL_TOKEN", "s3cret-value")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--token" in out and "--tls-ca" in out
    assert "s3cret-value" not in out


def test_serve_is_found_after_options_with_values() -> None:
    assert _serve_args(["--token", "serve", "serve", "--listen", "x"]) == ["--listen", "x"]
    assert _serve_args(["--tls-ca", "serve", "invocations", "ls"]) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--tls-cert", "c.pem", "deployments", "ls"],
        ["--tls-key", "k.pem", "deployments", "ls"],
    ],
)
def test_a_certificate_without_its_key_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_an_unreadable_pem_file_is_a_usage_error(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--tls-ca", str(tmp_path / "nope.pem"), "deployments", "ls"]) == 2
    err = capsys.readouterr().err
    assert "TLS:" in err and "nope.pem" in err
