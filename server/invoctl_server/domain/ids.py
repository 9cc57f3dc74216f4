"""Identifiers: `inv_`, `dp_`, `sess_` and `bulk_` prefixes with a time-ordered random suffix.

The suffix is 128 bits (48-bit millisecond timestamp + 80 random bits) written as 22
base62 digits (`0-9A-Za-z`, in ASCII order, zero-padded). Fixed width and ASCII order
make text order the numeric order under the "C" collation every ID column uses, so
IDs sort by creation time: keyset paging (newest first) and the ID-order lock order
see new IDs in creation order, and indexes stay append-mostly.

No `-` or `_` in the suffix: a double-click selects a whole ID in terminals and
browsers. IDs made before (22 characters of a 64-character alphabet with `-` and `_`)
stay valid. They all begin with `-` (the top 6 bits of a 48-bit millisecond clock are
zero until 2109), which sorts before every base62 digit, so every old ID sorts before
every new one and creation order holds across the change.
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_LEN = 22  # ceil(128 / log2(62)); 62**22 > 2**128
# What a suffix may be: new base62 ones and the older 64-character ones.
_SUFFIX = re.compile(r"[-0-9A-Z_a-z]{22}")


def _suffix(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = ((ms & ((1 << 48) - 1)) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(_SUFFIX_LEN):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_invocation_id() -> str:
    return "inv_" + _suffix()


def new_deployment_id() -> str:
    return "dp_" + _suffix()


def new_session_id() -> str:
    return "sess_" + _suffix()


def new_bulk_operation_id() -> str:
    return "bulk_" + _suffix()


def is_invocation_id(text: str) -> bool:
    return text.startswith("inv_") and _SUFFIX.fullmatch(text, 4) is not None


def is_deployment_id(text: str) -> bool:
    return text.startswith("dp_") and _SUFFIX.fullmatch(text, 3) is not None


def is_bulk_operation_id(text: str) -> bool:
    return text.startswith("bulk_") and _SUFFIX.fullmatch(text, 5) is not None
