"""Fencing: writes from an attempt that no longer holds its invocation are refused with
STALE_ATTEMPT and change nothing. Driven by a hand-written worker on the raw stream."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest

from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from invoctl.v1 import workers_pb2_grpc
from tests.e2e._helpers import history, row_counts

READ_TIMEOUT = 15.0  # more than the server fixture's 3 s lease plus the retry


class RawSession:
    """One Connect stream, spoken by hand. It heart-beats only if told to."""

    _seq = itertools.count(1)

    def __init__(self, stub: workers_pb2_grpc.WorkersStub, deployment_id: str, name: str):
        self.call = stub.Connect()
        self.hello = wpb.WorkerHello(
            deployment_id=deployment_id, max_concurrency=1, worker_name=name
        )
        self._heartbeat: asyncio.Task | None = None
        self._writing = asyncio.Lock()  # grpc.aio allows one write at a time

    async def write(self, message: wpb.ConnectRequest) -> None:
        async with self._writing:
            await self.call.write(message)

    async def open(self, *, heartbeat: bool) -> None:
        await self.write(wpb.ConnectRequest(hello=self.hello))
        welcome = (await self.read("welcome")).welcome
        if heartbeat:
            interval = welcome.heartbeat_interval.ToTimedelta().total_seconds()
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

    async def request(self, **message) -> wpb.WorkerAck:
        """Send a message with a new seq and return its ack (the test sends one at a time)."""
        seq = next(self._seq)
        await self.write(wpb.ConnectRequest(seq=seq, **message))
        ack = (await self.read("ack")).ack
        assert ack.seq == seq
        return ack

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        self.call.cancel()


@pytest.fixture
async def workers(server):
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield workers_pb2_grpc.WorkersStub(channel)


async def _register(stub: workers_pb2_grpc.WorkersStub) -> str:
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


def _run_entry(index: int, value: str) -> pb.JournalEntry:
    return pb.JournalEntry(index=index, kind=pb.JOURNAL_ENTRY_KIND_RUN, name="step", value=value)


async def test_writes_of_a_lapsed_attempt_are_refused(workers, client, db):
    deployment_id = await _register(workers)
    assert deployment_id.startswith("dp_")
    old = RawSession(workers, deployment_id, "old")
    fresh = RawSession(workers, deployment_id, "fresh")
    try:
        await old.open(heartbeat=False)
        inv_id = await client.send("Raw", "work", "in")
        start = (await old.read("attempt")).attempt
        assert (start.invocation_id, start.attempt, start.input) == (inv_id, 1, '"in"')

        # The old worker journals one step, then goes silent: no heartbeat, so its lease
        # lapses and the invocation is retried on the other, live session.
        ack = await old.request(
            append=wpb.JournalAppend(invocation_id=inv_id, attempt=1, entries=[_run_entry(0, "1")])
        )
        assert ack.error_reason == ""
        await fresh.open(heartbeat=True)
        retry = (await fresh.read("attempt")).attempt
        assert (retry.invocation_id, retry.attempt) == (inv_id, 2)
        assert [e.value for e in retry.journal] == ["1"]  # the new attempt replays it

        inv = await client.get_invocation(inv_id)
        assert (inv.state, inv.attempt_count) == (pb.INVOCATION_STATE_RUNNING, 2)
        assert inv.last_failure.code == "LEASE_EXPIRED"
        before = await row_counts(db)
        before_history = await history(client, inv_id)
        assert before_history[-3:] == [
            ("running", "backing-off", "lease_expired"),
            ("backing-off", "ready", "retry_due"),
            ("ready", "running", "claimed"),
        ]

        stale_messages = {
            "append": wpb.JournalAppend(
                invocation_id=inv_id, attempt=1, entries=[_run_entry(1, "2")]
            ),
            "suspend": wpb.AttemptSuspend(invocation_id=inv_id, attempt=1, waiting_on=0),
            "fail": wpb.AttemptFail(
                invocation_id=inv_id, attempt=1, failure=pb.Failure(code="X", message="late")
            ),
            "complete": wpb.AttemptComplete(invocation_id=inv_id, attempt=1, output='"late"'),
        }
        for kind, body in stale_messages.items():
            ack = await old.request(**{kind: body})
            assert ack.error_reason == "STALE_ATTEMPT", kind
            assert inv_id in ack.error_message
        # The current attempt number from the wrong session is just as stale.
        ack = await old.request(
            complete=wpb.AttemptComplete(invocation_id=inv_id, attempt=2, output='"late"')
        )
        assert ack.error_reason == "STALE_ATTEMPT"

        assert await row_counts(db) == before
        assert await history(client, inv_id) == before_history
        inv = await client.get_invocation(inv_id)
        assert (inv.state, inv.attempt_count, inv.journal_length) == (
            pb.INVOCATION_STATE_RUNNING,
            2,
            1,
        )

        # The attempt that holds the invocation still can finish it.
        ack = await fresh.request(
            complete=wpb.AttemptComplete(invocation_id=inv_id, attempt=2, output='"fresh"')
        )
        assert ack.error_reason == ""
        done = await client.attach(inv_id)
        assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"fresh"')
    finally:
        await old.close()
        await fresh.close()
