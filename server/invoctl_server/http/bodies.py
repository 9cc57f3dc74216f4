"""Request and response bodies: JSON in, the proto3 JSON mapping of the API's messages
out (google.protobuf.json_format), so a field is spelled as gRPC JSON tools, buf curl and
the TypeScript client spell it (`invocationId`). Requests take either spelling."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import ClientDisconnect, Request

from ..api.convert import parse_json
from ..domain.errors import InvalidArgument, InvalidJson, PayloadTooLarge, clip

M = TypeVar("M", bound=Message)


class ClientGone(Exception):
    """The client closed its connection before the request was complete."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refused past `limit` bytes (before reading it, when the
    Content-Length says so)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone from None
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes", field="body", limit=str(limit)
    )


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        # As payloads are (convert.parse_json): no NaN or Infinity, in a body either.
        value = parse_json(body)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nested deeper than the parser follows.
        detail = exc if isinstance(exc, ValueError) else "nested too deeply"
        raise InvalidJson(f"the request body is not JSON: {detail}", field="body") from None
    if not isinstance(value, dict):
        raise InvalidJson("the request body must be a JSON object", field="body")
    return value


def parse(data: dict[str, Any], message: M) -> M:
    """`data` (proto3 JSON) into `message`; unknown fields and wrong types are refused."""
    if not data:
        return message  # most requests have no body: the parser's walk costs CPU for nothing
    try:
        json_format.ParseDict(data, message)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        # ValueError and such: out-of-range numbers. The parser's message quotes the value.
        raise InvalidArgument(
            f"the request body does not fit {_name(message)}: {clip(str(exc))}"
        ) from None
    return message


def _name(message: Message) -> str:
    return message.DESCRIPTOR.name


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)
