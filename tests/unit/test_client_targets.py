"""Restate-style target strings."""

import pytest

from invoctl.client import ParsedTarget, format_target, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Greeter/greet", ("Greeter", None, "greet")),
        ("CartObject/cart55/add", ("CartObject", "cart55", "add")),
        # Names never contain "/", so everything in between is the key.
        ("CartObject/a/b/add", ("CartObject", "a/b", "add")),
    ],
)
def test_parse_target(text: str, expected: tuple[str, str | None, str]) -> None:
    parsed = parse_target(text)
    assert parsed == expected
    assert isinstance(parsed, ParsedTarget)
    assert format_target(parsed.service, parsed.handler, parsed.key) == text


@pytest.mark.parametrize(
    "text", ["", "Greeter", "Greeter/", "/greet", "CartObject//add", "CartObject/k/", "/"]
)
def test_parse_target_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="target"):
        parse_target(text)


def test_parse_target_unpacks_as_service_key_handler() -> None:
    service, key, handler = parse_target("CartObject/cart55/add")
    assert (service, key, handler) == ("CartObject", "cart55", "add")
