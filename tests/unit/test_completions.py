"""Completions: a waiter gets the row a completion on this server wrote, without reading
it, whichever comes first of the commit's notification and the write's return."""

from __future__ import annotations

from invoctl_server.runtime.completions import Completions

ROW = {"id": "inv_1", "state": "completed"}


async def test_a_notification_during_a_local_write_waits_for_the_row():
    c = Completions()
    waiter = c.register("inv_1")
    with c.writing("inv_1"):
        c.notified("inv_1")  # the commit's notification, before the write returned
        assert not waiter.done()
        c.completed("inv_1", ROW)
    assert waiter.result() is ROW


async def test_a_refused_local_write_passes_a_held_notification_on():
    c = Completions()
    waiter = c.register("inv_1")
    try:
        with c.writing("inv_1"):
            c.notified("inv_1")  # another server completed it meanwhile
            raise RuntimeError("stale attempt")
    except RuntimeError:
        pass
    assert waiter.done() and waiter.result() is None  # None: read the row


async def test_a_refused_local_write_without_notification_wakes_nobody():
    c = Completions()
    waiter = c.register("inv_1")
    try:
        with c.writing("inv_1"):
            raise RuntimeError("stale attempt")
    except RuntimeError:
        pass
    assert not waiter.done()


async def test_notifications_of_other_invocations_pass_through():
    c = Completions()
    other = c.register("inv_2")
    with c.writing("inv_1"):
        c.notified("inv_2")
        assert other.result() is None
