"""Batched stream messages: several worker or server messages in one ConnectRequest or
ConnectResponse, negotiated in the hello and welcome. Driven by a hand-written worker on
the raw stream; every other end-to-end test runs the SDK's worker, which batches."""

from __future__ import annotations

import pytest

from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from tests.e2e._raw import RawSession, register, run_entry

UNKNOWN = "inv_" + "A" * 22


@pytest.mark.parametrize("accepts_batches", [True, False])
async def test_attempts_of_one_claim_come_in_one_message_only_to_a_worker_that_asked(
    workers, client, accepts_batches
):
    deployment_id = await register(workers)
    ids = [await client.send("Raw", "work", i) for i in range(8)]
    # All 8 are ready before the session opens: its first claim takes them together.
    session = RawSession(
        workers, deployment_id, "raw", max_concurrency=8, accepts_batches=accepts_batches
    )
    try:
        await session.open(heartbeat=True)
        assert session.welcome.accepts_batches  # the server always reads batches
        received = await session.read_messages(8)
        starts = [m.attempt for message in received for m in message]
        assert sorted(s.invocation_id for s in starts) == sorted(ids)
        assert all(s.attempt == 1 for s in starts)
        # A worker that did not ask (an older SDK) gets each message on its own.
        assert [len(m) for m in received] == ([8] if accepts_batches else [1] * 8)
    finally:
        await session.close()


async def test_a_batch_from_the_worker_is_handled_as_its_messages_one_by_one(workers, client):
    deployment_id = await register(workers)
    appended, completed, untouched = [await client.send("Raw", "work", i) for i in range(3)]
    session = RawSession(workers, deployment_id, "raw", max_concurrency=3, accepts_batches=True)
    try:
        await session.open(heartbeat=True)
        assert len([m for message in await session.read_messages(3) for m in message]) == 3
        seq = [session.next_seq() for _ in range(5)]
        nested = wpb.ConnectRequestBatch(
            messages=[
                wpb.ConnectRequest(
                    seq=session.next_seq(),
                    complete=wpb.AttemptComplete(invocation_id=untouched, attempt=1, output="1"),
                )
            ]
        )
        batch = [
            wpb.ConnectRequest(
                seq=seq[0],
                append=wpb.JournalAppend(
                    invocation_id=appended, attempt=1, entries=[run_entry(0, "1")]
                ),
            ),
            wpb.ConnectRequest(
                seq=seq[1],
                complete=wpb.AttemptComplete(invocation_id=completed, attempt=1, output='"ok"'),
            ),
            wpb.ConnectRequest(
                seq=seq[2],
                append=wpb.JournalAppend(
                    invocation_id=UNKNOWN, attempt=1, entries=[run_entry(0, "1")]
                ),
            ),
            wpb.ConnectRequest(seq=seq[3], hello=session.hello),
            wpb.ConnectRequest(seq=seq[4], batch=nested),
        ]
        await session.write(wpb.ConnectRequest(batch=wpb.ConnectRequestBatch(messages=batch)))

        # One ack per message of the batch, whatever stream messages carry them.
        acks = {m.ack.seq: m.ack for message in await session.read_messages(5) for m in message}
        assert sorted(acks) == seq
        assert acks[seq[0]].error_reason == ""
        assert [e.value for e in acks[seq[0]].entries] == ["1"]
        assert acks[seq[1]].error_reason == ""
        assert acks[seq[2]].error_reason == "INVOCATION_NOT_FOUND"
        # Neither a hello nor a batch may be nested: refused, and what was in it ignored.
        assert acks[seq[3]].error_reason == "INVALID_ARGUMENT"
        assert acks[seq[4]].error_reason == "INVALID_ARGUMENT"

        done = await client.attach(completed)
        assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"ok"')
        assert [e.value for e in (await client.get_journal(appended)).entries] == ["1"]
        still = await client.get_invocation(untouched)
        assert (still.state, still.journal_length) == (pb.INVOCATION_STATE_RUNNING, 0)
    finally:
        await session.close()
