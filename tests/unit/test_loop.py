"""runtime/loop.woken, the wait of every background loop: a loop woken and cancelled in
the same turn of the event loop (a wake-up while the server stops) must stop."""

from __future__ import annotations

import asyncio

from invoctl_server.runtime.loop import woken


async def _polls(event: asyncio.Event, seen: list[bool]) -> None:
    while True:  # as Timers, the Dispatcher and the bulk runner wait
        seen.append(await woken(event, 5))
        event.clear()


async def test_a_loop_woken_as_it_is_cancelled_stops():
    for _ in range(20):
        event, seen = asyncio.Event(), []
        task = asyncio.create_task(_polls(event, seen))
        for _ in range(100):  # turns of the event loop until the loop waits on the event
            if event._waiters:
                break
            await asyncio.sleep(0)  # one turn, not a delay
        assert event._waiters, "the loop never waited"
        event.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done == {task} and task.cancelled(), "the cancellation was dropped"


async def test_it_says_whether_it_was_woken_or_timed_out():
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 5) is True
