"""Clients waiting for invocations to complete (Invoke as a call, Attach)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any


class Completions:
    """Futures keyed by invocation ID, resolved by the `invoctl_completed` notification.

    Register before reading the row, so a completion between the read and the wait is not
    missed; callers still re-read the row when a wait times out (a notification may be lost
    while the listener reconnects).
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future]] = defaultdict(set)
        # Completions this server is writing, and those of them already notified.
        self._writing: Counter[str] = Counter()
        self._notified: set[str] = set()

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

    @contextlib.contextmanager
    def writing(self, invocation_id: str) -> Iterator[None]:
        """This server writes a completion of `invocation_id` and hands its row to
        `completed` when it commits. The notification of that commit often arrives first:
        meanwhile it is held back, or every waiter would read the row it is about to get.
        If no row comes (the completion was refused), a held-back notification is passed
        on: another server completed it."""
        self._writing[invocation_id] += 1
        try:
            yield
        finally:
            self._writing[invocation_id] -= 1
            if not self._writing[invocation_id]:
                del self._writing[invocation_id]
                if invocation_id in self._notified:
                    self._notified.discard(invocation_id)
                    self.completed(invocation_id)

    def notified(self, invocation_id: str) -> None:
        """The `invoctl_completed` notification, from any server."""
        if invocation_id in self._writing:
            self._notified.add(invocation_id)
        else:
            self.completed(invocation_id)

    def completed(self, invocation_id: str, row: Any = None) -> None:
        if row is not None:
            self._notified.discard(invocation_id)
        for fut in self._waiters.pop(invocation_id, ()):
            if not fut.done():
                fut.set_result(row)
