"""The SDK's JSON rules for inputs, outputs, journaled values and state."""

from __future__ import annotations

import json
from typing import Any


def encode(value: Any) -> str:
    """Returns ``value`` as JSON text; raises TypeError or ValueError if it is not JSON.

    NaN and infinities are refused: the server stores values as Postgres JSON, which
    has no such numbers.
    """
    return json.dumps(value, allow_nan=False)


def decode(text: str) -> Any:
    """Returns the value of JSON text; empty text means None."""
    return json.loads(text) if text else None
