"""Fixtures of the operator-action tests: a control-plane client and a worker that parks
invocations in any state (see _operator.py)."""

from __future__ import annotations

import pytest

from tests.e2e._operator import Lab, Operator


@pytest.fixture
async def op(server):
    async with Operator(server.address) as o:
        yield o


@pytest.fixture
async def lab(server, client):
    async with Lab(server.address, client) as lab:
        yield lab
