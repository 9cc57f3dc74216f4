"""Fixtures of the end-to-end tests: a control-plane client and a worker that parks
invocations in any state (see _operator.py), and a Workers stub for raw streams (_raw.py)."""

from __future__ import annotations

import grpc
import pytest

from invoctl.v1 import workers_pb2_grpc
from tests.e2e._browser import browser, page  # noqa: F401 (the console's fixtures)
from tests.e2e._http import Http
from tests.e2e._operator import Lab, Operator


@pytest.fixture
async def op(server):
    async with Operator(server.address) as o:
        yield o


@pytest.fixture
async def lab(server, client):
    async with Lab(server.address, client) as lab:
        yield lab


@pytest.fixture
async def workers(server):
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield workers_pb2_grpc.WorkersStub(channel)


@pytest.fixture
async def http(server):
    """The in-process server's HTTP API, without a token."""
    async with Http(server.http_url) as h:
        yield h
