"""Server configuration: command-line flags, with INVOCTL_* environment defaults."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import platformdirs


@dataclasses.dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:9090"
    # None: start an embedded Postgres under data_dir.
    database_url: str | None = None
    data_dir: Path = dataclasses.field(
        default_factory=lambda: Path(platformdirs.user_data_dir("invoctl"))
    )
    max_payload_bytes: int = 1024 * 1024
    # A running attempt whose worker has not heart-beaten for this long is retried elsewhere.
    lease: timedelta = timedelta(seconds=30)
    # Timers and dispatch also poll this often, in case a notification was missed.
    poll_interval: float = 1.0
    pool_size: int = 20
    # gRPC calls served at once (streams included); more are refused SERVER_BUSY.
    max_concurrent_rpcs: int = 10_000
    name: str = dataclasses.field(default_factory=lambda: f"server-{os.getpid()}")
    # Access control (api/auth.py): token hashes from a file and/or JSON text.
    auth_tokens_file: Path | None = None
    auth_tokens: str | None = None
    # Without auth the server binds loopback only, unless this says otherwise.
    insecure_allow_remote: bool = False
    # TLS: certificate chain and key (PEM); a client CA makes it mutual TLS.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Bulk operations running at once, across every server on the database.
    max_bulk_operations: int = 8
    # Invocations a bulk operation's page acts on in one transaction (runtime/bulk.py).
    bulk_page_size: int = 1000
    # Prometheus metrics over HTTP (metrics.py): host:port, None for none. Loopback only,
    # as the gRPC address without auth, unless insecure_allow_remote.
    metrics_listen: str | None = None
    # The database-wide metrics are read at most this often (seconds), however many scrape.
    metrics_refresh: float = 5.0
    # The HTTP admin API (http/): host:port, None for none. Restate's admin port by default,
    # so that the curl lines of Restate's docs work; exposed as the gRPC address is.
    http_listen: str | None = "127.0.0.1:9070"
    # Origins whose browsers may call the HTTP API (CORS); none: no CORS headers at all.
    http_cors_origins: tuple[str, ...] = ()
    # The web console turns trace IDs into links with it: `{trace_id}` is replaced.
    trace_url_template: str | None = None

    @property
    def heartbeat_interval(self) -> timedelta:
        return self.lease / 3

    @property
    def max_message_bytes(self) -> int:
        """The largest gRPC message (and HTTP body) the server reads. A message carries
        more than one payload (an input and its headers, each up to the limit) and JSON
        escapes grow them: with this much headroom, every message with an oversize payload
        reaches the server's own check (INVALID_ARGUMENT, PAYLOAD_TOO_LARGE) rather than
        gRPC's bare RESOURCE_EXHAUSTED. Bounded, as it is memory per request in flight."""
        return max(MESSAGE_FLOOR, MESSAGE_HEADROOM * self.max_payload_bytes)


class ConfigError(Exception):
    """A configuration the server refuses to start with; the message says why."""


# Payloads up to --max-payload-bytes; messages up to Config.max_message_bytes. The cap
# keeps the message limit within gRPC's (a 32-bit length) and a row within Postgres's
# 1 GB per value.
MAX_PAYLOAD_CAP = 128 * 1024 * 1024
MESSAGE_HEADROOM = 8
MESSAGE_FLOOR = 64 * 1024 * 1024
# A bulk page's IDs travel as arrays in a few statements; past this a page only holds its
# locks longer.
MAX_BULK_PAGE = 10_000


