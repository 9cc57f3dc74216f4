"""Wiring: database, migrations, runtime loops, gRPC services, health, reflection, stop."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import secrets

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from invoctl.v1 import (
    control_pb2,
    control_pb2_grpc,
    ingress_pb2,
    ingress_pb2_grpc,
    workers_pb2,
    workers_pb2_grpc,
)

from . import telemetry
from .api.admission import AdmissionInterceptor, pending_options
from .api.auth import AuthInterceptor, InvalidTokenConfig, Tokens
from .api.context import Runtime
from .api.control import InvocationControl
from .api.ingress import Ingress
from .api.operator import Operator
from .api.refusals import Recorder
from .api.workers import Workers
from .config import Config, ConfigError, check_exposure, check_limits
from .console import Console, Sessions
from .console import mount as console_mount
from .console.session import shared_key
from .embedded import EmbeddedPostgres
from .http import ROUTES, Api, HttpServer, Services
from .http import build as build_http_app
from .listeners import bind_failure
from .metrics import Metrics
from .runtime.batches import Batches
from .runtime.bulk import BulkRunner
from .runtime.cleaner import Cleaner
from .runtime.completions import Completions
from .runtime.listener import Listener
from .runtime.planner_stats import PlannerStats
from .runtime.sessions import Dispatcher
from .runtime.timers import Timers
from .store import db, notify

log = logging.getLogger("invoctl.server")

SERVICE_NAMES = (
    control_pb2.DESCRIPTOR.services_by_name["InvocationControl"].full_name,
    ingress_pb2.DESCRIPTOR.services_by_name["Ingress"].full_name,
    workers_pb2.DESCRIPTOR.services_by_name["Workers"].full_name,
)


def _tracing_interceptors() -> list:
    """The interceptor that makes each RPC a span continuing the caller's trace, when
    spans are recorded at all (telemetry.recording)."""
    if not telemetry.recording():
        return []
    return [aio_server_interceptor()]


def _server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS from the configured PEM files; with a client CA, clients must present a
    certificate it signed (mutual TLS). None: plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    try:
        chain, key = config.tls_cert.read_bytes(), config.tls_key.read_bytes()
        client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    except OSError as exc:
        raise ConfigError(f"TLS: {exc}") from None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _version() -> str:
    try:
        return importlib.metadata.version("invoctl-server")
    except importlib.metadata.PackageNotFoundError:
        return "0"


class App:
    """One invoctl server process. `await App.start(config)`, then `await app.stop()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.port: int | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._pool: asyncpg.Pool | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._loops: list = []
        self._metrics: Metrics | None = None
        self._http: HttpServer | None = None

    async def _console(self, api: Api) -> Console:
        """The web console on the HTTP listener; its counts per state come from the
        metrics' cache (one of its own when metrics are off): a count of the whole table
        at most every refresh interval, never one per page load."""
        assert self._http is not None and self._pool is not None
        metrics = self._metrics or Metrics(self._pool, refresh_interval=self.config.metrics_refresh)
        async with self._pool.acquire() as conn:
            key = await shared_key(conn)
        return Console(
            api.services,
            Sessions(api.tokens, secure=bool(self.config.tls_cert), key=key),
            state_counts=metrics.state_counts,
            trace_url_template=self.config.trace_url_template,
            stopping=self._http.stopping,
            refusals=api.refusals,
        )

    @property
    def http_url(self) -> str | None:
        """http(s)://host:port of the HTTP API (None when it is off)."""
        return self._http.url if self._http is not None and self._http.port else None

    @property
    def http_routes(self) -> set[tuple[str, str]]:
        """(method, path) of every route the HTTP API serves (HEAD aside). The console's
        mount (/ui) is pages, not API: it has no methods of its own and is not listed."""
        app = self._http.app if self._http is not None else None
        return {
            (method, route.path)
            for route in getattr(app, "routes", [])
            for method in getattr(route, "methods", None) or ()
            if method != "HEAD"
        }

    @property
    def metrics_address(self) -> str | None:
        """host:port of the metrics endpoint (None when it is off)."""
        if self._metrics is None or self._metrics.port is None:
            return None
        host = (self.config.metrics_listen or "").rpartition(":")[0]
        return f"{host}:{self._metrics.port}"

    @property
    def address(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @classmethod
    async def start(cls, config: Config) -> App:
        app = cls(config)
        try:
            await app._start()
        except BaseException:
            await app.stop(grace=0)
            raise
        return app

    async def _start(self) -> None:
        # Refusals first: nothing starts with a configuration that is unsafe or broken.
        try:
            tokens = Tokens.load(path=self.config.auth_tokens_file, inline=self.config.auth_tokens)
        except (InvalidTokenConfig, OSError) as exc:
            raise ConfigError(f"auth tokens: {exc}") from None
        check_exposure(self.config, auth=tokens is not None)
        check_limits(self.config)
        credentials = _server_credentials(self.config)
        if self.config.http_listen is not None:
            # Bound now: a port in use is refused before anything starts.
            self._http = HttpServer(self.config)
            self._http.bind()
        dsn = self.config.database_url
        if dsn is None:
            self._embedded = EmbeddedPostgres(self.config.data_dir)
            conn = await self._embedded.start()
            dsn = self._embedded.dsn
            log.info("embedded Postgres at %s", self.config.data_dir)
        else:
            conn = await asyncpg.connect(dsn)
        try:
            await db.migrate(conn)
            # Opened before the first connection closes: a server sharing an embedded
            # Postgres sees this one connected throughout (embedded.py).
            self._pool = await db.create_pool(dsn, max_size=self.config.pool_size)
        finally:
            await conn.close()

        completions = Completions()
        dispatcher = Dispatcher(
            self._pool,
            lease=self.config.lease,
            heartbeat=self.config.heartbeat_interval,
            poll_interval=self.config.poll_interval,
        )
        timers = Timers(
            self._pool, poll_interval=self.config.poll_interval, actor=f"timer:{self.config.name}"
        )
        runner = BulkRunner(
            self._pool,
            owner=f"{self.config.name} {secrets.token_hex(4)}",
            lease=self.config.lease,
            poll_interval=self.config.poll_interval,
            page_size=self.config.bulk_page_size,
        )
        listener = Listener(
            dsn,
            {
                notify.READY: dispatcher.wake,
                notify.COMPLETED: completions.notified,
                notify.SIGNAL: dispatcher.signal,
                notify.BULK: runner.changed,
            },
        )
        batches = Batches(self._pool, lease=self.config.lease, dispatcher=dispatcher)
        cleaner = Cleaner(
            self._pool,
            poll_interval=self.config.poll_interval,
            actor=f"cleaner:{self.config.name}",
            sessions_unseen=2 * self.config.lease,
        )
        planner_stats = PlannerStats(self._pool, poll_interval=self.config.poll_interval)
        operator = Operator(self._pool)
        rt = Runtime(
            self._pool, self.config, dispatcher, timers, completions, batches, operator, runner
        )

        recorder = Recorder(self._pool)
        self._server = grpc.aio.server(
            # Tracing first: the admission and auth checks and their refusals belong to the
            # call's span. Admission before auth: a busy server spends nothing on a call.
            interceptors=[
                *_tracing_interceptors(),
                AdmissionInterceptor(self.config.max_concurrent_rpcs),
                AuthInterceptor(tokens, recorder),
            ],
            options=[
                *pending_options(self.config.max_concurrent_rpcs),
                # Find dead peers (a worker's host gone) without waiting for the lease.
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                # Far above any message with payloads within the limit, so that an oversize
                # one is answered by the servicer's check, with its reason (config.py).
                ("grpc.max_receive_message_length", self.config.max_message_bytes),
                # Responses carry several payloads (input and output, a journal): clients
                # receive what their server sends (invoctl.wire.CHANNEL_OPTIONS).
                ("grpc.max_send_message_length", -1),
                # A port in use is refused, never shared with another server.
                ("grpc.so_reuseport", 0),
            ],
        )
        # One instance of each servicer, for gRPC and for the HTTP API alike.
        control, ingress, workers = InvocationControl(rt), Ingress(rt), Workers(rt)
        control_pb2_grpc.add_InvocationControlServicer_to_server(control, self._server)
        ingress_pb2_grpc.add_IngressServicer_to_server(ingress, self._server)
        workers_pb2_grpc.add_WorkersServicer_to_server(workers, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(self.config.listen)
            else:
                self.port = self._server.add_secure_port(self.config.listen, credentials)
        except RuntimeError:  # grpcio's "Failed to bind": no reason given
            self.port = 0
        if not self.port:
            raise bind_failure(self.config.listen)

        loops = (listener, dispatcher, timers, batches, operator, runner, cleaner, planner_stats)
        for loop in loops:
            loop.start()
            self._loops.append(loop)
        await asyncio.wait_for(listener.connected.wait(), 30)
        if self.config.metrics_listen is not None:
            self._metrics = Metrics(self._pool, refresh_interval=self.config.metrics_refresh)
            await self._metrics.start(self.config.metrics_listen)
            log.info("metrics on http://%s/metrics", self.metrics_address)
        await self._server.start()
        if self._http is not None:
            api = Api(
                Services(InvocationControl=control, Ingress=ingress, Workers=workers),
                tokens,
                # As gRPC's: a body quotes its payloads, escaped (up to twice as long).
                body_limit=self.config.max_message_bytes,
                stopping=self._http.stopping,
                cors_origins=self.config.http_cors_origins,
                refusals=recorder,
            )
            console = await self._console(api)
            await self._http.start(
                build_http_app(api, ROUTES, version=_version(), mounts=[console_mount(console)])
            )
            log.info("HTTP admin API on %s", self._http.url)
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("invoctl serving on %s", self.address)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting work, let RPCs finish for `grace` seconds, then close everything."""
        await self._health.enter_graceful_shutdown()
        stopping = []
        if self._http is not None:
            stopping.append(self._http.stop(grace))
        if self._server is not None:
            stopping.append(self._server.stop(grace))
        # Both listeners drain at once, within one grace period.
        await asyncio.gather(*stopping)
        if self._metrics is not None:
            await self._metrics.stop()
        for loop in reversed(self._loops):
            await loop.stop()
        self._loops.clear()
        if self._pool is not None:
            try:
                # Connections still held past the grace period (a stream's clean-up against
                # a database that went away) must not keep the process from stopping.
                await asyncio.wait_for(self._pool.close(), timeout=max(grace, 1.0))
            except TimeoutError:
                self._pool.terminate()
            self._pool = None
        if self._embedded is not None:
            # Last: every connection of this server is closed by now.
            await self._embedded.stop()
            self._embedded = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
