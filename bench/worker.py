"""The bench's worker process: a handler with three journaled steps."""

from __future__ import annotations

import sys

from invoctl.sdk import Context, RetryPolicy, Service, run_worker

bench = Service("Bench")


@bench.handler()
async def three_steps(ctx: Context, n: int) -> int:
    a = await ctx.run("one", lambda: n + 1)
    b = await ctx.run("two", lambda: a * 2)
    return await ctx.run("three", lambda: b - 1)


# For the operator-action bench: invocations that wait (suspended on a long sleep) and
# invocations that keep failing (backing-off between long retry intervals).
ops = Service(
    "Ops", retry_policy=RetryPolicy(initial_interval=600, max_interval=600, max_attempts=1000)
)


@ops.handler()
async def wait(ctx: Context) -> None:
    await ctx.sleep(3600)


@ops.handler()
async def fail(ctx: Context) -> None:
    raise RuntimeError("failing on purpose")


if __name__ == "__main__":
    run_worker([bench, ops], server=sys.argv[1], max_concurrency=int(sys.argv[2]))
