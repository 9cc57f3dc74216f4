"""The safe defaults at start: without auth, a non-loopback address is refused before
anything starts, and no listener shares a port another process holds.

The address is 192.0.2.1 (TEST-NET-1, RFC 5737): not an address of this machine, so even
a broken check could not expose a test server.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from invoctl.client import Client, InvoctlError
from invoctl_server.app import App
from invoctl_server.config import ConfigError
from tests.conftest import server_config
from tests.e2e.test_auth import tokens_config
from tests.support import run_server_to_exit

REMOTE = "192.0.2.1:0"


async def other_sessions(db) -> int:
    """Connections to the test database other than the test's own."""
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )


async def test_app_refuses_a_remote_address_without_auth_and_starts_nothing(database, db):
    tasks = asyncio.all_tasks()
    with pytest.raises(ConfigError) as refused:
        await App.start(server_config(database, listen=REMOTE))
    assert REMOTE in str(refused.value)
    assert "--insecure-allow-remote" in str(refused.value)
    assert asyncio.all_tasks() <= tasks  # no loop left behind
    assert await other_sessions(db) == 0  # not even a migration connection


async def test_the_server_process_exits_1_with_the_message(database):
    done = await asyncio.to_thread(run_server_to_exit, database, "--listen", REMOTE)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("invoctl serve: ")]
    assert line.startswith(f"invoctl serve: refusing to listen on {REMOTE} without auth")
    assert "--insecure-allow-remote" in line
    assert "Traceback" not in done.stderr
    assert "invoctl serving on" not in done.stdout


async def test_a_second_server_on_a_port_in_use_exits_1_and_shares_nothing(database):
    """gRPC would share the port (SO_REUSEPORT) and the kernel split connections between
    a server with tokens and one without: the second must refuse to start instead."""
    guarded = await App.start(server_config(database, auth_tokens=tokens_config()))
    try:
        done = await asyncio.to_thread(
            run_server_to_exit, database, "--listen", guarded.address, timeout=60
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"invoctl serve: {guarded.address} is already in use" in done.stderr.splitlines()
        assert "invoctl serving on" not in done.stdout
        # Every call without a token still meets the guarded server.
        async with Client(guarded.address) as anonymous:
            for _ in range(20):
                with pytest.raises(InvoctlError) as refused:
                    await anonymous.list_invocations()
                assert refused.value.reason == "UNAUTHENTICATED"
    finally:
        await guarded.stop(grace=0)


async def test_a_metrics_port_in_use_exits_1(database):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = await asyncio.to_thread(
            run_server_to_exit, database, "--listen", "127.0.0.1:0", "--metrics-listen", address
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"invoctl serve: {address} is already in use" in done.stderr.splitlines()
