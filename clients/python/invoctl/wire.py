"""What the server and the SDK share about the worker stream beyond its protos."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

# A batch stays far below the smallest receive limit of a peer (gRPC's default, 4 MiB).
# A message larger than this goes alone, as it would without batching.
BATCH_BYTES = 512 * 1024


def packed(messages: Sequence[M], batch: Callable[[list[M]], M]) -> Iterator[M]:
    """`messages` as few stream messages as fit in BATCH_BYTES each, in order: a run of
    several becomes `batch(run)`, a single one goes as itself."""
    run: list[M] = []
    size = 0
    for message in messages:
        n = message.ByteSize()
        if run and size + n > BATCH_BYTES:
            yield run[0] if len(run) == 1 else batch(run)
            run, size = [], 0
        run.append(message)
        size += n
    if run:
        yield run[0] if len(run) == 1 else batch(run)
