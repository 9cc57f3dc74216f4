"""The SDK Worker presents its token (`authorization: Bearer ...`) on every RPC it makes:
RegisterDeployment, and the Connect stream of every session, reconnects included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from invoctl.client import Client, tls_credentials
from invoctl.sdk import Worker
from invoctl_server.api.auth import token_hash
from invoctl_server.app import App
from tests._certs import make_certs
from tests.conftest import server_config
from tests.e2e._helpers import greeter
from tests.support import wait_for

WORKER_TOKEN = "worker-token-for-tests"
OPERATOR_TOKEN = "operator-token-for-tests"
TOKENS = json.dumps(
    {
        "tokens": [
            {"identity": "test-worker", "role": "worker", "sha256": token_hash(WORKER_TOKEN)},
            {"identity": "test-op", "role": "operator", "sha256": token_hash(OPERATOR_TOKEN)},
        ]
    }
)


@asynccontextmanager
async def serving(database: str, **overrides) -> AsyncIterator[App]:
    app = await App.start(server_config(database, auth_tokens=TOKENS, **overrides))
    try:
        yield app
    finally:
        await app.stop(grace=0)


async def test_a_worker_with_a_worker_token_registers_and_runs(database):
    async with (
        serving(database) as app,
        Worker([greeter()], server=app.address, token=WORKER_TOKEN) as worker,
        Client(app.address, token=OPERATOR_TOKEN) as client,
    ):
        assert worker.deployment_id is not None
        out = await asyncio.wait_for(client.invoke("Greeter", "greet", "Ada"), 30)
    assert out == "Hello, Ada!"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("not-a-known-token", grpc.StatusCode.UNAUTHENTICATED),
        (OPERATOR_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_a_worker_without_a_worker_token_cannot_register(database, token, code):
    async with serving(database) as app:
        worker = Worker([greeter()], server=app.address, token=token)
        # Not retried like UNAVAILABLE: run() gives up at once.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(worker.run(), 30)
    assert refused.value.code() == code
    assert worker.deployment_id is None


async def test_the_token_goes_with_every_reconnect(database):
    """The server goes away under a connected worker and a new one comes up on the same
    port: the worker's new Connect stream carries the token too."""
    first = await App.start(server_config(database, auth_tokens=TOKENS))
    address = first.address
    worker = Worker([greeter()], server=address, token=WORKER_TOKEN)
    running = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: _true(worker.ready.is_set()), what="the worker to connect")
        await first.stop(grace=0)
        await wait_for(lambda: _true(not worker.ready.is_set()), what="the session to break")
        async with (
            serving(database, listen=address) as second,
            Client(second.address, token=OPERATOR_TOKEN) as client,
        ):
            await wait_for(lambda: _true(worker.ready.is_set()), what="the worker to reconnect")
            out = await asyncio.wait_for(client.invoke("Greeter", "greet", "Bo"), 30)
            await worker.stop()
    finally:
        await first.stop(grace=0)  # a no-op unless the test failed before stopping it
        if not running.done():
            await worker.stop()
        await running
    assert out == "Hello, Bo!"


async def test_a_worker_with_a_token_over_mutual_tls(database, tmp_path):
    certs = make_certs(tmp_path / "certs")
    tls = dict(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    credentials = tls_credentials(certs.ca, certs.client_cert, certs.client_key)
    async with (
        serving(database, **tls) as app,
        Worker([greeter()], server=app.address, token=WORKER_TOKEN, credentials=credentials),
        Client(app.address, token=OPERATOR_TOKEN, credentials=credentials) as client,
    ):
        out = await asyncio.wait_for(client.invoke("Greeter", "greet", "Cy"), 30)
    assert out == "Hello, Cy!"


async def _true(value: bool) -> bool:
    return value
