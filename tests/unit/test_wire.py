"""invoctl.wire.packed: how many messages go in one stream message."""

from __future__ import annotations

from invoctl import wire
from invoctl.v1 import workers_pb2 as wpb


def _ack(seq: int, padding: int = 0) -> wpb.ConnectResponse:
    return wpb.ConnectResponse(ack=wpb.WorkerAck(seq=seq, error_message="x" * padding))


def _batch(messages: list[wpb.ConnectResponse]) -> wpb.ConnectResponse:
    return wpb.ConnectResponse(batch=wpb.ConnectResponseBatch(messages=messages))


def _seqs(out: list[wpb.ConnectResponse]) -> list[list[int]]:
    return [
        [m.ack.seq for m in o.batch.messages] if o.HasField("batch") else [o.ack.seq] for o in out
    ]


def test_small_messages_go_as_one_batch_and_a_single_one_as_itself():
    assert _seqs(list(wire.packed([_ack(i) for i in range(1, 6)], _batch))) == [[1, 2, 3, 4, 5]]
    [alone] = wire.packed([_ack(7)], _batch)
    assert alone.WhichOneof("message") == "ack"
    assert list(wire.packed([], _batch)) == []


def test_batches_stay_under_the_byte_limit_and_keep_the_order():
    third = wire.BATCH_BYTES // 3
    messages = [_ack(i, third) for i in range(1, 8)]
    out = list(wire.packed(messages, _batch))
    assert _seqs(out) == [[1, 2], [3, 4], [5, 6], [7]]
    assert all(o.ByteSize() <= wire.BATCH_BYTES + 16 for o in out)  # + the batch's framing


def test_a_message_larger_than_the_limit_goes_alone():
    big = _ack(2, wire.BATCH_BYTES + 1)
    out = list(wire.packed([_ack(1), big, _ack(3), _ack(4)], _batch))
    assert _seqs(out) == [[1], [2], [3, 4]]
    assert out[1] == big
