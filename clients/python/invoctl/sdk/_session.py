"""One Connect stream: hello, heartbeats, attempts in, acked messages out."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from invoctl import wire
from invoctl.v1 import invocation_pb2, workers_pb2, workers_pb2_grpc

from ._attempt import run_attempt
from ._errors import AttemptAborted, ConnectionLost
from ._journal import JournalEntry
from ._service import AnyService

logger = logging.getLogger("invoctl.sdk")

# Used if the server's welcome names no heartbeat interval.
_DEFAULT_HEARTBEAT = 1.0
# How long to wait for the server to end the stream after the worker half-closed it.
_CLOSE_TIMEOUT = 5.0


class _Close:
    """Outbox sentinel: half-close the stream once everything before it is written."""


@dataclass(frozen=True)
class _Running:
    """An attempt this session runs: what a signal needs to find and stop it."""

    attempt: int
    channel: _SessionChannel
    task: asyncio.Task[None]


class Session:
    """A worker's Connect stream, from hello to end of stream.

    All writes go through one writer task: grpc.aio allows one write at a time and
    cancels the whole call when a write is cancelled, and handler tasks get cancelled.
    """

    def __init__(
        self,
        stub: workers_pb2_grpc.WorkersStub,
        hello: workers_pb2.WorkerHello,
        services: Mapping[str, AnyService],
        concurrency: asyncio.Semaphore,
        on_welcome: Callable[[workers_pb2.WorkerWelcome], None],
        *,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._stub = stub
        self._metadata = tuple(metadata)
        self._hello = hello
        self._services = services
        self._concurrency = concurrency
        self._on_welcome = on_welcome
        self._outbox: asyncio.Queue[workers_pb2.ConnectRequest | _Close] = asyncio.Queue()
        self._seq = itertools.count(1)
        self._acks: dict[int, asyncio.Future[workers_pb2.WorkerAck]] = {}
        self._attempts: dict[str, _Running] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self._ended = False
        # The server reads ConnectRequest.batch (its welcome said so).
        self._batching = False
        self.welcomed = False
        """Whether the server answered the hello (the session was usable)."""

    async def serve(self) -> None:
        """Runs the stream until it ends; raises grpc.aio.AioRpcError if it broke.

        On return every attempt of the session has been cancelled and every waiting
        message has failed with ConnectionLost.
        """
        if self._closing:
            return
        call = self._stub.Connect(metadata=self._metadata)
        self._send(workers_pb2.ConnectRequest(hello=self._hello))
        reader = asyncio.create_task(self._read_loop(call))
        writer = asyncio.create_task(self._write_loop(call))
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer.done() and writer.exception() is None and not reader.done():
                # Half-closed after a graceful close: the server ends its side next.
                await asyncio.wait({reader}, timeout=_CLOSE_TIMEOUT)
            for task in (reader, writer):
                error = task.exception() if task.done() else None
                if error is not None:
                    raise error
        finally:
            await self._teardown(call, reader, writer)

    async def close(self, grace: float) -> None:
        """Stops taking attempts, lets running ones finish for ``grace`` seconds, cancels
        the rest, and half-closes the stream. ``serve`` returns once the server ends it.
        """
        self._closing = True
        running = [r.task for r in self._attempts.values()]
        if running:
            logger.info("waiting up to %.1fs for %d running attempts", grace, len(running))
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
        self._outbox.put_nowait(_Close())

    async def request(self, message: workers_pb2.ConnectRequest) -> workers_pb2.WorkerAck:
        """Sends a message with the next seq and returns the server's ack for it.

        Raises ConnectionLost if the session ends first.
        """
        if self._ended:
            raise ConnectionLost("the worker session ended")
        seq = next(self._seq)
        message.seq = seq
        ack = asyncio.get_running_loop().create_future()
        self._acks[seq] = ack
        self._send(message)
        try:
            return await ack
        finally:
            self._acks.pop(seq, None)

    def _send(self, message: workers_pb2.ConnectRequest) -> None:
        self._outbox.put_nowait(message)

    async def _write_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            items = [await self._outbox.get()]
            # What piled up while the last message was written (the next steps of the
            # handlers one batch of acks woke) goes as one: a stream message costs more
            # than its bytes.
            while self._batching and not self._outbox.empty():
                items.append(self._outbox.get_nowait())
            close = next((i for i, m in enumerate(items) if isinstance(m, _Close)), None)
            for message in wire.packed(items[:close], _batch):
                await call.write(message)
            if close is not None:
                await call.done_writing()
                return

    async def _read_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                logger.info("server ended the worker session")
                return
            if response.WhichOneof("message") == "batch":
                for message in response.batch.messages:
                    self._receive(message)
            else:
                self._receive(response)

    def _receive(self, response: workers_pb2.ConnectResponse) -> None:
        which = response.WhichOneof("message")
        if which == "welcome":
            self._welcome(response.welcome)
        elif which == "attempt":
            self._start_attempt(response.attempt)
        elif which == "ack":
            self._resolve(response.ack)
        elif which == "signal":
            self._signal(response.signal)
        else:
            logger.warning("ignoring unknown server message %r", which)

    def _welcome(self, welcome: workers_pb2.WorkerWelcome) -> None:
        interval = welcome.heartbeat_interval.ToTimedelta().total_seconds()
        interval = interval if interval > 0 else _DEFAULT_HEARTBEAT
        logger.info("worker session %s open, heartbeat every %.2fs", welcome.session_id, interval)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._heartbeat_loop(interval))
        self._batching = welcome.accepts_batches
        self.welcomed = True
        self._on_welcome(welcome)

    async def _heartbeat_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._send(workers_pb2.ConnectRequest(heartbeat=workers_pb2.WorkerHeartbeat()))

    def _resolve(self, ack: workers_pb2.WorkerAck) -> None:
        future = self._acks.pop(ack.seq, None)
        if future is None:
            logger.debug("ack for unknown seq %d (its attempt was cancelled)", ack.seq)
        elif not future.done():
            future.set_result(ack)

    def _start_attempt(self, start: workers_pb2.AttemptStart) -> None:
        if self._closing:
            # Its lease lapses when the session ends; the server retries it elsewhere.
            logger.info("stopping: not starting %s attempt %d", start.invocation_id, start.attempt)
            return
        previous = self._attempts.get(start.invocation_id)
        if previous is not None:
            # A newer attempt fences the older one on the server; stop wasting work on it.
            previous.task.cancel()
        # The channel exists before the task so that a signal can stop an attempt that
        # still waits for a concurrency slot.
        channel = _SessionChannel(self, start.invocation_id, start.attempt, start.cancelled)
        task = asyncio.create_task(self._run_attempt(start, channel))
        self._attempts[start.invocation_id] = _Running(start.attempt, channel, task)
        task.add_done_callback(lambda t, key=start.invocation_id: self._forget(key, t))

    def _forget(self, invocation_id: str, task: asyncio.Task[None]) -> None:
        running = self._attempts.get(invocation_id)
        if running is not None and running.task is task:
            del self._attempts[invocation_id]

    def _signal(self, signal: workers_pb2.AttemptSignal) -> None:
        """Stops the attempt an operator paused or killed, or lets its handler see that
        it was cancelled.

        The server fenced a paused or killed attempt before signalling, so stopping it
        only saves useless work; a signal for an attempt not running here (an older one,
        or one that already ended) has nothing left to act on.
        """
        label = f"{signal.invocation_id} attempt {signal.attempt}"
        running = self._attempts.get(signal.invocation_id)
        if running is None or running.attempt != signal.attempt:
            logger.info("ignoring a signal for %s: not running on this worker", label)
            return
        if signal.kind == workers_pb2.SIGNAL_KIND_PAUSE:
            # Graceful: the handler unwinds at its next await on the context, and a
            # ctx.run function already running may finish (its result is dropped).
            logger.info("%s paused by an operator: stopping at its next await", label)
            running.channel.stop("PAUSED", "paused by an operator")
        elif signal.kind == workers_pb2.SIGNAL_KIND_CANCEL:
            logger.info("%s cancelled by an operator: raising it at its next await", label)
            running.channel.request_cancel()
        elif signal.kind == workers_pb2.SIGNAL_KIND_KILL:
            logger.info("%s killed by an operator: cancelling its handler", label)
            # Stopped as well as cancelled: a handler that swallows the cancellation
            # still cannot send anything more.
            running.channel.stop("KILLED", "killed by an operator")
            running.task.cancel()
        else:
            logger.warning("ignoring a signal of unknown kind %d for %s", signal.kind, label)

    async def _run_attempt(self, start: workers_pb2.AttemptStart, channel: _SessionChannel) -> None:
        async with self._concurrency:
            if channel.stopped:
                logger.info(
                    "%s attempt %d stopped before it started", start.invocation_id, start.attempt
                )
                return
            try:
                await run_attempt(start, self._services, channel)
            except Exception:
                # run_attempt reports handler errors itself; this is an SDK bug.
                logger.exception("attempt %s/%d crashed", start.invocation_id, start.attempt)

    async def _teardown(
        self,
        call: grpc.aio.StreamStreamCall,
        reader: asyncio.Task[None],
        writer: asyncio.Task[None],
    ) -> None:
        self._closing = True
        self._ended = True
        tasks = [*(r.task for r in self._attempts.values()), reader, writer]
        if self._heartbeat is not None:
            tasks.append(self._heartbeat)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(ConnectionLost("the worker session ended"))
        self._acks.clear()
        call.cancel()


class _SessionChannel:
    """An attempt's view of the session: messages stamped with its fencing token."""

    def __init__(
        self, session: Session, invocation_id: str, attempt: int, cancelled: bool = False
    ) -> None:
        self._session = session
        self._invocation_id = invocation_id
        self._attempt = attempt
        self._cancelled = cancelled
        # (reason, message) once an operator stopped the attempt; it never restarts.
        self._stop: tuple[str, str] | None = None

    @property
    def stopped(self) -> bool:
        """Whether an operator stopped the attempt (see ``stop``)."""
        return self._stop is not None

    def stop(self, reason: str, message: str) -> None:
        """Refuses every later message of the attempt with AttemptAborted(reason, message)."""
        self._stop = (reason, message)

    def check_running(self) -> None:
        if self._stop is not None:
            raise AttemptAborted(*self._stop)

    def request_cancel(self) -> None:
        """The invocation was cancelled while this attempt runs (see cancel_requested)."""
        self._cancelled = True

    def cancel_requested(self) -> bool:
        return self._cancelled

    async def append(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        append = workers_pb2.JournalAppend(
            invocation_id=self._invocation_id, attempt=self._attempt, entries=entries
        )
        ack = await self._request(workers_pb2.ConnectRequest(append=append))
        return list(ack.entries)

    async def suspend(self, waiting_on: int) -> None:
        suspend = workers_pb2.AttemptSuspend(
            invocation_id=self._invocation_id, attempt=self._attempt, waiting_on=waiting_on
        )
        await self._request(workers_pb2.ConnectRequest(suspend=suspend))

    async def complete(
        self, *, output: str | None = None, failure: invocation_pb2.Failure | None = None
    ) -> None:
        complete = workers_pb2.AttemptComplete(
            invocation_id=self._invocation_id, attempt=self._attempt
        )
        if failure is not None:
            complete.failure.CopyFrom(failure)
        else:
            complete.output = output if output is not None else "null"
        await self._request(workers_pb2.ConnectRequest(complete=complete))

    async def fail(self, failure: invocation_pb2.Failure) -> None:
        fail = workers_pb2.AttemptFail(
            invocation_id=self._invocation_id, attempt=self._attempt, failure=failure
        )
        await self._request(workers_pb2.ConnectRequest(fail=fail))

    async def _request(self, message: workers_pb2.ConnectRequest) -> workers_pb2.WorkerAck:
        # A stopped attempt is fenced on the server: sending would only earn a refusal.
        self.check_running()
        ack = await self._session.request(message)
        # Stopped while waiting: the server acks whatever was in flight, so the handler
        # unwinds here, whether or not this message made it in before the fence.
        self.check_running()
        if ack.error_reason:
            raise AttemptAborted(ack.error_reason, ack.error_message)
        return ack


def _batch(messages: list[workers_pb2.ConnectRequest]) -> workers_pb2.ConnectRequest:
    return workers_pb2.ConnectRequest(batch=workers_pb2.ConnectRequestBatch(messages=messages))
