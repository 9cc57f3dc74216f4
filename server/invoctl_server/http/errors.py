"""HTTP error responses, from the one error table in api/errors.py.

A body has Restate's fields (`message`, `restate_code`), so Restate's clients read it as
they read Restate's, plus the gRPC code name and the ErrorInfo `reason` and `metadata`
that the gRPC API sends:

    {"message": "...", "restate_code": null, "code": "NOT_FOUND",
     "reason": "INVOCATION_NOT_FOUND", "metadata": {"invocation_id": "inv_..."}}

Unexpected exceptions are logged and answered 500 "internal error": never a stack trace.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from ..api.errors import MAX_MESSAGE, code_for, http_status_for, to_domain_error
from ..domain import errors as e
from ..domain.states import State

log = logging.getLogger("invoctl.http")

# Restate answers 425 Too Early, not 409, when resume, purge, purge-journal or
# restart-as-new find an invocation that has not started: it will be acted on later.
_NOT_STARTED = {str(State.PENDING), str(State.SCHEDULED)}


class Refused(Exception):
    """A domain error answered with another status than the table's, where a Restate
    route does so (a malformed ID in a batch body is 422 there)."""

    def __init__(self, status: int, error: e.DomainError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


def status_of(err: e.DomainError, *, too_early: bool = False) -> int:
    """The HTTP status of a domain error; `too_early` on routes where Restate says 425."""
    status = http_status_for(err)
    if too_early and isinstance(err, e.InvalidTransition):
        if err.metadata.get("state") in _NOT_STARTED:
            return 425
    return status


def error_response(err: e.DomainError, status: int | None = None) -> JSONResponse:
    status = http_status_for(err) if status is None else status
    headers = {}
    if isinstance(err, e.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(err, e.MethodNotAllowed):
        headers["Allow"] = err.allow
    if isinstance(err, e.PayloadTooLarge):
        # The rest of the body is not read: start the next request on a new connection.
        headers["Connection"] = "close"
    body = {
        "message": e.clip(err.message, MAX_MESSAGE),
        "restate_code": None,
        "code": code_for(err).name,
        "reason": err.reason,
        "metadata": {k: e.clip(v) for k, v in err.metadata.items()},
    }
    return JSONResponse(body, status_code=status, headers=headers)


def response_for(exc: BaseException, where: str, *, too_early: bool = False) -> JSONResponse:
    """The response to an exception a route raised."""
    if isinstance(exc, Refused):
        return error_response(exc.error, exc.status)
    err = to_domain_error(exc)
    if err is None:
        log.error("%s failed", where, exc_info=exc)
        internal = {
            "message": "internal error",
            "restate_code": None,
            "code": "INTERNAL",
            "reason": "INTERNAL",
            "metadata": {},
        }
        return JSONResponse(internal, status_code=500)
    return error_response(err, status_of(err, too_early=too_early))
