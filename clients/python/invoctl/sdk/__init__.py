"""The invoctl handler SDK and worker runtime.

Define handlers on a ``Service`` or a ``VirtualObject``, then serve them with a
``Worker``::

    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        greeting = await ctx.run("compose", lambda: f"Hello, {name}!")
        await ctx.sleep(1)
        return greeting

    asyncio.run(Worker([greeter], server="127.0.0.1:9090").run())

Every durable action of a handler (``ctx.run``, ``sleep``, ``call``, ``send``, state) is
journaled in the server's Postgres; a retried attempt replays the journal instead of
repeating the work. Logs go to the ``invoctl.sdk`` logger.
"""

from ._context import Context, ObjectContext
from ._errors import InvocationCancelled, NonDeterminismError, TerminalError
from ._retry import RetryPolicy
from ._service import HandlerSpec, Service, VirtualObject
from ._worker import Worker, run_worker

__all__ = [
    "Context",
    "HandlerSpec",
    "InvocationCancelled",
    "NonDeterminismError",
    "ObjectContext",
    "RetryPolicy",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Worker",
    "run_worker",
]
