"""Fencing: writes from an attempt that no longer holds its invocation are refused with
STALE_ATTEMPT and change nothing. Driven by a hand-written worker on the raw stream."""

from __future__ import annotations

from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from tests.e2e._helpers import history, row_counts
from tests.e2e._raw import RawSession, register, run_entry


async def test_writes_of_a_lapsed_attempt_are_refused(workers, client, db):
    deployment_id = await register(workers)
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
            append=wpb.JournalAppend(invocation_id=inv_id, attempt=1, entries=[run_entry(0, "1")])
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
                invocation_id=inv_id, attempt=1, entries=[run_entry(1, "2")]
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
