"""The ASGI application: the route table as a Starlette router, behind the tracing
middleware (a span per request, continuing a caller's `traceparent`) when spans are
recorded at all, and, only when origins are configured, CORS."""

from __future__ import annotations

import re
from collections.abc import Iterable

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from .. import telemetry
from ..domain.errors import MethodNotAllowed, RouteNotFound, clip
from . import openapi
from .errors import error_response
from .route import Api, Route, serve


def _path_route(api: Api, path: str, routes: list[Route]) -> StarletteRoute:
    """One router entry per path, dispatching on the method, so that a wrong method is
    answered 405 with every method the path takes in Allow."""
    by_method = {r.method: r for r in routes}
    if "GET" in by_method:
        by_method["HEAD"] = by_method["GET"]

    async def endpoint(request: Request) -> Response:
        return await serve(api, by_method[request.method], request)

    return StarletteRoute(path, endpoint, methods=list(by_method))


def _span_details(templates: list[tuple[re.Pattern[str], str]]):
    """Spans are named for the route (`PATCH /invocations/{invocation_id}/kill`), not the
    path: one name per route, whatever the IDs."""

    def details(scope) -> tuple[str, dict]:
        path = scope.get("path", "")
        for pattern, template in templates:
            if pattern.fullmatch(path):
                return f"{scope.get('method', 'HTTP')} {template}", {"http.route": template}
        return scope.get("method", "HTTP"), {}

    return details


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        message = f"{request.url.path} takes {allow}, not {request.method}"
        return error_response(MethodNotAllowed(message, allow=allow, method=request.method))
    return error_response(
        RouteNotFound(f"no route {request.method} {clip(request.url.path)}", path=request.url.path)
    )


def build(
    api: Api, routes: Iterable[Route], *, version: str, mounts: Iterable[BaseRoute] = ()
) -> Starlette:
    """The app of `routes`, plus `mounts` (the web console under /ui), which have their own
    request path and are not in the OpenAPI document."""
    routes = list(routes)
    api.openapi = openapi.document(routes, version=version)
    paths: dict[str, list[Route]] = {}
    for r in routes:
        paths.setdefault(r.path, []).append(r)
    templates = [(re.compile(re.sub(r"{\w+}", "[^/]+", path)), path) for path in paths]
    middleware = []
    if telemetry.recording():
        middleware.append(
            Middleware(
                OpenTelemetryMiddleware,
                default_span_details=_span_details(templates),
                # One span per request: not one more per chunk sent or read.
                exclude_spans=["receive", "send"],
            )
        )
    if api.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(api.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["authorization", "content-type", "last-event-id", "traceparent"],
                expose_headers=["location"],
            )
        )
    return Starlette(
        routes=[*mounts, *(_path_route(api, path, rs) for path, rs in paths.items())],
        middleware=middleware,
        exception_handlers={404: _not_found, 405: _not_found},
    )