def check_limits(config: Config) -> None:
    """Refuse a payload limit the channels and the database cannot carry, and a bulk page
    size outside what a page's statements are sized for."""
    if not 1 <= config.bulk_page_size <= MAX_BULK_PAGE:
        raise ConfigError(
            f"--bulk-page-size {config.bulk_page_size}: must be from 1 to {MAX_BULK_PAGE}"
        )
    limit = config.max_payload_bytes
    if not 1 <= limit <= MAX_PAYLOAD_CAP:
        raise ConfigError(
            f"--max-payload-bytes {limit}: must be from 1 to {MAX_PAYLOAD_CAP} (128 MiB), "
            "the largest payload every channel (gRPC, HTTP, workers) and a database row carry"
        )


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(config: Config, *, auth: bool) -> None:
    """Refuse to serve beyond loopback without auth, unless told to (safe default)."""
    host = config.listen.rsplit(":", 1)[0]
    if not auth and not _is_loopback(host) and not config.insecure_allow_remote:
        raise ConfigError(
            f"refusing to listen on {config.listen} without auth: anyone who can reach it "
            "could kill every invocation. Configure tokens (--auth-tokens-file or "
            "INVOCTL_AUTH_TOKENS), listen on 127.0.0.1, or pass --insecure-allow-remote."
        )
    if config.http_listen is not None:
        # The HTTP API can do all the gRPC API can: the same rule.
        http_host, _, http_port = config.http_listen.rpartition(":")
        if not http_host or not http_port.isdigit():
            raise ConfigError(f"--http-listen {config.http_listen!r}: expected HOST:PORT, or off")
        if not auth and not _is_loopback(http_host) and not config.insecure_allow_remote:
            raise ConfigError(
                f"refusing to serve HTTP on {config.http_listen} without auth: anyone who "
                "can reach it could kill every invocation. Configure tokens "
                "(--auth-tokens-file or INVOCTL_AUTH_TOKENS), serve it on 127.0.0.1, "
                "pass --http-listen off, or pass --insecure-allow-remote."
            )
    if config.metrics_listen is not None:
        metrics_host, _, metrics_port = config.metrics_listen.rpartition(":")
        if not metrics_host or not metrics_port.isdigit():
            raise ConfigError(f"--metrics-listen {config.metrics_listen!r}: expected HOST:PORT")
        if not _is_loopback(metrics_host) and not config.insecure_allow_remote:
            raise ConfigError(
                f"refusing to serve metrics on {config.metrics_listen}: the metrics endpoint "
                "has no auth. It carries counts, no payloads or secrets, but anyone who can "
                "reach it reads your load. Serve it on 127.0.0.1 (for a local agent or a "
                "proxy that adds auth), or pass --insecure-allow-remote."
            )
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"INVOCTL_{name}", default)


