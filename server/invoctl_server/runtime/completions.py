"""Clients waiting for invocations to complete (Invoke as a call, Attach)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any


class Completions:
    """Futures keyed by invocation ID, resolved by the `invoctl_completed` notification.

    Register before reading the row, so a completion between the read and the wait is not
    missed; callers still re-read the row when a wait times out (a notification may be lost
    while the listener reconnects).
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future]] = defaultdict(set)

    def register(self, invocation_id: str) -> asyncio.Future:
        """A future resolved with the completed row (when this server completed it) or
        None (a notification: read the row)."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters[invocation_id].add(fut)
        return fut

    def unregister(self, invocation_id: str, fut: asyncio.Future) -> None:
        waiters = self._waiters.get(invocation_id)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[invocation_id]

    def completed(self, invocation_id: str, row: Any = None) -> None:
        for fut in self._waiters.pop(invocation_id, ()):
            if not fut.done():
                fut.set_result(row)
