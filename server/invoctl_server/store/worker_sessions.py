"""Worker sessions as rows: every server can tell which deployments have a live worker.

A session's row is written when its stream opens, refreshed by its heart-beats and deleted
when the stream closes. A server that dies takes its streams with it without deleting their
rows; those stop being refreshed, count as gone once older than the lease, and are swept.
A deployment keeps when a worker of it was last seen after its sessions are gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ..domain.errors import DeploymentNotFound
from ._sql import Q


@dataclasses.dataclass(frozen=True)
class WorkerSession:
    id: str
    deployment_id: str
    worker_name: str
    server: str
    connected_at: datetime
    last_seen_at: datetime


async def session_seen(
    conn: asyncpg.Connection,
    *,
    session_id: str,
    deployment_id: str,
    worker_name: str,
    server: str,
    now: datetime,
) -> None:
    """The session opened or heart-beat. Raises DeploymentNotFound for an unknown
    deployment (a hello naming one that was never registered)."""
    found = await conn.fetchval(
        Q["worker_session_seen"], session_id, deployment_id, worker_name, server, now
    )
    if found is None:
        raise DeploymentNotFound(
            f"deployment {deployment_id} not found", deployment_id=deployment_id
        )


async def session_close(conn: asyncpg.Connection, session_id: str, now: datetime) -> None:
    await conn.execute(Q["worker_session_close"], session_id, now)


async def sessions_sweep(conn: asyncpg.Connection, *, unseen_since: datetime) -> None:
    """Remove the sessions of servers that died (not heard of since `unseen_since`)."""
    await conn.execute(Q["worker_sessions_sweep"], unseen_since)


async def sessions_of(
    conn: asyncpg.Connection, deployment_ids: Sequence[str]
) -> dict[str, list[WorkerSession]]:
    """Each deployment's session rows (live or not refreshed lately), oldest first."""
    out: dict[str, list[WorkerSession]] = {}
    for r in await conn.fetch(Q["worker_sessions_of"], list(deployment_ids)):
        out.setdefault(r["deployment_id"], []).append(WorkerSession(**dict(r)))
    return out
