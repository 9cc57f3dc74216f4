"""The safe default: without auth the server serves loopback only, unless told otherwise;
and TLS options that cannot work are refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoctl_server.config import Config, ConfigError, check_exposure, parse_args

LOOPBACK = ["127.0.0.1:9090", "127.0.0.1:0", "127.5.6.7:9090", "[::1]:9090", "localhost:9090"]
REMOTE = ["0.0.0.0:9090", "[::]:9090", "192.0.2.1:9090", "[2001:db8::1]:9090", "example.com:9090"]


@pytest.mark.parametrize("listen", LOOPBACK)
def test_loopback_needs_no_auth(listen: str) -> None:
    check_exposure(Config(listen=listen), auth=False)


@pytest.mark.parametrize("listen", REMOTE)
def test_anything_else_without_auth_is_refused_with_a_way_out(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_exposure(Config(listen=listen), auth=False)
    message = str(refused.value)
    assert listen in message
    assert "--insecure-allow-remote" in message
    assert "--auth-tokens-file" in message


@pytest.mark.parametrize("listen", REMOTE)
def test_anything_else_is_allowed_with_auth(listen: str) -> None:
    check_exposure(Config(listen=listen), auth=True)


@pytest.mark.parametrize("listen", REMOTE)
def test_anything_else_is_allowed_when_insecure_remote_is_asked_for(listen: str) -> None:
    check_exposure(Config(listen=listen, insecure_allow_remote=True), auth=False)


@pytest.mark.parametrize(
    "tls",
    [
        {"tls_cert": Path("server.pem")},
        {"tls_key": Path("server.key")},
        {"tls_client_ca": Path("ca.pem")},
        {"tls_key": Path("server.key"), "tls_client_ca": Path("ca.pem")},
    ],
)
def test_incomplete_tls_is_refused(tls: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="--tls-"):
        check_exposure(Config(**tls), auth=False)


def test_complete_tls_is_accepted() -> None:
    check_exposure(Config(tls_cert=Path("s.pem"), tls_key=Path("s.key")), auth=False)
    check_exposure(
        Config(tls_cert=Path("s.pem"), tls_key=Path("s.key"), tls_client_ca=Path("ca.pem")),
        auth=False,
    )


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INSECURE_ALLOW_REMOTE", "TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"):
        monkeypatch.delenv(f"INVOCTL_{name}", raising=False)
    assert parse_args([]).listen == "127.0.0.1:9090"
    assert parse_args([]).insecure_allow_remote is False
    flags = parse_args(
        ["--insecure-allow-remote", "--tls-cert", "c.pem", "--tls-key", "k.pem",
         "--tls-client-ca", "ca.pem"]
    )  # fmt: skip
    assert flags.insecure_allow_remote is True
    assert (flags.tls_cert, flags.tls_key) == (Path("c.pem"), Path("k.pem"))
    assert flags.tls_client_ca == Path("ca.pem")
    monkeypatch.setenv("INVOCTL_INSECURE_ALLOW_REMOTE", "1")
    monkeypatch.setenv("INVOCTL_TLS_CERT", "/e/c.pem")
    monkeypatch.setenv("INVOCTL_TLS_KEY", "/e/k.pem")
    env = parse_args([])
    assert env.insecure_allow_remote is True
    assert (env.tls_cert, env.tls_key) == (Path("/e/c.pem"), Path("/e/k.pem"))
    assert env.tls_client_ca is None


@pytest.mark.parametrize("metrics", LOOPBACK)
def test_metrics_on_loopback_need_nothing(metrics: str) -> None:
    check_exposure(Config(metrics_listen=metrics), auth=False)


@pytest.mark.parametrize("metrics", REMOTE)
def test_remote_metrics_are_refused_even_with_auth(metrics: str) -> None:
    # The metrics endpoint has no auth of its own: tokens on gRPC do not cover it.
    for auth in (False, True):
        with pytest.raises(ConfigError) as refused:
            check_exposure(Config(metrics_listen=metrics), auth=auth)
        assert metrics in str(refused.value) and "--insecure-allow-remote" in str(refused.value)
    check_exposure(Config(metrics_listen=metrics, insecure_allow_remote=True), auth=False)


@pytest.mark.parametrize("metrics", ["9464", ":9464", "127.0.0.1:", "127.0.0.1:http"])
def test_a_metrics_address_needs_host_and_port(metrics: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        check_exposure(Config(metrics_listen=metrics), auth=False)


def test_metrics_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METRICS_LISTEN", "METRICS_REFRESH_SECONDS"):
        monkeypatch.delenv(f"INVOCTL_{name}", raising=False)
    assert (parse_args([]).metrics_listen, parse_args([]).metrics_refresh) == (None, 5.0)
    flags = parse_args(["--metrics-listen", "127.0.0.1:9464", "--metrics-refresh-seconds", "30"])
    assert (flags.metrics_listen, flags.metrics_refresh) == ("127.0.0.1:9464", 30.0)
    monkeypatch.setenv("INVOCTL_METRICS_LISTEN", "[::1]:9464")
    monkeypatch.setenv("INVOCTL_METRICS_REFRESH_SECONDS", "1.5")
    env = parse_args([])
    assert (env.metrics_listen, env.metrics_refresh) == ("[::1]:9464", 1.5)
    monkeypatch.setenv("INVOCTL_METRICS_LISTEN", "")
    assert parse_args([]).metrics_listen is None


@pytest.mark.parametrize("listen", LOOPBACK)
def test_http_on_loopback_needs_no_auth(listen: str) -> None:
    check_exposure(Config(http_listen=listen), auth=False)


@pytest.mark.parametrize("listen", REMOTE)
def test_http_elsewhere_is_refused_without_auth_as_grpc_is(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_exposure(Config(http_listen=listen), auth=False)
    assert listen in str(refused.value) and "--http-listen off" in str(refused.value)
    check_exposure(Config(http_listen=listen), auth=True)
    check_exposure(Config(http_listen=listen, insecure_allow_remote=True), auth=False)


@pytest.mark.parametrize("listen", ["9070", "host:", "host:port", ":"])
def test_a_malformed_http_address_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError, match="--http-listen"):
        check_exposure(Config(http_listen=listen), auth=False)


def test_http_listen_defaults_to_restates_admin_port_and_turns_off(monkeypatch) -> None:
    monkeypatch.delenv("INVOCTL_HTTP_LISTEN", raising=False)
    monkeypatch.delenv("INVOCTL_HTTP_CORS_ORIGIN", raising=False)
    assert parse_args([]).http_listen == "127.0.0.1:9070"
    assert parse_args([]).http_cors_origins == ()
    assert parse_args(["--http-listen", "off"]).http_listen is None
    monkeypatch.setenv("INVOCTL_HTTP_LISTEN", "127.0.0.1:9171")
    assert parse_args([]).http_listen == "127.0.0.1:9171"
    monkeypatch.setenv("INVOCTL_HTTP_LISTEN", "off")
    assert parse_args([]).http_listen is None
    monkeypatch.setenv("INVOCTL_HTTP_CORS_ORIGIN", "https://a.example, https://b.example")
    assert parse_args([]).http_cors_origins == ("https://a.example", "https://b.example")
    flags = ["--http-cors-origin", "https://c.example", "--http-cors-origin", "https://d.example"]
    assert parse_args(flags).http_cors_origins == ("https://c.example", "https://d.example")


@pytest.mark.parametrize("limit", [0, -1, 128 * 1024 * 1024 + 1, 2**31])
def test_a_payload_limit_the_channels_cannot_carry_is_refused(limit: int) -> None:
    from invoctl_server.config import check_limits

    with pytest.raises(ConfigError, match="--max-payload-bytes"):
        check_limits(Config(max_payload_bytes=limit))


def test_the_server_reads_messages_far_larger_than_a_payload() -> None:
    from invoctl_server.config import check_limits

    for limit in (1, 1024 * 1024, 8 * 1024 * 1024, 128 * 1024 * 1024):
        config = Config(max_payload_bytes=limit)
        check_limits(config)
        # An input and its headers, JSON-escaped, fit; gRPC's 32-bit length holds it.
        assert 6 * limit < config.max_message_bytes < 2**31


def test_the_bulk_page_size_is_a_flag_and_a_variable(monkeypatch) -> None:
    assert parse_args([]).bulk_page_size == 1000
    assert parse_args(["--bulk-page-size", "250"]).bulk_page_size == 250
    monkeypatch.setenv("INVOCTL_BULK_PAGE_SIZE", "40")
    assert parse_args([]).bulk_page_size == 40


@pytest.mark.parametrize("size", [0, -5, 10_001])
def test_a_bulk_page_size_out_of_range_is_refused(size: int) -> None:
    from invoctl_server.config import check_limits

    with pytest.raises(ConfigError, match="--bulk-page-size"):
        check_limits(Config(bulk_page_size=size))
