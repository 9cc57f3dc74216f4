"""Servers sharing one embedded Postgres (--data-dir, no --database-url): the first starts
it, the others join it, and it stops with the last one to stop, whichever started it and
however the others ended (a SIGKILL included). It never stops under a server still
running."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from invoctl.client import Client
from tests.support import wait_for


@pytest.fixture(scope="module")
def data_dir():
    """One data directory for the tests here: initdb runs once. Each test starts with its
    Postgres stopped, and whatever of it a failed test left running is killed.

    Not under pytest's tmp_path: run as root, Postgres runs as another user, which must
    traverse the path, and every pytest session that starts makes /tmp/pytest-of-root
    private again (initdb then fails)."""
    path = Path(tempfile.mkdtemp(prefix="invoctl-embedded-")).resolve()
    yield path
    for proc in _postgres_of(path / "pgdata"):
        proc.kill()
    shutil.rmtree(path, ignore_errors=True)


def _postgres_of(pgdata: Path) -> list[psutil.Process]:
    """The postmaster running on `pgdata` and all its processes (checkpointer, backends…)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(pgdata) in (proc.info["cmdline"] or []):
            try:
                found += [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
    return found


def _postmaster(pgdata: Path) -> tuple[psutil.Process, list[psutil.Process]]:
    """The running postmaster (its PID from postmaster.pid) and its children."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    assert postmaster.is_running()
    return postmaster, postmaster.children(recursive=True)


def _running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (is_running also tells a reused PID from the process)."""
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def _gone(pgdata: Path, processes: list[psutil.Process]) -> None:
    async def nothing_left():
        return not _running(processes) and not _postgres_of(pgdata)

    await wait_for(nothing_left, timeout=20, what="the embedded Postgres to stop")
    # A clean shutdown: Postgres removed its lock file on the way out.
    assert not (pgdata / "postmaster.pid").exists()


async def _serves(address: str) -> None:
    """The server answers a health check and an RPC that reads the database."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with Client(address) as client:
        assert await client.list_deployments() == []


async def test_postgres_stops_with_the_last_server_when_its_starter_was_killed(data_dir, procs):
    pgdata = data_dir / "pgdata"
    assert not _postgres_of(pgdata)
    starter = await procs.embedded_server(data_dir)
    postmaster, children = _postmaster(pgdata)
    joiner = await procs.embedded_server(data_dir)
    assert _postmaster(pgdata)[0] == postmaster  # joined it, no second Postgres

    starter.kill()  # SIGKILL: nothing of its own clean-up runs
    assert postmaster.is_running()
    await _serves(joiner.address)

    joiner.stop()
    assert joiner.proc.returncode == 0, "".join(joiner.output[-30:])
    await _gone(pgdata, [postmaster, *children])


async def test_postgres_stays_up_for_a_server_still_running(data_dir, procs):
    pgdata = data_dir / "pgdata"
    assert not _postgres_of(pgdata)
    starter = await procs.embedded_server(data_dir)
    postmaster, children = _postmaster(pgdata)
    joiner = await procs.embedded_server(data_dir)

    starter.proc.send_signal(signal.SIGTERM)
    assert starter.proc.wait(15) == 0, "".join(starter.output[-30:])
    assert _running([postmaster]) == [postmaster]
    assert (pgdata / "postmaster.pid").read_text().split()[0] == str(postmaster.pid)
    await _serves(joiner.address)

    joiner.proc.send_signal(signal.SIGTERM)
    assert joiner.proc.wait(15) == 0, "".join(joiner.output[-30:])
    await _gone(pgdata, [postmaster, *children])
    assert (pgdata / "PG_VERSION").exists()  # stopped, not deleted: the data stays


async def test_a_server_joining_while_the_last_one_stops_gets_a_running_postgres(data_dir, procs):
    """Whether the joiner comes first (and is counted) or the stopper does (and the joiner
    starts Postgres again), the joiner ends up serving on a running Postgres."""
    pgdata = data_dir / "pgdata"
    assert not _postgres_of(pgdata)
    stopper = await procs.embedded_server(data_dir)
    joining = asyncio.create_task(procs.embedded_server(data_dir))
    stopper.proc.send_signal(signal.SIGTERM)
    joiner = await joining
    assert await asyncio.to_thread(stopper.proc.wait, 15) == 0, "".join(stopper.output[-30:])
    await _serves(joiner.address)
    postmaster, children = _postmaster(pgdata)

    joiner.stop()
    assert joiner.proc.returncode == 0, "".join(joiner.output[-30:])
    await _gone(pgdata, [postmaster, *children])


async def test_a_server_in_a_process_that_stopped_it_starts_it_again(data_dir):
    """Two servers in one process, one after the other: the second starts the Postgres the
    first stopped (the library's handle of it, kept per process, is stale by then)."""
    from invoctl_server.app import App
    from tests.conftest import server_config

    pgdata = data_dir / "pgdata"
    assert not _postgres_of(pgdata)
    for _ in range(2):
        app = await App.start(server_config(None, data_dir=data_dir))
        postmaster, children = _postmaster(pgdata)
        try:
            await _serves(app.address)
        finally:
            await app.stop(grace=0)
        await _gone(pgdata, [postmaster, *children])
