"""What the servicers share: the pool, configuration and the runtime loops."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from ..config import Config
from ..runtime.batches import Batches
from ..runtime.bulk import BulkRunner
from ..runtime.completions import Completions
from ..runtime.sessions import Dispatcher
from ..runtime.timers import Timers

if TYPE_CHECKING:
    from .operator import Operator


@dataclasses.dataclass
class Runtime:
    pool: asyncpg.Pool
    config: Config
    dispatcher: Dispatcher
    timers: Timers
    completions: Completions
    batches: Batches
    operator: Operator
    bulk: BulkRunner

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)
