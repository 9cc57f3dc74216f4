"""Operator requests racing each other, in one server and across two server processes on
one database: one consistent end state, and a history that agrees with it
(DESIGN.md sections 3 and 4)."""

from __future__ import annotations

import asyncio

import pytest

from invoctl.client import Client, InvoctlError
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._operator import (
    OPERATOR,
    Lab,
    Operator,
    assert_history_is_a_chain,
    transitions,
)
from tests.support import ServerProcess, wait_for

ROUNDS = 6
S = pb
SETTLED = (S.INVOCATION_STATE_PAUSED, S.INVOCATION_STATE_BACKING_OFF)


async def _outcome(coro) -> pb.Invocation | InvoctlError:
    try:
        return await coro
    except InvoctlError as err:
        return err


async def _race_kill_and_pause(client: Client, lab: Lab, a: Operator, b: Operator) -> None:
    inv_id = await lab.make(S.INVOCATION_STATE_RUNNING)
    killed, paused = await asyncio.gather(_outcome(a.kill(inv_id)), _outcome(b.pause(inv_id)))
    assert not isinstance(killed, InvoctlError), repr(killed)
    inv = await client.get_invocation(inv_id)
    assert (inv.state, inv.outcome) == (S.INVOCATION_STATE_COMPLETED, S.OUTCOME_KILLED)
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    ops = [(t.from_state, t.to_state) for t in steps if t.actor == OPERATOR]
    if isinstance(paused, InvoctlError):
        # The kill came first; the pause found it completed.
        assert paused.reason == "INVALID_STATE_TRANSITION", repr(paused)
        assert paused.metadata["state"] == "completed"
        assert ops == [(S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_COMPLETED)]
    else:
        assert paused.state == S.INVOCATION_STATE_PAUSED
        assert ops == [
            (S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_PAUSED),
            (S.INVOCATION_STATE_PAUSED, S.INVOCATION_STATE_COMPLETED),
        ]


async def _race_cancel_and_kill(client: Client, lab: Lab, a: Operator, b: Operator) -> None:
    # Running in a step that waits for the lab's release: a cancel leaves it running.
    inv_id = await lab.make(S.INVOCATION_STATE_RUNNING)
    cancelled, killed = await asyncio.gather(_outcome(a.cancel(inv_id)), _outcome(b.kill(inv_id)))
    assert not isinstance(killed, InvoctlError), repr(killed)
    inv = await client.get_invocation(inv_id)
    assert (inv.state, inv.outcome) == (S.INVOCATION_STATE_COMPLETED, S.OUTCOME_KILLED)
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    ops = [(t.from_state, t.to_state, t.event) for t in steps if t.actor == OPERATOR]
    if isinstance(cancelled, InvoctlError):
        # The kill came first; the cancel found it completed.
        assert cancelled.reason == "INVALID_STATE_TRANSITION", repr(cancelled)
        assert cancelled.metadata["state"] == "completed"
        assert ops == [(S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_COMPLETED, "killed")]
    else:
        assert cancelled.state == S.INVOCATION_STATE_RUNNING
        assert inv.HasField("cancelled_at")
        assert ops == [
            (S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_RUNNING, "cancelled"),
            (S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_COMPLETED, "killed"),
        ]


async def _race_pause_and_resume(client: Client, lab: Lab, a: Operator, b: Operator) -> None:
    # Backing-off allows both; its handler fails at once and retries once a day.
    inv_id = await lab.make(S.INVOCATION_STATE_BACKING_OFF)
    paused, resumed = await asyncio.gather(_outcome(a.pause(inv_id)), _outcome(b.resume(inv_id)))
    assert not isinstance(resumed, InvoctlError), repr(resumed)

    async def settled() -> pb.Invocation | None:
        inv = await client.get_invocation(inv_id)
        return inv if inv.state in SETTLED else None

    end = await wait_for(settled, what=f"{inv_id} to settle")
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    assert steps[-1].to_state == end.state
    ops = [(t.from_state, t.to_state) for t in steps if t.actor == OPERATOR]
    if isinstance(paused, InvoctlError):
        # The resume came first; the pause found it ready (not yet claimed).
        assert paused.reason == "INVALID_STATE_TRANSITION", repr(paused)
        assert paused.metadata["state"] == "ready"
        assert ops == [(S.INVOCATION_STATE_BACKING_OFF, S.INVOCATION_STATE_READY)]
        assert (end.state, end.attempt_count) == (S.INVOCATION_STATE_BACKING_OFF, 2)
    elif ops[0] == (S.INVOCATION_STATE_BACKING_OFF, S.INVOCATION_STATE_PAUSED):
        # Paused first, then resumed: it ran again and failed again.
        assert ops == [
            (S.INVOCATION_STATE_BACKING_OFF, S.INVOCATION_STATE_PAUSED),
            (S.INVOCATION_STATE_PAUSED, S.INVOCATION_STATE_READY),
        ]
        assert (end.state, end.attempt_count) == (S.INVOCATION_STATE_BACKING_OFF, 2)
    else:
        # Resumed first, and the pause caught the retry running or failed again.
        assert ops[0] == (S.INVOCATION_STATE_BACKING_OFF, S.INVOCATION_STATE_READY)
        assert len(ops) == 2 and ops[1][1] == S.INVOCATION_STATE_PAUSED, ops
        assert ops[1][0] in (S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_BACKING_OFF)
        assert paused.state == S.INVOCATION_STATE_PAUSED
        assert end.state == S.INVOCATION_STATE_PAUSED


RACES = [_race_kill_and_pause, _race_cancel_and_kill, _race_pause_and_resume]


@pytest.mark.parametrize("race", RACES)
async def test_races_in_one_server(server, client, race):
    async with (
        Lab(server.address, client) as lab,
        Operator(server.address) as a,
        Operator(server.address) as b,
    ):
        for _ in range(ROUNDS):
            await race(client, lab, a, b)


RACES = [_race_kill_and_pause, _race_cancel_and_kill, _race_pause_and_resume]


@pytest.mark.parametrize("race", RACES)
async def test_races_across_two_server_processes(database, race):
    fast = ("--lease-seconds", "3", "--poll-interval", "0.25")
    first, second = ServerProcess(database, *fast), ServerProcess(database, *fast)
    try:
        await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
        async with (
            Client(first.address) as client,
            Lab(first.address, client) as lab,
            Operator(first.address) as a,
            Operator(second.address) as b,
        ):
            for _ in range(ROUNDS):
                await race(client, lab, a, b)
    finally:
        first.kill()
        second.kill()
