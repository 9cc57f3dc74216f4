"""A worker written by hand on the raw Connect stream, for tests of the protocol itself:
fencing, signals, batching. The SDK's worker hides all of that."""

from __future__ import annotations

import asyncio
import itertools

import grpc

from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from invoctl.v1 import workers_pb2_grpc

READ_TIMEOUT = 15.0  # more than the server fixture's 3 s lease plus the retry


class RawSession:
    """One Connect stream, spoken by hand. It heart-beats only if told to, and takes
    batched server messages only if its hello says so."""

    _seq = itertools.count(1)

    def __init__(
        self,
        stub: workers_pb2_grpc.WorkersStub,
        deployment_id: str,
        name: str,
        *,
        max_concurrency: int = 1,
        accepts_batches: bool = False,
    ):
        self.call = stub.Connect()
        self.hello = wpb.WorkerHello(
            deployment_id=deployment_id,
            max_concurrency=max_concurrency,
            worker_name=name,
            accepts_batches=accepts_batches,
        )
        self.welcome: wpb.WorkerWelcome | None = None
        self._heartbeat: asyncio.Task | None = None
        self._writing = asyncio.Lock()  # grpc.aio allows one write at a time

    async def write(self, message: wpb.ConnectRequest) -> None:
        async with self._writing:
            await self.call.write(message)

    async def open(self, *, heartbeat: bool) -> None:
        await self.write(wpb.ConnectRequest(hello=self.hello))
        self.welcome = (await self.read("welcome")).welcome
        if heartbeat:
            interval = self.welcome.heartbeat_interval.ToTimedelta().total_seconds()
            self._heartbeat = asyncio.create_task(self._beat(interval))

    async def _beat(self, interval: float) -> None:
        while True:
            await self.write(wpb.ConnectRequest(heartbeat=wpb.WorkerHeartbeat()))
            await asyncio.sleep(interval)  # the heart-beat period, not a wait for a condition

    async def read(self, kind: str) -> wpb.ConnectResponse:
        response = await asyncio.wait_for(self.call.read(), READ_TIMEOUT)
        assert response is not grpc.aio.EOF, "the server ended the stream"
        assert response.WhichOneof("message") == kind, response
        return response

    async def read_messages(self, count: int) -> list[list[wpb.ConnectResponse]]:
        """The next stream messages until they hold `count` server messages: a list per
        stream message, of the messages in its batch (or of itself)."""
        received: list[list[wpb.ConnectResponse]] = []
        while sum(map(len, received)) < count:
            response = await asyncio.wait_for(self.call.read(), READ_TIMEOUT)
            assert response is not grpc.aio.EOF, "the server ended the stream"
            if response.WhichOneof("message") == "batch":
                received.append(list(response.batch.messages))
            else:
                received.append([response])
        return received

    async def request(self, **message) -> wpb.WorkerAck:
        """Send a message with a new seq and return its ack (the test sends one at a time)."""
        seq = self.next_seq()
        await self.write(wpb.ConnectRequest(seq=seq, **message))
        ack = (await self.read("ack")).ack
        assert ack.seq == seq
        return ack

    def next_seq(self) -> int:
        return next(self._seq)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        self.call.cancel()


async def register(stub: workers_pb2_grpc.WorkersStub) -> str:
    """Register a deployment of service Raw (handler `work`, 5 attempts 50 ms apart)."""
    policy = wpb.RetryPolicy(max_attempts=5)
    policy.initial_interval.FromMilliseconds(50)
    policy.max_interval.FromMilliseconds(50)
    response = await stub.RegisterDeployment(
        wpb.RegisterDeploymentRequest(
            services=[
                wpb.ServiceDefinition(
                    name="Raw",
                    kind=wpb.SERVICE_KIND_SERVICE,
                    handlers=[wpb.HandlerDefinition(name="work")],
                    retry_policy=policy,
                )
            ]
        )
    )
    return response.deployment.id


def run_entry(index: int, value: str) -> pb.JournalEntry:
    return pb.JournalEntry(index=index, kind=pb.JOURNAL_ENTRY_KIND_RUN, name="step", value=value)
