"""The identity of a deployment: which version of the worker code this is.

Restarting unchanged code, or starting another replica of it, must register the same
deployment, so that invocations pinned to it keep running; changed code must be a new one.
Without a name given by the user, the identity is derived from what defines the handlers:
the registration request (services, handlers, retry policies, retentions) and the source
of every module that defines a handler.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
from collections.abc import Iterable

from invoctl.v1 import workers_pb2

from ._service import AnyService

# Derived identities look like `code@3f9a1c0b5e7d2a64`: 64 bits tell versions apart.
_PREFIX = "code@"
_DIGITS = 16


def code_identity(
    request: workers_pb2.RegisterDeploymentRequest, services: Iterable[AnyService]
) -> str:
    """The identity of the code behind `request`: equal for the same definitions and
    handler modules, different when either changed."""
    digest = hashlib.sha256()
    definitions = workers_pb2.RegisterDeploymentRequest(services=request.services)
    digest.update(definitions.SerializeToString(deterministic=True))
    for source in sorted(set(_handler_sources(services))):
        digest.update(len(source).to_bytes(8, "big"))
        digest.update(source)
    return _PREFIX + digest.hexdigest()[:_DIGITS]


def _handler_sources(services: Iterable[AnyService]) -> Iterable[bytes]:
    for service in services:
        for handler in service.handlers.values():
            yield _source_of(inspect.unwrap(handler.fn))


def _source_of(fn) -> bytes:
    """The source of the module that defines `fn`; for a function without a source file
    (defined in a REPL or by exec), its compiled code."""
    try:
        path = inspect.getsourcefile(fn)
        if path is not None:
            with open(path, "rb") as f:
                return f.read()
    except (OSError, TypeError):
        pass
    return marshal.dumps(fn.__code__)
