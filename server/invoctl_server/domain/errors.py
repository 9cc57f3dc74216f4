"""Domain errors, named for the condition. `api/errors.py` maps each to a gRPC status."""

from __future__ import annotations

# Errors echo what the client sent (a malformed ID, a name, a query), in their message
# and their metadata: at most this many characters of it (README), so that an error stays
# readable and fits the trailing metadata clients accept (16 KiB).
MAX_ECHO = 200


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """`text`, cut to `limit` characters (the last one an ellipsis) when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def echo(value: object) -> str:
    """`value` as an error message quotes what the client sent: its repr, at most
    MAX_ECHO characters."""
    return clip(repr(value))


class DomainError(Exception):
    """Base of every error a client may see. `metadata` goes into ErrorInfo."""

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {k: clip(str(v)) for k, v in metadata.items() if v is not None}


class InvalidArgument(DomainError):
    """Malformed input: a bad ID, invalid JSON, an empty target."""

    reason = "INVALID_ARGUMENT"


class MalformedId(InvalidArgument):
    reason = "MALFORMED_ID"


class InvalidJson(InvalidArgument):
    reason = "INVALID_JSON"


class PayloadTooLarge(InvalidArgument):
    reason = "PAYLOAD_TOO_LARGE"


class InvalidPageToken(InvalidArgument):
    reason = "INVALID_PAGE_TOKEN"


class InvalidTarget(InvalidArgument):
    """A target that does not fit the service: a key for a service, none for an object."""

    reason = "INVALID_TARGET"


class InvalidFromEntry(InvalidArgument):
    """A restart's from_entry outside the journal, or not after a completed entry."""

    reason = "INVALID_FROM_ENTRY"


class RequestIdReused(InvalidArgument):
    """A request_id already used for another operation or invocation."""

    reason = "REQUEST_ID_REUSED"


class InvalidDeployment(InvalidArgument):
    reason = "INVALID_DEPLOYMENT"


class EmptySelector(InvalidArgument):
    """A bulk request whose selector would match every invocation."""

    reason = "EMPTY_SELECTOR"


class InvalidSelector(InvalidArgument):
    """A bulk selector that cannot mean anything: a bad query, or fields that contradict it."""

    reason = "INVALID_SELECTOR"


class TooManyBulkOperations(DomainError):
    """As many bulk operations run as the server allows (--max-bulk-operations)."""

    reason = "TOO_MANY_BULK_OPERATIONS"


class BulkOperationNotFound(DomainError):
    reason = "BULK_OPERATION_NOT_FOUND"


class InvocationNotFound(DomainError):
    reason = "INVOCATION_NOT_FOUND"


class DeploymentNotFound(DomainError):
    reason = "DEPLOYMENT_NOT_FOUND"


class DeploymentMismatch(DomainError):
    """A deployment identity registered again with other services, handlers or policies:
    one version serves one definition, so a changed worker needs a new identity."""

    reason = "DEPLOYMENT_MISMATCH"


class ServiceNotFound(DomainError):
    reason = "SERVICE_NOT_FOUND"


class HandlerNotFound(DomainError):
    reason = "HANDLER_NOT_FOUND"


class InvalidTransition(DomainError):
    """The invocation's current state does not allow the event."""

    reason = "INVALID_STATE_TRANSITION"


class DeploymentDoesNotServe(DomainError):
    """The deployment asked for does not serve the invocation's handler."""

    reason = "DEPLOYMENT_DOES_NOT_SERVE"


class JournalPurged(DomainError):
    """The operation needs the journal, and it was purged."""

    reason = "JOURNAL_PURGED"


class StaleAttempt(DomainError):
    """A write from an attempt that no longer holds the invocation (fenced off)."""

    reason = "STALE_ATTEMPT"


class JournalMismatch(DomainError):
    """A journal append whose index does not continue the journal."""

    reason = "JOURNAL_MISMATCH"


class LockTimeout(DomainError):
    """The invocation's row stayed locked longer than the lock timeout."""

    reason = "LOCK_TIMEOUT"


class Unauthenticated(DomainError):
    """No token, or one the server does not know."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller's role does not allow the RPC."""

    reason = "PERMISSION_DENIED"


class DatabaseUnavailable(DomainError):
    reason = "DATABASE_UNAVAILABLE"


class ServerBusy(DomainError):
    """The server serves as many calls as --max-concurrent-rpcs allows: try again later."""

    reason = "SERVER_BUSY"


class NotCompletedInTime(DomainError):
    """A wait for an invocation's result (the HTTP API's attach) ran out of time; the
    invocation goes on."""

    reason = "NOT_COMPLETED_IN_TIME"


class RouteNotFound(DomainError):
    """An HTTP request for a path the API does not serve."""

    reason = "ROUTE_NOT_FOUND"


class MethodNotAllowed(DomainError):
    """An HTTP request with a method its path does not take; `allow` lists those it does."""

    reason = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str, *, allow: str, **metadata: str) -> None:
        super().__init__(message, allow=allow, **metadata)
        self.allow = allow
