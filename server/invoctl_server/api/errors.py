"""THE table from domain exceptions to gRPC status codes and HTTP statuses, and the
decorator that applies it to the gRPC servicers (http/errors.py applies it to HTTP).

Every error a client sees carries a google.rpc.ErrorInfo with a stable UPPER_SNAKE reason
and metadata (the invocation ID and current state where there is one). Unexpected
exceptions become INTERNAL with no details: never a stack trace to the client.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..domain import errors as e
from ..metrics import OPERATOR_RPC_SECONDS
from ..store.db import is_connection_error

log = logging.getLogger("invoctl.api")
DOMAIN = "invoctl.dev"

# Domain error -> (gRPC code, HTTP status). The ErrorInfo reason is the error's own
# (`reason` on its class). Subclasses take their base's entry unless they have one. The
# HTTP statuses are Restate's where its admin API answers the same condition
# (../shared/RESTATE-ADMIN-API.md), so its clients read them as they would Restate's.
ERRORS: dict[type[e.DomainError], tuple[grpc.StatusCode, int]] = {
    e.InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, 400),
    # An HTTP body or a payload over the limit: 413 Content Too Large.
    e.PayloadTooLarge: (grpc.StatusCode.INVALID_ARGUMENT, 413),
    e.InvocationNotFound: (grpc.StatusCode.NOT_FOUND, 404),
    # Restate answers 400 for an unknown deployment in a request: the URL's resource (the
    # invocation) exists, a parameter is wrong.
    e.DeploymentNotFound: (grpc.StatusCode.NOT_FOUND, 400),
    e.DeploymentMismatch: (grpc.StatusCode.ALREADY_EXISTS, 409),
    e.ServiceNotFound: (grpc.StatusCode.NOT_FOUND, 404),
    e.HandlerNotFound: (grpc.StatusCode.NOT_FOUND, 404),
    e.BulkOperationNotFound: (grpc.StatusCode.NOT_FOUND, 404),
    # 409; Restate's 425 (not started yet) is decided per route, see http/errors.py.
    e.InvalidTransition: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    e.StaleAttempt: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    # Restate: 400 when the deployment does not serve the pinned service.
    e.DeploymentDoesNotServe: (grpc.StatusCode.FAILED_PRECONDITION, 400),
    # Restate: 410 Gone for a restart whose input (journal) was purged.
    e.JournalPurged: (grpc.StatusCode.FAILED_PRECONDITION, 410),
    e.JournalMismatch: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    e.LockTimeout: (grpc.StatusCode.ABORTED, 409),
    e.TooManyBulkOperations: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    e.NotCompletedInTime: (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    e.DatabaseUnavailable: (grpc.StatusCode.UNAVAILABLE, 503),
    e.ServerBusy: (grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
    e.Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, 401),
    e.PermissionDenied: (grpc.StatusCode.PERMISSION_DENIED, 403),
    # HTTP only: what gRPC answers an unknown method with.
    e.RouteNotFound: (grpc.StatusCode.UNIMPLEMENTED, 404),
    e.MethodNotAllowed: (grpc.StatusCode.UNIMPLEMENTED, 405),
}
_INTERNAL = (grpc.StatusCode.INTERNAL, 500)


def _entry(exc: e.DomainError) -> tuple[grpc.StatusCode, int]:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return _INTERNAL


def code_for(exc: e.DomainError) -> grpc.StatusCode:
    return _entry(exc)[0]


def http_status_for(exc: e.DomainError) -> int:
    return _entry(exc)[1]


# Each echo of what the client sent is cut where it is made (domain.errors.echo, and the
# metadata when an error is made); this bounds a message whatever it quotes, as trailing
# metadata, which clients refuse beyond 16 KiB.
MAX_MESSAGE = 2000


def status_for(exc: e.DomainError) -> grpc.Status:
    code = code_for(exc)
    metadata = {k: e.clip(v) for k, v in exc.metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=e.clip(exc.message, MAX_MESSAGE),
        details=[detail],
    )
    return rpc_status.to_status(status)


def to_domain_error(exc: BaseException) -> e.DomainError | None:
    """The domain error an exception stands for, or None if it is a bug."""
    if isinstance(exc, e.DomainError):
        return exc
    if is_connection_error(exc):
        return e.DatabaseUnavailable(f"database unavailable: {type(exc).__name__}")
    if isinstance(exc, asyncpg.DataError):
        # SQLSTATE class 22: a value Postgres cannot take, which came from the request
        # (a NUL character in a name, above all). Its statement, and transaction, failed.
        return e.InvalidArgument(
            f"a value in the request cannot be stored: {exc.__class__.__name__}"
            + (": text must not contain NUL characters" if "0x00" in str(exc) else "")
        )
    return None


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str):
    err = to_domain_error(exc)
    if err is None:
        log.error("%s failed", method, exc_info=exc)
        internal = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        await context.abort_with_status(rpc_status.to_status(internal))
    await context.abort_with_status(status_for(err))


def rpc(method: Callable) -> Callable:
    """Wrap a servicer method (unary or streaming) so domain errors become statuses.

    The wrapper's `__wrapped__` (functools.wraps) is the method itself, which raises the
    domain errors: the HTTP API (http/) calls that, so a route and its RPC run the same
    code and only the translation of errors differs."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:
                await _abort(context, exc, method.__qualname__)

        return stream

    service, _, name = method.__qualname__.partition(".")
    # Operator RPCs are timed (metrics.py); ingress and workers are not.
    latency = OPERATOR_RPC_SECONDS.labels(method=name) if service == "InvocationControl" else None

    @functools.wraps(method)
    async def unary(self, request, context):
        start = time.perf_counter()
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, method.__qualname__)
        finally:
            if latency is not None:
                latency.observe(time.perf_counter() - start)

    return unary
