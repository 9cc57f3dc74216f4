"""Retry policy: exponential backoff with a cap, and what happens after the last attempt."""

from __future__ import annotations

import dataclasses
import enum
from datetime import timedelta


class OnMaxAttempts(enum.StrEnum):
    PAUSE = "pause"
    KILL = "kill"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """DESIGN.md section 3 defaults: 500 ms, x2, at most 60 s, 70 attempts, then pause."""

    initial_interval_ms: int = 500
    factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int = 70
    on_max_attempts: OnMaxAttempts = OnMaxAttempts.PAUSE

    def delay_after(self, attempt: int) -> timedelta:
        """Backoff before the attempt after `attempt` (1-based) failed."""
        ms = self.initial_interval_ms * self.factor ** max(attempt - 1, 0)
        return timedelta(milliseconds=min(ms, self.max_interval_ms))

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["on_max_attempts"] = str(self.on_max_attempts)
        return data

    @classmethod
    def from_json(cls, data: dict | None) -> RetryPolicy:
        if not data:
            return cls()
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        if "on_max_attempts" in values:
            values["on_max_attempts"] = OnMaxAttempts(values["on_max_attempts"])
        return cls(**values)

    def merged(self, **overrides: object) -> RetryPolicy:
        """This policy with the given fields replaced; None values keep this policy's."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})
