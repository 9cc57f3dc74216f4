"""Test helpers: waiting on conditions with a deadline, and real server/worker processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def dsn_for(base_uri: str, database: str) -> str:
    """The DSN of another database on the embedded server whose URI is `base_uri`
    (postgresql://postgres:@/postgres?host=/socket/dir)."""
    prefix, _, query = base_uri.partition("?")
    return f"{prefix.rsplit('/', 1)[0]}/{database}?{query}"


async def wait_for(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.02)  # polling interval of the condition, not a wait for it
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class ServerProcess:
    """`python -m invoctl_server` in a child process on a free loopback port.

    Tracing is off (OTEL_TRACES_EXPORTER=none) unless `env` says otherwise; `env` adds to
    or overrides the inherited environment."""

    def __init__(self, database: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.database = database
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self.http_url = ""  # http://127.0.0.1:PORT, unless --http-listen off

    def _database_args(self) -> list[str]:
        return ["--database-url", self.database]

    def _environ(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "OTEL_TRACES_EXPORTER": "none", **self.env}

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = self._environ()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoctl_server", "--listen", "127.0.0.1:0",
             "--http-listen", "127.0.0.1:0", *self._database_args(), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        # A thread reads the output (so the pipe never blocks the child) and reports the
        # address line; the deadline holds even when the child prints nothing.
        found = threading.Event()
        self.output: list[str] = []

        def read(stream) -> None:
            for line in stream:
                self.output.append(line)
                if h := re.match(r"invoctl HTTP API on (https?://\S+)", line):
                    self.http_url = h.group(1)
                m = re.match(r"invoctl serving on (127\.0\.0\.1:\d+)", line)
                if m and not found.is_set():
                    self.address = m.group(1)
                    found.set()

        threading.Thread(target=read, args=(self.proc.stdout,), daemon=True).start()
        if not found.wait(timeout):
            self.kill()
            tail = "".join(self.output[-30:])
            raise AssertionError(f"server process did not start within {timeout}s:\n{tail}")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class EmbeddedServerProcess(ServerProcess):
    """A ServerProcess on the embedded Postgres under `data_dir` (--data-dir, no
    --database-url: it starts that Postgres or joins the one running there)."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        super().__init__("", *extra, env=env)
        self.data_dir = data_dir

    def _database_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)]

    def _environ(self) -> dict[str, str]:
        # An inherited INVOCTL_DATABASE_URL would take the place of the embedded Postgres.
        env = super()._environ()
        env.pop("INVOCTL_DATABASE_URL", None)
        return env


def run_server_to_exit(database: str, *args: str, timeout: float = 30.0):
    """`python -m invoctl_server --database-url ... *args` run to its exit, for a server that
    refuses to start; INVOCTL_* variables are not inherited. Returns the CompletedProcess
    (stdout and stderr as text). A server that starts anyway is killed at `timeout`. The
    HTTP API listens on a free port unless `args` say otherwise (the last flag wins)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOCTL_")}
    env.update(PYTHONUNBUFFERED="1", OTEL_TRACES_EXPORTER="none")
    return subprocess.run(
        [sys.executable, "-m", "invoctl_server", "--http-listen", "127.0.0.1:0",
         "--database-url", database, *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout,
    )  # fmt: skip


class WorkerProcess:
    """A worker script (a file under tests/workers/) in a child process."""

    def __init__(self, script: str, server: str, *args: str) -> None:
        self.cmd = [sys.executable, str(ROOT / "tests" / "workers" / script), server, *args]
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.cmd, env=env, cwd=ROOT)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
