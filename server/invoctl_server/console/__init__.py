"""The web console at /ui (DESIGN.md section 7): server-rendered pages (Jinja2) with htmx
for partial updates and server-sent events for bulk progress, on the HTTP listener, over
the HTTP API's service functions. htmx and its SSE extension are vendored in static/
(pinned, with their licences): the console works offline, with no Node build."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .session import Sessions
from .views import Console

__all__ = ["Console", "Sessions", "mount"]


def mount(console: Console) -> Mount:
    c = console
    get, post = ["GET", "HEAD"], ["POST"]
    return Mount("/ui", routes=[
        Route("/", c.page(c.home), methods=get),
        Route("/login", c.login_page, methods=get),
        Route("/login", c.login, methods=post),
        Route("/logout", c.page(c.logout, changes=True), methods=post),
        Route("/invocations", c.page(c.invocations), methods=get),
        Route("/invocations/{invocation_id}", c.page(c.invocation), methods=get),
        Route("/invocations/{invocation_id}/{action}", c.page(c.act, changes=True),
              methods=post),
        Route("/bulk/new", c.page(c.bulk_new), methods=get),
        Route("/bulk", c.page(c.bulk_start, changes=True), methods=post),
        Route("/bulk", c.page(c.bulk_list), methods=get),
        Route("/bulk/{bulk_operation_id}", c.page(c.bulk), methods=get),
        Route("/bulk/{bulk_operation_id}/events", c.page(c.bulk_events), methods=get),
        Route("/bulk/{bulk_operation_id}/stop", c.page(c.bulk_stop, changes=True),
              methods=post),
        Route("/audit", c.page(c.audit), methods=get),
        Route("/deployments", c.page(c.deployments), methods=get),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static")),
    ])  # fmt: skip
