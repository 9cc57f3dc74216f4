"""Validation of IDs in requests, before any query."""

from __future__ import annotations

import re

from ..domain.errors import InvalidDeployment, MalformedId, echo
from ..domain.ids import is_bulk_operation_id, is_deployment_id, is_invocation_id
from ..store.operations import KEEP, LATEST


def invocation_id(text: str) -> str:
    if not is_invocation_id(text):
        raise MalformedId(
            f"{echo(text)} is not an invocation ID (inv_ followed by 22 letters and digits)",
            invocation_id=text,
        )
    return text


def bulk_operation_id(text: str) -> str:
    if not is_bulk_operation_id(text):
        raise MalformedId(
            f"{echo(text)} is not a bulk operation ID (bulk_ followed by 22 letters and digits)",
            bulk_operation_id=text,
        )
    return text


def deployment_choice(text: str) -> str:
    """Where a resume or restart runs: "" (the operation's default), keep, latest, or a
    well-formed dp_ ID; INVALID_ARGUMENT otherwise."""
    if text in ("", KEEP, LATEST):
        return text
    return deployment_id(text)


def deployment_id(text: str) -> str:
    if not is_deployment_id(text):
        raise InvalidDeployment(
            f"{echo(text)} is not a deployment ID (dp_ followed by 22 letters and digits)",
            deployment_id=text,
        )
    return text


# A deployment identity names a version in logs, tables and URLs: keep it to characters
# that need no quoting anywhere.
_IDENTITY = re.compile(r"[A-Za-z0-9._:@/+\-]{1,200}")


def deployment_identity(text: str) -> str | None:
    """A worker's deployment identity: None when empty (a new deployment every time)."""
    if not text:
        return None
    if _IDENTITY.fullmatch(text) is None:
        raise InvalidDeployment(
            f"{echo(text)} is not a deployment identity (1 to 200 letters, digits and _.:@/+-)",
            identity=text,
        )
    return text
