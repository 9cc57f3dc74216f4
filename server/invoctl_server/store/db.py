"""Connections: the pool, schema migrations, and transactions that retry on conflicts."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar

import asyncpg

from ..domain.errors import DatabaseUnavailable, LockTimeout
from . import transition

log = logging.getLogger("invoctl.store")
T = TypeVar("T")

# Any constant works; it only has to be the same for every invoctl server on a database.
_MIGRATION_LOCK = 0x1F0C_7C71
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Errors that mean "the database is not there right now": clients may retry.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


def is_connection_error(exc: BaseException) -> bool:
    """True for a lost or refused database connection. asyncpg's InterfaceError also
    covers misuse (wrong arguments), which is a bug, so only its closed-connection
    variants count."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in version order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        m = _MIGRATION_FILE.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..N without gaps, got {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply missing migrations; returns the versions applied.

    Safe when several servers start at once: they serialise on a session advisory lock,
    and each version is applied in its own transaction together with its bookkeeping row.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, sql in migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("applied migration %04d_%s", version, name)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns come back as text: payloads are passed through untouched.
    await conn.set_type_codec("jsonb", encoder=str, decoder=str, schema="pg_catalog")


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Pooled connections keep no session state (no LISTEN, session locks or SETs: the
    listener and migrations use their own connections), so the default reset, a round trip
    on every release, buys nothing."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_no_reset,
        # Statements are few and fixed; caching their plans pays off.
        statement_cache_size=256,
        # Plan each prepared statement once, generically, instead of again at every
        # execution: Postgres keeps re-planning a statement whose generic plan it
        # estimates dearer (an unnest of unknown length), and re-planning the call-tree
        # statements cost a kill 0.7 ms of Postgres CPU. Hot statements have index access
        # by construction, so the generic plan is the good one (test_plans.py checks
        # every statement); those of optional filters ask for custom plans
        # (_sql.custom_plans).
        server_settings={"plan_cache_mode": "force_generic_plan"},
    )


_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def transaction(
    pool: asyncpg.Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    attempts: int = 5,
) -> T:
    """Run `work(conn)` in a transaction, retrying it on deadlock or serialization failure.

    The spans of its transitions end after the commit, where they are counted too (none
    for a rolled-back attempt).
    Maps lost connections to DatabaseUnavailable and lock timeouts to LockTimeout.
    """
    return await _retrying(pool, work, attempts=attempts, in_transaction=True)


async def statement(
    pool: asyncpg.Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    attempts: int = 5,
) -> T:
    """`transaction` for work that is one statement, atomic by itself: no BEGIN/COMMIT.
    The spans of its transitions end once it returned (the statement committed)."""
    return await _retrying(pool, work, attempts=attempts, in_transaction=False)


async def _retrying(
    pool: asyncpg.Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    attempts: int,
    in_transaction: bool,
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            with transition.spans_after_commit() as committing:
                try:
                    async with pool.acquire() as conn:
                        if in_transaction:
                            async with conn.transaction():
                                result = await work(conn)
                                committing.count()
                        else:
                            result = await work(conn)
                except BaseException:
                    committing.abandon()
                    raise
            committing.end()
            return result
        except _RETRYABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.005 * attempt)  # back off before trying again
        except asyncpg.LockNotAvailableError as exc:
            raise LockTimeout("the invocation is locked by another operation; try again") from exc
        except Exception as exc:
            if is_connection_error(exc):
                raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
            raise
    raise AssertionError("unreachable")
