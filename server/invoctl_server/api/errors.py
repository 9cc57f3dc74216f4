"""THE table from domain exceptions to gRPC status codes, and the decorator that applies it.

Every error a client sees carries a google.rpc.ErrorInfo with a stable UPPER_SNAKE reason
and metadata (the invocation ID and current state where there is one). Unexpected
exceptions become INTERNAL with no details: never a stack trace to the client.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..domain import errors as e
from ..store.db import is_connection_error

log = logging.getLogger("invoctl.api")
DOMAIN = "invoctl.dev"

CODES: dict[type[e.DomainError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.InvocationNotFound: grpc.StatusCode.NOT_FOUND,
    e.DeploymentNotFound: grpc.StatusCode.NOT_FOUND,
    e.DeploymentMismatch: grpc.StatusCode.ALREADY_EXISTS,
    e.ServiceNotFound: grpc.StatusCode.NOT_FOUND,
    e.HandlerNotFound: grpc.StatusCode.NOT_FOUND,
    e.BulkOperationNotFound: grpc.StatusCode.NOT_FOUND,
    e.InvalidTransition: grpc.StatusCode.FAILED_PRECONDITION,
    e.StaleAttempt: grpc.StatusCode.FAILED_PRECONDITION,
    e.DeploymentDoesNotServe: grpc.StatusCode.FAILED_PRECONDITION,
    e.JournalPurged: grpc.StatusCode.FAILED_PRECONDITION,
    e.JournalMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    e.LockTimeout: grpc.StatusCode.ABORTED,
    e.TooManyBulkOperations: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.DatabaseUnavailable: grpc.StatusCode.UNAVAILABLE,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def code_for(exc: e.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.INTERNAL


# Errors echo what the client sent (a malformed ID, a query). They travel in trailing
# metadata, which clients refuse beyond 16 KiB, so long echoes are cut short.
_MAX_VALUE = 200
_MAX_MESSAGE = 2000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_for(exc: e.DomainError) -> grpc.Status:
    code = code_for(exc)
    metadata = {k: _clip(v, _MAX_VALUE) for k, v in exc.metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=_clip(exc.message, _MAX_MESSAGE),
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
    """Wrap a servicer method (unary or streaming) so domain errors become statuses."""
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

    @functools.wraps(method)
    async def unary(self, request, context):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, method.__qualname__)

    return unary
