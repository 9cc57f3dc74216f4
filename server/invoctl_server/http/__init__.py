"""The HTTP admin API (DESIGN.md section 7, issue 13): Restate's admin routes for
invocations and invoctl's own, on the gRPC API's service code, in the same process and
event loop.

    server.py   the listener (uvicorn in our loop; a port in use is refused)
    app.py      the ASGI app: router, tracing, CORS
    route.py    the route declaration and the one path every request takes
    restate.py  Restate's routes          routes.py  invoctl's own
    sse.py      bulk progress as server-sent events
    errors.py   error bodies from the one error table (api/errors.py)
    bodies.py   JSON in, proto3 JSON out  openapi.py the OpenAPI 3.1 document
"""

from .app import build
from .route import Api, Services
from .routes import ROUTES
from .server import HttpServer

__all__ = ["ROUTES", "Api", "HttpServer", "Services", "build"]
