"""A worker process for the multi-process tests.

    python tests/workers/steps.py SERVER --name NAME --log FILE [--gate DIR]
        [--deployment DP] [--max-concurrency N]

Every execution of a ``ctx.run`` body appends ``<invocation id> <step> <attempt>`` to
``--log``, so a test can count how often each step really ran (a replayed step does not
run). ``Steps/gated`` blocks in its second step until the file ``<gate>/<input>`` exists
(logged as step ``two`` on entry and ``passed`` once through): the test holds a handler
mid-flight with it, then kills or freezes the process there.

SIGTERM stops the worker gracefully: running attempts get a few seconds to finish.

``--deployment`` names the deployment (the version); without it the SDK derives one
from the code, so every process running this file serves one deployment: replicas and
restarts of one version share it, and an invocation pinned to it runs on any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from invoctl.sdk import Context, Service, Worker


def steps_service(log: Path, gate: Path | None) -> Service:
    steps = Service("Steps")

    def record(ctx: Context, step: str) -> str:
        # One write per execution with O_APPEND: lines of concurrent attempts never mix.
        line = f"{ctx.invocation_id} {step} {ctx.attempt}\n".encode()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return step

    @steps.handler()
    async def work(ctx: Context, sleep_seconds: float) -> str:
        """Two steps around an optional durable sleep."""
        first = await ctx.run("one", record, ctx, "one")
        if sleep_seconds:
            await ctx.sleep(sleep_seconds)
        second = await ctx.run("two", record, ctx, "two")
        return f"{first}+{second}"

    @steps.handler()
    async def gated(ctx: Context, gate_name: str) -> str:
        """Three steps; the second waits for the gate file named by the input."""

        async def held() -> str:
            record(ctx, "two")
            assert gate is not None, "Steps/gated needs --gate"
            # The gate is level-triggered and crosses processes (a retry on another
            # replica must find it open too): a file, polled, not an event.
            while not (gate / gate_name).exists():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            record(ctx, "passed")
            return "two"

        parts = [
            await ctx.run("one", record, ctx, "one"),
            await ctx.run("two", held),
            await ctx.run("three", record, ctx, "three"),
        ]
        return "+".join(parts)

    return steps


def services(log: Path, gate: Path | None = None) -> list[Service]:
    return [steps_service(log, gate)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("server")
    p.add_argument("--name", required=True)
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--gate", type=Path)
    p.add_argument("--deployment")
    p.add_argument("--max-concurrency", type=int, default=64)
    a = p.parse_args()
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {a.name} %(levelname)s %(name)s: %(message)s"
    )
    worker = Worker(
        services(a.log, a.gate),
        a.server,
        max_concurrency=a.max_concurrency,
        name=a.name,
        deployment=a.deployment,
    )

    async def serve() -> None:
        stopping: set[asyncio.Task[None]] = set()
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, lambda: stopping.add(asyncio.create_task(worker.stop()))
        )
        await worker.run()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
