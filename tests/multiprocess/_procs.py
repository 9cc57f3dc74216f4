"""Server and worker processes of the multi-process tests, and history helpers.

Every process a test starts goes through `Processes`, whose owner (the `procs` fixture)
SIGKILLs whatever still runs when the test ends, passed or failed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg

from invoctl.sdk import Worker
from tests.support import EmbeddedServerProcess, ServerProcess, WorkerProcess, wait_for
from tests.workers import steps

# Short leases and polls keep crash recovery within a test's time budget.
FAST = ("--lease-seconds", "2", "--poll-interval", "0.2")


class Processes:
    """Starts server and worker processes and remembers them for the teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._started: list[ServerProcess | WorkerProcess] = []

    async def server(self, database: str, *extra: str) -> ServerProcess:
        proc = ServerProcess(database, *FAST, *extra)
        self._started.append(proc)
        # start() blocks reading the child's output; keep the event loop free meanwhile.
        return await asyncio.to_thread(proc.start)

    async def embedded_server(self, data_dir: Path, *extra: str) -> EmbeddedServerProcess:
        """A server on the embedded Postgres under `data_dir` (started or joined)."""
        proc = EmbeddedServerProcess(data_dir, *FAST, *extra)
        self._started.append(proc)
        # The first one runs initdb: give it longer than a server on a running database.
        return await asyncio.to_thread(proc.start, 90.0)

    async def servers(self, database: str, count: int, *extra: str) -> list[ServerProcess]:
        """`count` servers started at the same moment."""
        return list(await asyncio.gather(*(self.server(database, *extra) for _ in range(count))))

    def worker(
        self, server: str, name: str, *, version: str | None = None, max_concurrency: int = 64
    ) -> WorkerProcess:
        """A `steps.py` worker process; it logs to `log_of(name)`. Every one serves the
        deployment the SDK derives from steps.py (the one `register_steps` registers),
        unless `version` names another."""
        proc = WorkerProcess(
            "steps.py", server, "--name", name, "--log", str(self.log_of(name)),
            "--gate", str(self.gate), "--max-concurrency", str(max_concurrency),
            *(("--deployment", version) if version else ()),
        )  # fmt: skip
        self._started.append(proc)
        return proc.start()

    @property
    def gate(self) -> Path:
        path = self.tmp / "gates"
        path.mkdir(exist_ok=True)
        return path

    def open_gate(self, name: str) -> None:
        (self.gate / name).touch()

    def log_of(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def executions(self, *names: str) -> Counter[tuple[str, str]]:
        """How often each (invocation ID, step) ran in the named workers."""
        runs: Counter[tuple[str, str]] = Counter()
        for name in names:
            path = self.log_of(name)
            if path.exists():
                for line in path.read_text().splitlines():
                    inv, step, _attempt = line.split()
                    runs[inv, step] += 1
        return runs

    def execution_lines(self, *names: str) -> list[tuple[str, str, int]]:
        """(invocation ID, step, attempt) of every execution in the named workers."""
        out = []
        for name in names:
            path = self.log_of(name)
            if path.exists():
                for line in path.read_text().splitlines():
                    inv, step, attempt = line.split()
                    out.append((inv, step, int(attempt)))
        return out

    def kill_all(self) -> None:
        for proc in reversed(self._started):
            proc.kill()


async def register_steps(server: str) -> str:
    """Register the deployment the `steps.py` processes serve (the code of steps.py, as
    any of them registers it), before one runs; returns its ID."""
    worker = Worker(steps.services(Path("/dev/null")), server)
    try:
        return await worker.register()
    finally:
        await worker.stop()


async def events_of(db: asyncpg.Connection, invocation_id: str) -> list[tuple[str, str, int]]:
    """(event, actor, attempt) of an invocation's history, in order. A timer's actor names
    the server that fired it (`timer:<server>`); which one did is not the point here."""
    rows = await db.fetch(
        "SELECT event, actor, attempt FROM invocation_transitions"
        " WHERE invocation_id = $1 ORDER BY id",
        invocation_id,
    )
    return [
        (r["event"], "timer" if r["actor"].startswith("timer:") else r["actor"], r["attempt"])
        for r in rows
    ]


async def states_of(db: asyncpg.Connection, ids: list[str]) -> dict[str, str]:
    rows = await db.fetch("SELECT id, state FROM invocations WHERE id = ANY($1::text[])", ids)
    return {r["id"]: r["state"] for r in rows}


async def deadlocks_so_far(db: asyncpg.Connection) -> int:
    """How many deadlocks Postgres counted in this database. A backend reports its count
    within a second of going idle, and when it exits: stop the servers and wait for
    `disconnected` before the last look."""
    await db.execute("SELECT pg_stat_clear_snapshot()")
    return await db.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )


async def disconnected(db: asyncpg.Connection) -> None:
    """Wait until no connection but `db` is open to its database."""

    async def gone() -> bool:
        n = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return n == 0

    await wait_for(gone, what="the servers' connections to close")
