"""request_id: a retried request returns the first result and acts once; a request_id
reused for another operation or invocation is refused (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio

from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._operator import (
    INVALID_ARGUMENT,
    OPERATOR,
    assert_refused,
    footprint,
    transitions,
)


async def test_kill_retried_with_its_request_id_acts_once(lab, client, op):
    inv_id = await lab.make(pb.INVOCATION_STATE_RUNNING)
    first = await op.kill(inv_id, request_id="kill-1", reason="retry me")
    second = await op.kill(inv_id, request_id="kill-1", reason="retry me")
    assert second == first
    assert (second.state, second.outcome) == (pb.INVOCATION_STATE_COMPLETED, pb.OUTCOME_KILLED)
    killed = [t for t in await transitions(client, inv_id) if t.event == "killed"]
    assert len(killed) == 1 and killed[0].actor == OPERATOR
    # Without the request_id, the same kill is a new request, refused.
    err = await op.refused("KillInvocation", inv_id)
    assert err.reason == "INVALID_STATE_TRANSITION"


async def test_restart_retried_with_its_request_id_returns_the_same_invocation(lab, client, op, db):
    old = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    first = await op.restart(old, request_id="restart-1")
    await client.attach(first.id)
    second = await op.restart(old, request_id="restart-1")
    assert second.id == first.id
    restarts = await db.fetchval("SELECT count(*) FROM invocations WHERE restarted_from = $1", old)
    assert restarts == 1
    # A new request_id is a new restart.
    third = await op.restart(old, request_id="restart-2")
    assert third.id not in (first.id, old)


async def test_pause_and_resume_retried_act_once(lab, client, op):
    inv_id = await lab.make(pb.INVOCATION_STATE_BACKING_OFF)
    paused = await op.pause(inv_id, request_id="p-1")
    assert await op.pause(inv_id, request_id="p-1") == paused
    resumed = await op.resume(inv_id, request_id="r-1")
    again = await op.resume(inv_id, request_id="r-1")
    assert again == resumed
    ops = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR]
    assert [(t.from_state, t.to_state) for t in ops] == [
        (pb.INVOCATION_STATE_BACKING_OFF, pb.INVOCATION_STATE_PAUSED),
        (pb.INVOCATION_STATE_PAUSED, pb.INVOCATION_STATE_READY),
    ]


async def test_request_id_reused_for_another_request_is_refused(lab, client, op, db):
    first = await lab.make(pb.INVOCATION_STATE_BACKING_OFF)
    other = await lab.make(pb.INVOCATION_STATE_BACKING_OFF)
    await op.pause(first, request_id="once")
    before = (await footprint(db, first), await footprint(db, other))
    for rpc, inv_id in (
        ("ResumeInvocation", first),  # another operation, same invocation
        ("PauseInvocation", other),  # same operation, another invocation
        ("KillInvocation", other),  # both
    ):
        err = await op.refused(rpc, inv_id, request_id="once")
        assert_refused(err, INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert (await footprint(db, first), await footprint(db, other)) == before
    assert (await client.get_invocation(other)).state == pb.INVOCATION_STATE_BACKING_OFF


async def test_concurrent_retries_of_one_request_act_once(lab, client, op, db):
    """Retries racing each other (they may share a batch): one acts, all get its answer."""
    inv_id = await lab.make(pb.INVOCATION_STATE_SUSPENDED)
    answers = await asyncio.gather(
        *(op.cancel(inv_id, request_id="cancel-burst", reason="burst") for _ in range(16))
    )
    assert all(a == answers[0] for a in answers)
    cancelled = [t for t in await transitions(client, inv_id) if t.event == "cancelled"]
    assert len(cancelled) == 1
    recorded = await db.fetch(
        "SELECT result FROM audit_log WHERE request_id = 'cancel-burst' AND result = 'OK'"
    )
    assert len(recorded) == 1
