"""The HTTP listener: uvicorn serving the ASGI app in the server's own event loop, on a
socket bound before anything else starts (a port in use is refused at once).

uvicorn is driven through its startup / main_loop / shutdown steps rather than
`serve()`, which installs signal handlers of its own: the process's SIGTERM and SIGINT
belong to __main__, which stops the gRPC and HTTP servers together.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl

import uvicorn
from starlette.types import ASGIApp

from ..config import Config, ConfigError

log = logging.getLogger("invoctl.http")


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0 as socket.create_server gives: asyncio turns Nagle's algorithm
    # off only for sockets that say TCP, and with it on, every response after the first
    # on a keep-alive connection waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR (a restart may bind while old connections linger in TIME_WAIT),
        # never SO_REUSEPORT: a second server on the port must be refused, not share it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{listen} is already in use (--http-listen): is another invoctl or a Restate "
                "server running? Choose another address, or pass --http-listen off"
            ) from None
        raise ConfigError(f"cannot serve HTTP on {listen}: {exc.strerror or exc}") from None


class HttpServer:
    """`bind()` first (refusals), then `await start(app)`, then `await stop()`."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._loop_task: asyncio.Task | None = None
        self.stopping = asyncio.Event()
        self.port: int | None = None
        self.app: ASGIApp | None = None

    @property
    def url(self) -> str:
        host = (self._config.http_listen or "").rpartition(":")[0]
        scheme = "https" if self._config.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"

    def bind(self) -> None:
        assert self._config.http_listen is not None
        self._socket = _bind(self._config.http_listen)
        self.port = self._socket.getsockname()[1]

    async def start(self, app: ASGIApp) -> None:
        self.app = app
        c = self._config
        config = uvicorn.Config(
            app,
            lifespan="off",
            ws="none",
            log_config=None,  # the server's logging as it is
            access_log=False,
            server_header=False,
            proxy_headers=False,  # no X-Forwarded-* is trusted
            ssl_certfile=c.tls_cert,
            ssl_keyfile=c.tls_key,
            ssl_ca_certs=c.tls_client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if c.tls_client_ca else ssl.CERT_NONE,
        )
        try:
            config.load()  # the TLS context: a file that cannot be read is refused here
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS for HTTP: {exc}") from None
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._socket])
        self._server = server
        self._loop_task = asyncio.create_task(server.main_loop(), name="invoctl-http")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting connections, end event streams, and give requests in flight
        `grace` seconds before they are cancelled."""
        self.stopping.set()
        server = self._server
        if server is not None:
            server.should_exit = True
            if self._loop_task is not None:
                await self._loop_task
            # (uvicorn's wait_for gives a zero timeout no time even to see nothing runs)
            server.config.timeout_graceful_shutdown = max(grace, 0.05)
            await server.shutdown(sockets=[self._socket] if self._socket else None)
            # uvicorn cancels what outlived the grace period; let that cancellation run
            # before the database pool under it closes.
            tasks = server.server_state.tasks
            if tasks:
                await asyncio.wait(set(tasks), timeout=1.0)
            self._server = None
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
