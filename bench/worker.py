"""The bench's worker process: a handler with three journaled steps."""

from __future__ import annotations

import sys

from invoctl.sdk import Context, Service, run_worker

bench = Service("Bench")


@bench.handler()
async def three_steps(ctx: Context, n: int) -> int:
    a = await ctx.run("one", lambda: n + 1)
    b = await ctx.run("two", lambda: a * 2)
    return await ctx.run("three", lambda: b - 1)


if __name__ == "__main__":
    run_worker([bench], server=sys.argv[1], max_concurrency=int(sys.argv[2]))
