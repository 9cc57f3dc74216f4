"""What the CLI unit tests share: a fixed clock, timestamps around it, and rich output
rendered to plain text."""

from __future__ import annotations

import datetime as dt
import io

from google.protobuf import timestamp_pb2
from rich.console import Console

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(NOW + dt.timedelta(seconds=seconds_from_now))
    return stamp


def render(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]
