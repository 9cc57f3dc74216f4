"""A dedicated connection that LISTENs for other servers' notifications.

Notifications are an optimisation for latency only: every loop that reacts to them also
polls, so a lost connection or a dropped notification delays work but never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from .loop import Loop

log = logging.getLogger("invoctl.listener")


class Listener(Loop):
    task_name = "listener"

    def __init__(self, dsn: str, handlers: dict[str, Callable[[str], None]]) -> None:
        self._dsn = dsn
        self._handlers = handlers
        self.connected = asyncio.Event()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel, handler in self._handlers.items():
                    await conn.add_listener(channel, self._callback(handler))
                self.connected.set()
                delay = 0.1
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener connection failed: %s; retrying in %.1fs", exc, delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(delay)  # reconnect backoff
            delay = min(delay * 2, 5.0)

    @staticmethod
    def _callback(handler: Callable[[str], None]):
        def on_notify(_conn, _pid, _channel, payload: str) -> None:
            handler(payload)

        return on_notify
