"""A worker process whose attempts outlive their lease, for the lease tests.

    python tests/workers/leases.py SERVER --name NAME [--max-concurrency N]

``Leases/hold`` journals a step, holds the attempt for ``seconds`` inside a second step
(no journal write meanwhile: only the session's heart-beats keep its lease), then
journals a third step and completes. A process of its own, so that the heart-beats keep
their pace however busy the test process is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from invoctl.sdk import Context, Service, Worker


def services() -> list[Service]:
    leases = Service("Leases")

    @leases.handler()
    async def hold(ctx: Context, seconds: float) -> str:
        await ctx.run("one", lambda: "one")
        await ctx.run("hold", asyncio.sleep, seconds)
        await ctx.run("two", lambda: "two")
        return "held"

    return [leases]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("server")
    p.add_argument("--name", required=True)
    p.add_argument("--max-concurrency", type=int, default=64)
    a = p.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s {a.name} %(levelname)s %(name)s: %(message)s"
    )
    worker = Worker(services(), a.server, max_concurrency=a.max_concurrency, name=a.name)

    async def serve() -> None:
        stopping: set[asyncio.Task[None]] = set()
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, lambda: stopping.add(asyncio.create_task(worker.stop()))
        )
        await worker.run()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
