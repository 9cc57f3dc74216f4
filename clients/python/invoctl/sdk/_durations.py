"""Conversions of the SDK's interval arguments (seconds or timedelta)."""

from __future__ import annotations

import math
from datetime import timedelta

from google.protobuf import duration_pb2

Interval = float | int | timedelta
"""A length of time: seconds as a number, or a timedelta."""


def to_seconds(value: Interval, what: str) -> float:
    """Returns ``value`` in seconds; raises ValueError if it is negative or not finite."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{what} must be seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite, non-negative interval, got {value!r}")
    return seconds


def to_millis(value: Interval, what: str) -> int:
    """Returns ``value`` in whole milliseconds, rounded to the nearest."""
    return round(to_seconds(value, what) * 1000)


def to_duration(value: Interval, what: str) -> duration_pb2.Duration:
    """Returns ``value`` as a protobuf Duration, to the microsecond."""
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=to_seconds(value, what)))
    return duration
