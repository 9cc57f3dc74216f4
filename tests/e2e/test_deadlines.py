"""A request whose deadline passes (or whose client goes away) stops its database work:
the statement waiting in Postgres is cancelled and a write is rolled back, not left to
happen after the client was told it failed."""

from __future__ import annotations

import grpc
import pytest

from invoctl.client import Client, InvoctlError
from invoctl.v1 import control_pb2, control_pb2_grpc
from invoctl.v1 import invocation_pb2 as pb
from tests.support import wait_for

# The server's own loops (timers, dispatch) may wait on the lock too: count only the
# statement of the request.
WAITING_ON_A_LOCK = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND pid <> pg_backend_pid() AND query LIKE $1
"""


async def _no_waiters(db, statement: str) -> bool:
    return await db.fetchval(WAITING_ON_A_LOCK, statement) == 0


async def test_a_read_past_its_deadline_stops_waiting_in_postgres(server, database, db):
    import asyncpg

    locker = await asyncpg.connect(database)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE invocations IN ACCESS EXCLUSIVE MODE")
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = control_pb2_grpc.InvocationControlStub(channel)
                request = control_pb2.ListInvocationsRequest()
                with pytest.raises(grpc.aio.AioRpcError) as late:
                    await stub.ListInvocations(request, timeout=0.5)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # While the lock is still held: the server's statement was cancelled.
            page = "%ORDER BY id DESC%"  # ListInvocations' statement
            await wait_for(lambda: _no_waiters(db, page), what="the server to stop waiting")
    finally:
        await locker.close()


async def test_a_write_past_its_deadline_is_rolled_back(lab, server, database, db):
    import asyncpg

    inv_id = await lab.make(pb.INVOCATION_STATE_SUSPENDED)
    locker = await asyncpg.connect(database)
    try:
        async with locker.transaction():
            await locker.execute("SELECT 1 FROM invocations WHERE id = $1 FOR UPDATE", inv_id)
            async with Client(server.address, timeout=0.5) as impatient:
                with pytest.raises(InvoctlError) as late:
                    await impatient.kill_invocation(inv_id)
            assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            lock = "%WITH RECURSIVE tree(id)%"  # the kill's lock statement
            await wait_for(lambda: _no_waiters(db, lock), what="the server to give the kill up")
    finally:
        await locker.close()
    # Nobody waits for the row any more: the kill will never happen.
    assert (await lab.client.get_invocation(inv_id)).state == pb.INVOCATION_STATE_SUSPENDED
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE invocation_id = $1", inv_id) == 0
