"""How a worker session obeys an operator's pause and kill, against an in-memory stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from invoctl.sdk import Context, Service
from invoctl.sdk._session import Session
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2
from tests.support import wait_for

PAUSE = workers_pb2.SIGNAL_KIND_PAUSE
KILL = workers_pb2.SIGNAL_KIND_KILL
# Generous: only reached when the behaviour under test is broken.
DEADLINE = 5.0


class FakeStream:
    """The server's end of one Connect stream: welcomes, acks every message, and lets a
    test push attempts and signals."""

    def __init__(self) -> None:
        self.responses: asyncio.Queue[Any] = asyncio.Queue()
        self.written: list[workers_pb2.ConnectRequest] = []

    async def read(self) -> Any:
        return await self.responses.get()

    async def write(self, request: workers_pb2.ConnectRequest) -> None:
        self.written.append(request)
        if request.HasField("hello"):
            self.responses.put_nowait(workers_pb2.ConnectResponse(welcome={"session_id": "s1"}))
        elif request.seq:
            # Appends are stored as sent; the handlers here need no server-filled fields.
            entries = request.append.entries if request.HasField("append") else []
            ack = workers_pb2.WorkerAck(seq=request.seq, entries=entries)
            self.responses.put_nowait(workers_pb2.ConnectResponse(ack=ack))

    async def done_writing(self) -> None:
        self.responses.put_nowait(grpc.aio.EOF)

    def cancel(self) -> None:
        pass

    def start(self, svc: Service, handler: str, *, invocation_id: str = "inv_1") -> None:
        start = workers_pb2.AttemptStart(
            invocation_id=invocation_id,
            attempt=2,
            target=pb.Target(service=svc.name, handler=handler),
        )
        self.responses.put_nowait(workers_pb2.ConnectResponse(attempt=start))

    def signal(self, kind: int, *, invocation_id: str = "inv_1", attempt: int = 2) -> None:
        signal = workers_pb2.AttemptSignal(invocation_id=invocation_id, attempt=attempt, kind=kind)
        self.responses.put_nowait(workers_pb2.ConnectResponse(signal=signal))

    async def delivered(self) -> None:
        """Returns once the session has handled everything pushed so far.

        The session handles a message synchronously after taking it, so an empty
        queue means every message was handled.
        """

        async def empty() -> bool:
            return self.responses.empty()

        await wait_for(empty, timeout=DEADLINE, what="the session to read its messages")

    def kinds(self, invocation_id: str = "inv_1") -> list[str]:
        """What the worker sent for one invocation, in order."""
        kinds = []
        for request in self.written:
            which = request.WhichOneof("message")
            if which not in ("hello", "heartbeat"):
                if getattr(request, which).invocation_id == invocation_id:
                    kinds.append(which)
        return kinds


class FakeStub:
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream

    def Connect(self, metadata=()) -> FakeStream:  # named as on the generated stub
        return self.stream


@asynccontextmanager
async def serving(svc: Service, concurrency: int = 4) -> AsyncIterator[tuple[FakeStream, Session]]:
    stream = FakeStream()
    session = Session(
        FakeStub(stream),  # type: ignore[arg-type]
        workers_pb2.WorkerHello(deployment_id="dp_1"),
        {svc.name: svc},
        asyncio.Semaphore(concurrency),
        lambda _: None,
    )
    serve = asyncio.create_task(session.serve())
    try:
        yield stream, session
    finally:
        await session.close(grace=0)
        await asyncio.wait_for(serve, DEADLINE)


async def ended(session: Session, invocation_id: str = "inv_1") -> None:
    async def gone() -> bool:
        return invocation_id not in session._attempts

    await wait_for(gone, timeout=DEADLINE, what=f"{invocation_id} to end on the worker")


async def test_pause_lets_a_running_step_finish_but_sends_nothing_more() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[str] = []
    svc = Service("PauseMidStep")

    @svc.handler()
    async def work(ctx: Context) -> None:
        async def step() -> int:
            started.set()
            await release.wait()
            seen.append("step finished")
            return 1

        try:
            await ctx.run("step", step)
            seen.append("handler carried on")
        except Exception as err:  # the pause must not look like an error to the handler
            seen.append(f"handler saw {err!r}")

    async with serving(svc) as (stream, session):
        stream.start(svc, "work")
        await asyncio.wait_for(started.wait(), DEADLINE)
        stream.signal(PAUSE)
        await stream.delivered()
        release.set()
        await ended(session)
        assert seen == ["step finished"]
        assert stream.kinds() == []


async def test_pause_stops_the_handler_at_its_next_await_on_the_context() -> None:
    gate = asyncio.Event()
    calls: list[str] = []
    svc = Service("PauseBetweenSteps")

    @svc.handler()
    async def work(ctx: Context) -> None:
        await ctx.run("first", lambda: calls.append("first"))
        await gate.wait()
        await ctx.run("second", lambda: calls.append("second"))

    async with serving(svc) as (stream, session):
        stream.start(svc, "work")

        async def first_sent() -> bool:
            return stream.kinds() == ["append"]

        await wait_for(first_sent, timeout=DEADLINE, what="the first step's append")
        stream.signal(PAUSE)
        await stream.delivered()
        gate.set()
        await ended(session)
        assert calls == ["first"]
        assert stream.kinds() == ["append"]


async def test_kill_cancels_the_handler_at_once_and_nothing_more_is_sent() -> None:
    started = asyncio.Event()
    seen: list[str] = []
    svc = Service("Killable")

    @svc.handler()
    async def work(ctx: Context) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never set: only the kill ends this
        except asyncio.CancelledError:
            seen.append("cancelled")
        # A handler that swallows the cancellation still cannot act or report.
        await ctx.run("cleanup", lambda: seen.append("cleanup ran"))

    async with serving(svc) as (stream, session):
        stream.start(svc, "work")
        await asyncio.wait_for(started.wait(), DEADLINE)
        stream.signal(KILL)
        await ended(session)
        assert seen == ["cancelled"]
        assert stream.kinds() == []


async def test_signals_for_attempts_not_running_here_are_ignored() -> None:
    gate = asyncio.Event()
    svc = Service("Unbothered")

    @svc.handler()
    async def work(ctx: Context) -> int:
        await gate.wait()
        return await ctx.run("step", lambda: 7)

    async with serving(svc) as (stream, session):
        stream.start(svc, "work")
        stream.signal(KILL, invocation_id="inv_other")
        stream.signal(KILL, attempt=1)  # an older attempt of the same invocation
        stream.signal(PAUSE, attempt=3)  # a newer one, which runs elsewhere
        await stream.delivered()
        gate.set()
        await ended(session)
        assert stream.kinds() == ["append", "complete"]


async def test_an_attempt_paused_while_it_waits_for_a_slot_never_starts() -> None:
    gate = asyncio.Event()
    ran: list[str] = []
    svc = Service("Queued")

    @svc.handler()
    async def work(ctx: Context) -> None:
        ran.append(ctx.invocation_id)
        await gate.wait()

    async with serving(svc, concurrency=1) as (stream, session):
        stream.start(svc, "work", invocation_id="inv_busy")
        stream.start(svc, "work", invocation_id="inv_queued")
        await stream.delivered()
        stream.signal(PAUSE, invocation_id="inv_queued")
        await stream.delivered()
        gate.set()
        await ended(session, "inv_busy")
        await ended(session, "inv_queued")
        assert ran == ["inv_busy"]
        assert stream.kinds("inv_queued") == []
