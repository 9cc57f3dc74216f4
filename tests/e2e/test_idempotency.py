"""Idempotency keys: the same key and target return the same invocation (DESIGN.md 7)."""

from __future__ import annotations

import asyncio
from collections import Counter

from invoctl.client import invoke_request
from invoctl.sdk import Context, ObjectContext, Service, VirtualObject, Worker


def services(runs: Counter[str]) -> list[Service | VirtualObject]:
    svc = Service("Payments")

    @svc.handler()
    async def charge(ctx: Context, amount: int) -> str:
        runs[f"charge:{amount}"] += 1
        return f"charged {amount}"

    @svc.handler()
    async def refund(ctx: Context, amount: int) -> str:
        runs[f"refund:{amount}"] += 1
        return f"refunded {amount}"

    account = VirtualObject("Account")

    @account.handler()
    async def deposit(ctx: ObjectContext, amount: int) -> str:
        runs[f"deposit:{ctx.key}:{amount}"] += 1
        return f"{ctx.key} +{amount}"

    return [svc, account]


async def test_same_key_and_target_return_the_same_invocation(server, client, db):
    runs: Counter[str] = Counter()
    async with Worker(services(runs), server=server.address):
        first = await client.invoke_raw(
            invoke_request("Payments", "charge", 5, idempotency_key="k1")
        )
        again = await client.invoke_raw(
            invoke_request("Payments", "charge", 5, idempotency_key="k1")
        )
        # A different argument does not make it a different request: the key decides.
        third = await client.invoke_raw(
            invoke_request("Payments", "charge", 6, idempotency_key="k1")
        )

    assert not first.deduplicated
    assert first.invocation.output == '"charged 5"'
    assert first.invocation.idempotency_key == "k1"
    for dup in (again, third):
        assert dup.deduplicated
        assert dup.invocation_id == first.invocation_id
        assert dup.invocation.output == '"charged 5"'
    assert runs == {"charge:5": 1}
    assert await db.fetchval("SELECT count(*) FROM invocations") == 1


async def test_other_key_or_target_starts_a_new_invocation(server, client, db):
    runs: Counter[str] = Counter()
    async with Worker(services(runs), server=server.address):
        requests = [
            invoke_request("Payments", "charge", 1, idempotency_key="k1"),
            invoke_request("Payments", "charge", 1, idempotency_key="k2"),  # other key
            invoke_request("Payments", "refund", 1, idempotency_key="k1"),  # other handler
            invoke_request("Account", "deposit", 1, key="a", idempotency_key="k1"),
            invoke_request("Account", "deposit", 1, key="b", idempotency_key="k1"),  # other key
            invoke_request("Payments", "charge", 1),  # no key: never deduplicated
            invoke_request("Payments", "charge", 1),
        ]
        responses = [await client.invoke_raw(r) for r in requests]

    assert not any(r.deduplicated for r in responses)
    assert len({r.invocation_id for r in responses}) == len(requests)
    assert runs == {"charge:1": 4, "refund:1": 1, "deposit:a:1": 1, "deposit:b:1": 1}
    assert await db.fetchval("SELECT count(*) FROM invocations") == len(requests)


async def test_concurrent_sends_with_one_key_start_one_invocation(server, client, db):
    runs: Counter[str] = Counter()
    async with Worker(services(runs), server=server.address):
        request = invoke_request("Payments", "charge", 9, idempotency_key="once", send=True)
        responses = await asyncio.gather(*(client.invoke_raw(request) for _ in range(8)))
        done = await client.attach(responses[0].invocation_id)

    assert len({r.invocation_id for r in responses}) == 1
    assert sorted(r.deduplicated for r in responses) == [False] + [True] * 7
    assert done.output == '"charged 9"'
    assert runs == {"charge:9": 1}
    assert await db.fetchval("SELECT count(*) FROM invocations") == 1
