"""Restate-style target strings: `Service/handler` and `Object/key/handler`."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ParsedTarget", "format_target", "parse_target"]


class ParsedTarget(NamedTuple):
    """A handler address; `key` is None for a plain service."""

    service: str
    key: str | None
    handler: str


def parse_target(target: str) -> ParsedTarget:
    """Split a Restate-style invocation target into (service, key, handler).

    `Greeter/greet` -> ("Greeter", None, "greet");
    `CartObject/cart55/add` -> ("CartObject", "cart55", "add").
    Service and handler names never contain `/`, so with more than three parts
    everything between the first and the last `/` is the key (`Obj/a/b/h` has key `a/b`).

    Raises:
        ValueError: fewer than two parts, or an empty service, key or handler.
            An empty key is refused because the contract uses "" for "no key".
    """
    service, sep, rest = target.partition("/")
    middle, _, handler = rest.rpartition("/")
    if not sep or not service or not handler:
        raise ValueError(
            f"invalid target {target!r}: expected Service/handler or Object/key/handler"
        )
    if not middle:
        if rest.startswith("/"):  # `Object//handler`
            raise ValueError(f"invalid target {target!r}: the object key is empty")
        return ParsedTarget(service, None, handler)
    return ParsedTarget(service, middle, handler)


def format_target(service: str, handler: str, key: str | None = None) -> str:
    """The inverse of `parse_target`: `Service/handler` or `Object/key/handler`."""
    return f"{service}/{key}/{handler}" if key else f"{service}/{handler}"