def parse_args(argv: list[str] | None = None) -> Config:
    base = Config()
    p = argparse.ArgumentParser(prog="invoctl serve", description="Run the invoctl server.")
    p.add_argument(
        "--listen",
        default=_env("LISTEN", base.listen),
        help="host:port to serve gRPC on (default %(default)s; port 0 picks a free one)",
    )
    p.add_argument(
        "--database-url",
        default=_env("DATABASE_URL"),
        help="Postgres DSN; without it an embedded Postgres runs under --data-dir",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("DATA_DIR", str(base.data_dir))),
        help="where the embedded Postgres keeps its data (default %(default)s)",
    )
    p.add_argument(
        "--max-payload-bytes",
        type=int,
        default=int(_env("MAX_PAYLOAD_BYTES", str(base.max_payload_bytes))),
        help="largest accepted input or output (default %(default)s)",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=float(_env("LEASE_SECONDS", str(base.lease.total_seconds()))),
        help="attempt lease; workers heart-beat at a third of it (default %(default)s)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=float(_env("POLL_INTERVAL", str(base.poll_interval))),
        help="seconds between polls of timers and ready work (default %(default)s)",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=int(_env("POOL_SIZE", str(base.pool_size))),
        help="database connections (default %(default)s)",
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=int(_env("MAX_CONCURRENT_RPCS", str(base.max_concurrent_rpcs))),
        help="gRPC calls served at once, streams included; more get RESOURCE_EXHAUSTED "
        "(SERVER_BUSY) (default %(default)s)",
    )
    p.add_argument("--name", default=_env("NAME", base.name), help="actor name in histories")
    p.add_argument(
        "--auth-tokens-file",
        type=Path,
        default=_env("AUTH_TOKENS_FILE"),
        help='JSON {"tokens": [{"identity", "role", "sha256"}]}: turns bearer-token auth on '
        "(also INVOCTL_AUTH_TOKENS, the same JSON inline)",
    )
    p.add_argument(
        "--insecure-allow-remote",
        action="store_true",
        default=_env("INSECURE_ALLOW_REMOTE") == "1",
        help="serve a non-loopback address without auth (refused otherwise)",
    )
    p.add_argument("--tls-cert", type=Path, default=_env("TLS_CERT"), help="PEM certificate chain")
    p.add_argument("--tls-key", type=Path, default=_env("TLS_KEY"), help="PEM private key")
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        default=_env("TLS_CLIENT_CA"),
        help="PEM CA of client certificates: require them (mutual TLS)",
    )
    p.add_argument(
        "--max-bulk-operations",
        type=int,
        default=int(_env("MAX_BULK_OPERATIONS", str(base.max_bulk_operations))),
        help="bulk operations running at once, all servers together (default %(default)s)",
    )
    p.add_argument(
        "--bulk-page-size",
        type=int,
        default=int(_env("BULK_PAGE_SIZE", str(base.bulk_page_size))),
        help="invocations a bulk operation acts on per transaction, 1 to 10000 "
        "(default %(default)s): smaller pages hold their locks for less time",
    )
    p.add_argument(
        "--metrics-listen",
        default=_env("METRICS_LISTEN"),
        help="host:port to serve Prometheus metrics on, at /metrics (default: none; "
        "loopback only unless --insecure-allow-remote, as it has no auth)",
    )
    p.add_argument(
        "--metrics-refresh-seconds",
        type=float,
        default=float(_env("METRICS_REFRESH_SECONDS", str(base.metrics_refresh))),
        help="read the database-wide metrics (a count of every invocation) at most this "
        "often, however many scrape (default %(default)s)",
    )
    p.add_argument(
        "--http-listen",
        default=_env("HTTP_LISTEN", base.http_listen),
        help="host:port to serve the HTTP admin API on, or off (default %(default)s, "
        "Restate's admin port; port 0 picks a free one)",
    )
    p.add_argument(
        "--http-cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="an origin (https://console.example.com) whose browser pages may call the HTTP "
        "API; repeatable; also INVOCTL_HTTP_CORS_ORIGIN, comma-separated (default: none, "
        "and no CORS headers)",
    )
    p.add_argument(
        "--trace-url-template",
        default=_env("TRACE_URL_TEMPLATE"),
        help="a URL with {trace_id} (e.g. http://jaeger:16686/trace/{trace_id}) that the web "
        "console links trace IDs to (default: none, plain IDs)",
    )
    a = p.parse_args(argv)
    cors = a.http_cors_origin
    if cors is None:
        cors = [o.strip() for o in (_env("HTTP_CORS_ORIGIN") or "").split(",") if o.strip()]
    return Config(
        listen=a.listen,
        database_url=a.database_url,
        data_dir=a.data_dir,
        max_payload_bytes=a.max_payload_bytes,
        lease=timedelta(seconds=a.lease_seconds),
        poll_interval=a.poll_interval,
        pool_size=a.pool_size,
        max_concurrent_rpcs=a.max_concurrent_rpcs,
        name=a.name,
        auth_tokens_file=a.auth_tokens_file,
        auth_tokens=_env("AUTH_TOKENS"),
        insecure_allow_remote=a.insecure_allow_remote,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        tls_client_ca=a.tls_client_ca,
        max_bulk_operations=a.max_bulk_operations,
        bulk_page_size=a.bulk_page_size,
        metrics_listen=a.metrics_listen or None,
        metrics_refresh=a.metrics_refresh_seconds,
        http_listen=None if a.http_listen in ("off", "") else a.http_listen,
        http_cors_origins=tuple(cors),
        trace_url_template=a.trace_url_template or None,
    )
