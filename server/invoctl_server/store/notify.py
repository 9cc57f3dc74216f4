"""Notifications to every server's listeners, delivered when the transaction commits."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from ..domain.states import State
from ._sql import Q

COMPLETED = "invoctl_completed"  # payload: the invocation ID; wakes attached clients
READY = "invoctl_ready"  # wakes dispatchers


async def ready_if_any(conn: asyncpg.Connection, states: Iterable[str]) -> None:
    """Wake the dispatchers if any of the written rows became ready."""
    if any(s == State.READY for s in states):
        await conn.execute(Q["notify"], READY, "")


async def completed(conn: asyncpg.Connection, invocation_id: str) -> None:
    await conn.execute(Q["notify"], COMPLETED, invocation_id)
