"""What every route shares: its declaration (the table routes.py and restate.py fill,
from which the server's router and the OpenAPI document are both built), and the one
path every request takes through `serve`:

1. the query parameters are checked against the declared ones;
2. the caller is authenticated with the gRPC API's tokens, and, when the route names
   the RPC it runs, authorized with that RPC's roles (api/auth.py);
3. the body is read (refused past the payload limit);
4. the route runs as the caller (principal(), the audit log and the transitions' actor),
   inside the request's span (the ASGI tracing middleware continues a `traceparent`);
   a client that disconnects cancels it, as a cancelled RPC does;
5. errors become JSON bodies (errors.py).

Routes call the servicers' own methods (`Services.call`): an HTTP route and its RPC run
the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response

from ..api.auth import ANONYMOUS, Principal, Tokens, acting_as, authenticate, permit
from ..api.refusals import Recorder
from ..domain.errors import InvalidArgument, PermissionDenied, Unauthenticated, echo
from . import bodies
from .errors import response_for

CONTROL = "/invoctl.v1.InvocationControl/"
INGRESS = "/invoctl.v1.Ingress/"
WORKERS = "/invoctl.v1.Workers/"


@dataclasses.dataclass(frozen=True)
class Param:
    """A query parameter: its name, OpenAPI type and description."""

    name: str
    type: str = "string"  # string, integer, number, boolean
    description: str = ""
    repeated: bool = False
    enum: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # Starlette's syntax: /invocations/{invocation_id}
    handler: Callable[[Call], Awaitable[Response]]
    summary: str
    # The RPC whose roles apply and whose code the route runs; None for a public route
    # or one whose RPC depends on the request (it authorizes when it knows).
    rpc: str | None = None
    public: bool = False
    query: tuple[Param, ...] = ()
    # OpenAPI: the request body's schema (a message type or a schema name of openapi.py)
    # and the success statuses with their schema.
    body: type[Message] | str | None = None
    responses: dict[int, type[Message] | str | None] = dataclasses.field(
        default_factory=lambda: {200: None}
    )
    tag: str = "invoctl"
    # An event stream: it watches the client itself (sse-starlette) and is not cancelled.
    streaming: bool = False
    # Restate answers 425, not 409, when the invocation has not started (errors.py).
    too_early: bool = False

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class Services:
    """The servicers the gRPC server runs, called as their RPCs run them."""

    def __init__(self, **servicers: Any) -> None:
        self._servicers = servicers  # service name -> servicer, e.g. InvocationControl

    def _method(self, rpc: str) -> tuple[Any, Callable]:
        service, _, method = rpc.rpartition("/")
        servicer = self._servicers[service.rsplit(".", 1)[-1]]
        # The method itself, not the wrapper that turns its errors into gRPC statuses
        # (api/errors.rpc): errors are answered in HTTP's terms here.
        return servicer, getattr(type(servicer), method).__wrapped__

    async def call(self, rpc: str, request: Message) -> Message:
        servicer, method = self._method(rpc)
        return await method(servicer, request, None)

    def stream(self, rpc: str, request: Message) -> AsyncIterator[Message]:
        servicer, method = self._method(rpc)
        return method(servicer, request, None)


@dataclasses.dataclass
class Api:
    """What the routes need: the services, the tokens, the body limit, and the server's
    stopping event (event streams end when it is set)."""

    services: Services
    tokens: Tokens | None
    body_limit: int
    stopping: asyncio.Event
    cors_origins: tuple[str, ...] = ()
    # Records operator requests refused for their caller (api/refusals.py).
    refusals: Recorder | None = None
    # GET /openapi serves this (built from the routes once they are known).
    openapi: dict[str, Any] = dataclasses.field(default_factory=dict)


class Call:
    """One request to one route."""

    def __init__(self, api: Api, route: Route, request: Request, who: Principal) -> None:
        self.api = api
        self.route = route
        self.request = request
        self.who = who
        self.body = b""

    def path(self, name: str) -> str:
        return self.request.path_params[name]

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_list(self, name: str) -> list[str]:
        """A repeatable parameter: `?state=a&state=b` or `?state=a,b`."""
        values = self.request.query_params.getlist(name)
        return [v.strip() for value in values for v in value.split(",") if v.strip()]

    def json(self) -> dict[str, Any]:
        return bodies.json_object(self.body)

    def authorize(self, rpc: str) -> None:
        permit(self.who, rpc)

    async def invoke(self, rpc: str, request: Message) -> Message:
        """Run the RPC's code, if the caller may call it."""
        self.authorize(rpc)
        return await self.api.services.call(rpc, request)

    def stream(self, rpc: str, request: Message) -> AsyncIterator[Message]:
        self.authorize(rpc)
        return self.api.services.stream(rpc, request)


async def serve(api: Api, route: Route, request: Request) -> Response:
    """Run one request through `route` (the steps of the module docstring)."""
    try:
        declared = {p.name for p in route.query}
        unknown = sorted(set(request.query_params) - declared)
        if unknown:
            takes = ", ".join(sorted(declared)) or "no query parameters"
            raise InvalidArgument(
                f"unknown query parameter {echo(unknown[0])}; {route.method} {route.path} takes "
                f"{takes}",
                parameter=unknown[0],
            )
        who = ANONYMOUS
        if api.tokens is not None and not route.public:
            who = authenticate(api.tokens, request.headers.get("authorization"))
        call = Call(api, route, request, who)
        with acting_as(who):
            if route.rpc is not None:
                call.authorize(route.rpc)
            call.body = await bodies.read_body(request, api.body_limit)
            if route.streaming:
                return await route.handler(call)
            return await _unless_disconnected(request, route.handler(call))
    except bodies.ClientGone:
        return Response(status_code=499)  # nobody reads it: the connection is gone
    except (Unauthenticated, PermissionDenied) as refused:
        await _record_refusal(api, route, request, refused)
        return response_for(refused, f"{route.method} {route.path}")
    except Exception as exc:
        return response_for(exc, f"{route.method} {route.path}", too_early=route.too_early)


async def _record_refusal(
    api: Api, route: Route, request: Request, refused: Unauthenticated | PermissionDenied
) -> None:
    """An operator request refused for its caller goes into the audit log, as over gRPC.
    Its RPC is the one refused (PERMISSION_DENIED names it), else the route's; a route
    whose RPC depends on its body (bulk, batch, DELETE) is recorded under its own name."""
    if api.refusals is None or route.public or route.method == "GET":
        return
    method = refused.metadata.get("method") or route.rpc
    await api.refusals.refused(
        method or "",
        refused,
        target=request.path_params.get("invocation_id", ""),
        reason=request.query_params.get("reason", ""),
        request_id=request.query_params.get("request_id") or None,
        operation=None if method else f"{route.method} {route.path}",
    )


async def _unless_disconnected(request: Request, work: Awaitable[Response]) -> Response:
    """`work`'s response; cancelled if the client disconnects first, as a cancelled RPC
    is (its database work is abandoned, api/operator.py)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise bodies.ClientGone
    return task.result()


async def _disconnect(request: Request) -> None:
    """Returns when the client disconnects. Called once the body is read, so the server
    has nothing else to tell the application."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
