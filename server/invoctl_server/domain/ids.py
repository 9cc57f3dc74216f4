"""Identifiers: `inv_`, `dp_`, `sess_` and `bulk_` prefixes with a time-ordered random suffix.

The suffix is 128 bits (48-bit millisecond timestamp + 80 random bits) written with a
64-character alphabet in ASCII order, so IDs sort by creation time under the "C"
collation: indexes stay append-mostly and ID order is roughly age order.
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_SUFFIX_LEN = 22  # ceil(128 / 6)
_SUFFIX = re.compile(r"[-0-9A-Z_a-z]{22}")


def _suffix(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = ((ms & ((1 << 48) - 1)) << 80) | secrets.randbits(80)
    value <<= _SUFFIX_LEN * 6 - 128  # pad to a whole number of characters
    chars = []
    for shift in range((_SUFFIX_LEN - 1) * 6, -1, -6):
        chars.append(_ALPHABET[(value >> shift) & 63])
    return "".join(chars)


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
