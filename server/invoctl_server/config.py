"""Server configuration: command-line flags, with INVOCTL_* environment defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
from datetime import timedelta
from pathlib import Path

import platformdirs


@dataclasses.dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:9090"
    # None: start an embedded Postgres under data_dir.
    database_url: str | None = None
    data_dir: Path = dataclasses.field(
        default_factory=lambda: Path(platformdirs.user_data_dir("invoctl"))
    )
    max_payload_bytes: int = 1024 * 1024
    # A running attempt whose worker has not heart-beaten for this long is retried elsewhere.
    lease: timedelta = timedelta(seconds=30)
    # Timers and dispatch also poll this often, in case a notification was missed.
    poll_interval: float = 1.0
    pool_size: int = 20
    name: str = dataclasses.field(default_factory=lambda: f"server-{os.getpid()}")

    @property
    def heartbeat_interval(self) -> timedelta:
        return self.lease / 3


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"INVOCTL_{name}", default)


def parse_args(argv: list[str] | None = None) -> Config:
    base = Config()
    p = argparse.ArgumentParser(prog="invoctl serve", description="Run the invoctl server.")
    p.add_argument(
        "--listen",
        default=_env("LISTEN", base.listen),
        help="host:port to serve gRPC on (default %(default)s; port 0 picks a free one)",
    )
    p.add_argument(
        "--database-url",
        default=_env("DATABASE_URL"),
        help="Postgres DSN; without it an embedded Postgres runs under --data-dir",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("DATA_DIR", str(base.data_dir))),
        help="where the embedded Postgres keeps its data (default %(default)s)",
    )
    p.add_argument(
        "--max-payload-bytes",
        type=int,
        default=int(_env("MAX_PAYLOAD_BYTES", str(base.max_payload_bytes))),
        help="largest accepted input or output (default %(default)s)",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=float(_env("LEASE_SECONDS", str(base.lease.total_seconds()))),
        help="attempt lease; workers heart-beat at a third of it (default %(default)s)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=float(_env("POLL_INTERVAL", str(base.poll_interval))),
        help="seconds between polls of timers and ready work (default %(default)s)",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=int(_env("POOL_SIZE", str(base.pool_size))),
        help="database connections (default %(default)s)",
    )
    p.add_argument("--name", default=_env("NAME", base.name), help="actor name in histories")
    a = p.parse_args(argv)
    return Config(
        listen=a.listen,
        database_url=a.database_url,
        data_dir=a.data_dir,
        max_payload_bytes=a.max_payload_bytes,
        lease=timedelta(seconds=a.lease_seconds),
        poll_interval=a.poll_interval,
        pool_size=a.pool_size,
        name=a.name,
    )
