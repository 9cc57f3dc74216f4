"""The worker: registers a deployment and serves its attempts, reconnecting as needed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence
from types import TracebackType

import grpc

from invoctl.v1 import workers_pb2, workers_pb2_grpc
from invoctl.wire import CHANNEL_OPTIONS

from ._identity import code_identity
from ._retry import RetryPolicy
from ._service import AnyService
from ._session import Session

logger = logging.getLogger("invoctl.sdk")

_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 2.0
_REGISTER_TIMEOUT = 10.0
# Registration errors that mean "not yet": the server is starting or overloaded.
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class Worker:
    """Serves handlers of the given services for an invoctl server.

    ``await worker.run()`` registers its deployment (see ``register``) and serves
    attempts until ``stop()``, reconnecting with backoff when the stream breaks.

    A deployment is a version of the code, served by any number of worker processes:
    ``deployment`` names the version (``"checkout@2026-11-30"``; default: the
    ``INVOCTL_DEPLOYMENT`` environment variable). Without a name, the identity is derived
    from the code (``code@…``: a hash of the services, handlers, retry policies and
    retentions, and of the source of every module that defines a handler), so a restart
    or a replica of unchanged code serves the same deployment and changed code registers
    a new one. Name the version yourself when behaviour can change without those modules
    changing (code in other modules or packages, configuration, data files).
    ``async with Worker(...) as worker`` runs it in the background and returns once it
    is ready. ``retry_policy`` applies to services without their own; at most
    ``max_concurrency`` attempts run at once; ``name`` is the actor shown in the
    invocations' history (default: host and process ID).

    ``token`` is sent as ``authorization: Bearer <token>`` on every RPC (a server with
    auth needs a ``worker`` token); ``credentials`` are TLS channel credentials (see
    ``invoctl.client.tls_credentials``), plaintext when None.
    """

    def __init__(
        self,
        services: Sequence[AnyService],
        server: str = "127.0.0.1:9090",
        *,
        retry_policy: RetryPolicy | None = None,
        max_concurrency: int = 64,
        name: str | None = None,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        deployment: str | None = None,
    ) -> None:
        if not services:
            raise ValueError("a worker needs at least one service")
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate service names in {names}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._services = {s.name: s for s in services}
        self._server = server
        self._retry_policy = retry_policy
        self._max_concurrency = max_concurrency
        self._credentials = credentials
        # Sent with every RPC, the Connect stream of each reconnect included.
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.deployment_id: str | None = None
        """The registered deployment (``dp_...``); set by ``register`` or ``run``."""
        self.deployment: str = (
            deployment
            or os.environ.get("INVOCTL_DEPLOYMENT")
            or code_identity(self._definitions(), self._services.values())
        )
        """The deployment's identity: the version this worker's code is."""
        self.ready = asyncio.Event()
        """Set while a Connect session is open (the server welcomed the worker)."""
        self._channel: grpc.aio.Channel | None = None
        self._register_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._session: Session | None = None
        self._background: asyncio.Task[None] | None = None
        self.deployment_request()  # refuse an unregistrable worker now, not at run()

    def _definitions(self) -> workers_pb2.RegisterDeploymentRequest:
        return workers_pb2.RegisterDeploymentRequest(
            services=[s.to_proto(self._retry_policy) for s in self._services.values()]
        )

    def deployment_request(self) -> workers_pb2.RegisterDeploymentRequest:
        """The RegisterDeployment request this worker sends."""
        request = self._definitions()
        request.identity = self.deployment
        return request

    async def register(self) -> str:
        """Registers the deployment once and returns its ID; later calls reuse it. A
        deployment with this identity registered before (a restart, another replica) is
        the one returned.

        Raises grpc.aio.AioRpcError when the server refuses or cannot be reached; the
        identity registered with other services or handlers is ALREADY_EXISTS
        (DEPLOYMENT_MISMATCH).
        """
        async with self._register_lock:
            if self.deployment_id is None:
                response = await self._stub().RegisterDeployment(
                    self.deployment_request(), timeout=_REGISTER_TIMEOUT, metadata=self._metadata
                )
                self.deployment_id = response.deployment.id
                logger.info(
                    "worker %s serves deployment %s (%s, %s): %s, on %s",
                    self.name,
                    self.deployment_id,
                    self.deployment,
                    "new" if response.created else "registered before",
                    ", ".join(self._services),
                    self._server,
                )
            return self.deployment_id

    async def run(self) -> None:
        """Registers (retrying while the server is unavailable) and serves until stopped.

        Raises grpc.aio.AioRpcError if the server refuses the registration.
        """
        if self._running:
            raise RuntimeError("the worker is already running")
        self._running = True
        try:
            if await self._register_until_stopped():
                await self._serve_until_stopped()
        finally:
            self._running = False
            self.ready.clear()
            await self._close_channel()
            self._stopped.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stops taking attempts, gives running ones ``grace`` seconds, and disconnects.

        Attempts still running then are cancelled; their journaled progress is kept and
        the server retries them. Returns once ``run`` has returned. A stopped worker
        stays stopped.
        """
        self._stopping.set()
        if self._session is not None:
            await self._session.close(grace)
        if self._running:
            await self._stopped.wait()
        else:
            await self._close_channel()
        if self._background is not None:
            await self._background

    async def __aenter__(self) -> Worker:
        self._background = asyncio.create_task(self.run())
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({self._background, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            self._background.result()  # raises what stopped run()
            raise RuntimeError("the worker stopped before it was ready")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _register_until_stopped(self) -> bool:
        delay = _BACKOFF_FIRST
        while not self._stopping.is_set():
            try:
                await self.register()
                return True
            except grpc.aio.AioRpcError as err:
                if err.code() not in _TRANSIENT:
                    raise
                logger.warning("server %s unavailable, retrying in %.1fs", self._server, delay)
            await self._backoff(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
        return False

    async def _serve_until_stopped(self) -> None:
        # Shared by all sessions: cancelled attempts of a broken session release it.
        concurrency = asyncio.Semaphore(self._max_concurrency)
        delay = _BACKOFF_FIRST
        while not self._stopping.is_set():
            if not await self._register_until_stopped():
                break
            assert self.deployment_id is not None
            hello = workers_pb2.WorkerHello(
                deployment_id=self.deployment_id,
                max_concurrency=self._max_concurrency,
                worker_name=self.name,
                accepts_batches=True,
            )
            session = Session(
                self._stub(),
                hello,
                self._services,
                concurrency,
                lambda _: self.ready.set(),
                metadata=self._metadata,
            )
            self._session = session
            try:
                await session.serve()
            except grpc.aio.AioRpcError as err:
                logger.warning("worker session broke: %s %s", err.code().name, err.details())
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    # The server does not know the deployment (a new database behind the
                    # same address): register the identity again.
                    self.deployment_id = None
            except Exception:
                # Keep serving: a worker that gives up needs a human to restart it.
                logger.exception("worker session failed")
            finally:
                self._session = None
                self.ready.clear()
            if self._stopping.is_set():
                break
            if session.welcomed:
                delay = _BACKOFF_FIRST
            logger.info("reconnecting in %.1fs", delay)
            await self._backoff(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def _backoff(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    def _stub(self) -> workers_pb2_grpc.WorkersStub:
        if self._channel is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._server, options=CHANNEL_OPTIONS)
            else:
                self._channel = grpc.aio.secure_channel(
                    self._server, self._credentials, options=CHANNEL_OPTIONS
                )
        return workers_pb2_grpc.WorkersStub(self._channel)

    async def _close_channel(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()


def run_worker(
    services: Sequence[AnyService],
    server: str = "127.0.0.1:9090",
    *,
    retry_policy: RetryPolicy | None = None,
    max_concurrency: int = 64,
    name: str | None = None,
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    deployment: str | None = None,
) -> None:
    """Runs a worker in a new event loop until SIGINT or SIGTERM, then stops it gracefully.

    The entry point of a worker script: ``run_worker([greeter], server="127.0.0.1:9090")``.
    """
    worker = Worker(
        services,
        server,
        retry_policy=retry_policy,
        max_concurrency=max_concurrency,
        name=name,
        token=token,
        credentials=credentials,
        deployment=deployment,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: set[asyncio.Task[None]] = set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: stopping.add(loop.create_task(worker.stop())))
        await worker.run()

    asyncio.run(main())
