"""What the server and the SDK share about the worker stream beyond its protos."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

# The options of every channel to an invoctl server (client, CLI, SDK worker). A response
# carries several payloads, each up to the server's --max-payload-bytes: an invocation its
# input and output, an attempt its input and journal. gRPC's default receive limit (4 MiB)
# would refuse them, so a client takes what its server sends; the server bounds it.
CHANNEL_OPTIONS: list[tuple[str, int]] = [("grpc.max_receive_message_length", -1)]

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
