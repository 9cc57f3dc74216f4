"""Retry policy of a service or handler, and its protocol form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from invoctl.v1 import workers_pb2

from ._durations import Interval, to_duration, to_seconds

_ON_MAX_ATTEMPTS = {
    "pause": workers_pb2.ON_MAX_ATTEMPTS_PAUSE,
    "kill": workers_pb2.ON_MAX_ATTEMPTS_KILL,
}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between the attempts of an invocation.

    The n-th retry waits ``min(initial_interval * factor ** (n - 1), max_interval)``.
    After ``max_attempts`` attempts the invocation is paused (``on_max_attempts="pause"``,
    an operator resumes it) or completed as killed (``"kill"``). Intervals are seconds
    or timedeltas. A service or handler without a policy gets the server's defaults,
    which are the defaults here.
    """

    initial_interval: Interval = 0.5
    factor: float = 2.0
    max_interval: Interval = 60
    max_attempts: int = 70
    on_max_attempts: Literal["pause", "kill"] = "pause"

    def __post_init__(self) -> None:
        initial = to_seconds(self.initial_interval, "initial_interval")
        if initial <= 0:
            raise ValueError("initial_interval must be positive")
        if to_seconds(self.max_interval, "max_interval") < initial:
            raise ValueError("max_interval must be at least initial_interval")
        if not self.factor >= 1.0:
            raise ValueError(f"factor must be at least 1, got {self.factor!r}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("max_attempts must be an int")
        if not 1 <= self.max_attempts <= 2**31 - 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.on_max_attempts not in _ON_MAX_ATTEMPTS:
            raise ValueError(
                f"on_max_attempts must be 'pause' or 'kill', not {self.on_max_attempts!r}"
            )

    def to_proto(self) -> workers_pb2.RetryPolicy:
        """Returns the policy as sent in RegisterDeployment, every field set."""
        return workers_pb2.RetryPolicy(
            initial_interval=to_duration(self.initial_interval, "initial_interval"),
            factor=float(self.factor),
            max_interval=to_duration(self.max_interval, "max_interval"),
            max_attempts=self.max_attempts,
            on_max_attempts=_ON_MAX_ATTEMPTS[self.on_max_attempts],
        )
