"""Any gRPC client works, with nothing but reflection: the `buf curl` commands the README
shows (get, cancel, a streamed bulk cancel), run against a real server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state

BUF = Path(sys.executable).with_name("buf")  # from the buf-bin package


async def buf_curl(address: str, method: str, data: dict) -> list[dict]:
    """`buf curl` as the README writes it; returns the messages it printed."""
    proc = await asyncio.create_subprocess_exec(
        str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
        "--data", json.dumps(data), f"http://{address}/invoctl.v1.InvocationControl/{method}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    decoder, text, messages = json.JSONDecoder(), out.decode().strip(), []
    while text:  # a stream prints one JSON document per message
        message, end = decoder.raw_decode(text)
        messages.append(message)
        text = text[end:].strip()
    return messages


async def test_get_cancel_and_bulk_cancel_with_buf_curl(lab, client, server):
    inv_id = await lab.make(pb.INVOCATION_STATE_SUSPENDED)
    [got] = await buf_curl(server.address, "GetInvocation", {"invocationId": inv_id})
    assert (got["invocation"]["id"], got["invocation"]["state"]) == (
        inv_id,
        "INVOCATION_STATE_SUSPENDED",
    )

    [cancelled] = await buf_curl(
        server.address, "CancelInvocation", {"invocationId": inv_id, "reason": "buf curl"}
    )
    assert cancelled["invocation"]["id"] == inv_id
    assert (await client.attach(inv_id)).outcome == pb.OUTCOME_CANCELLED

    naps = [await lab.make(pb.INVOCATION_STATE_SUSPENDED) for _ in range(3)]
    progress = await buf_curl(
        server.address,
        "CancelInvocations",
        {"selector": {"query": "Lab/nap", "states": ["INVOCATION_STATE_SUSPENDED"]}},
    )
    last = progress[-1]
    assert last["final"] is True and last["state"] == "BULK_OPERATION_STATE_COMPLETED"
    assert (int(last["matched"]), int(last["succeeded"])) == (3, 3)
    for nap in naps:
        await wait_state(client, nap, pb.INVOCATION_STATE_COMPLETED)
