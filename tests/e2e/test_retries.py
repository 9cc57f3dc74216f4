"""Retries with backoff, and what happens when the attempts run out (DESIGN.md section 3)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from invoctl.client import InvocationFailed
from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import history, wait_state


def failing_service(name: str, attempts: Counter[str], **kwargs) -> Service:
    svc = Service(name, **kwargs)

    @svc.handler()
    async def boom(ctx: Context) -> None:
        attempts[ctx.invocation_id] += 1
        raise RuntimeError(f"boom in attempt {ctx.attempt}")

    return svc


async def test_failing_attempt_backs_off_with_failure_and_retry_time(server, client):
    attempts: Counter[str] = Counter()
    # A long first interval so the invocation stays backing-off while the test looks.
    policy = RetryPolicy(initial_interval=30, max_interval=60)
    async with Worker(
        [failing_service("Flaky", attempts, retry_policy=policy)], server=server.address
    ):
        before = datetime.now(UTC)
        inv_id = await client.send("Flaky", "boom")
        inv = await wait_state(client, inv_id, pb.INVOCATION_STATE_BACKING_OFF)
        after = datetime.now(UTC)

    assert inv.attempt_count == 1
    assert attempts[inv_id] == 1
    assert inv.last_failure.code == "RETRYABLE"
    assert inv.last_failure.message == "RuntimeError: boom in attempt 1"
    assert inv.outcome == pb.OUTCOME_UNSPECIFIED
    assert not inv.HasField("failure")
    retry_at = inv.next_retry_at.ToDatetime(tzinfo=UTC)
    assert before + timedelta(seconds=30) <= retry_at <= after + timedelta(seconds=30)
    assert (await history(client, inv_id))[-1] == ("running", "backing-off", "attempt_failed")


async def test_exhausted_retries_pause_by_default(server, client):
    attempts: Counter[str] = Counter()
    policy = RetryPolicy(initial_interval=0.05, max_interval=0.05, max_attempts=3)
    async with Worker(
        [failing_service("Flaky", attempts, retry_policy=policy)], server=server.address
    ):
        inv_id = await client.send("Flaky", "boom")
        inv = await wait_state(client, inv_id, pb.INVOCATION_STATE_PAUSED)

    assert attempts[inv_id] == 3
    assert inv.attempt_count == 3
    assert inv.outcome == pb.OUTCOME_UNSPECIFIED
    assert inv.last_failure.code == "RETRYABLE"
    assert inv.last_failure.message == "RuntimeError: boom in attempt 3"
    assert not inv.HasField("next_retry_at")
    steps = await history(client, inv_id)
    assert [s for s in steps if s[2] in ("attempt_failed", "retries_exhausted")] == [
        ("running", "backing-off", "attempt_failed"),
        ("running", "backing-off", "attempt_failed"),
        ("running", "paused", "retries_exhausted"),
    ]
    assert steps[-1][1] == "paused"


async def test_exhausted_retries_kill_when_the_policy_says_so(server, client):
    attempts: Counter[str] = Counter()
    policy = RetryPolicy(
        initial_interval=0.05, max_interval=0.05, max_attempts=3, on_max_attempts="kill"
    )
    async with Worker(
        [failing_service("Doomed", attempts, retry_policy=policy)], server=server.address
    ):
        with pytest.raises(InvocationFailed) as failed:
            await client.invoke("Doomed", "boom")

    inv = failed.value.invocation
    assert inv.state == pb.INVOCATION_STATE_COMPLETED
    assert inv.outcome == pb.OUTCOME_KILLED
    assert inv.attempt_count == 3
    assert attempts[inv.id] == 3
    assert inv.failure.code == "RETRIES_EXHAUSTED"
    assert "boom in attempt 3" in inv.failure.message
    assert inv.last_failure.code == "RETRYABLE"
    steps = await history(client, inv.id)
    assert [s for s in steps if s[2] in ("attempt_failed", "retries_exhausted")] == [
        ("running", "backing-off", "attempt_failed"),
        ("running", "backing-off", "attempt_failed"),
        ("running", "completed", "retries_exhausted"),
    ]


async def test_handler_policy_overrides_service_policy(server, client):
    attempts: Counter[str] = Counter()
    svc = Service(
        "Layered",
        retry_policy=RetryPolicy(initial_interval=0.05, max_interval=0.05, max_attempts=2),
    )

    @svc.handler()
    async def inherits(ctx: Context) -> None:
        attempts[ctx.invocation_id] += 1
        raise RuntimeError("inherits")

    @svc.handler(
        retry_policy=RetryPolicy(
            initial_interval=0.05, max_interval=0.05, max_attempts=4, on_max_attempts="kill"
        )
    )
    async def overrides(ctx: Context) -> None:
        attempts[ctx.invocation_id] += 1
        raise RuntimeError("overrides")

    # The worker's default applies to neither: the service has its own policy.
    default = RetryPolicy(initial_interval=0.05, max_interval=0.05, max_attempts=7)
    async with Worker([svc], server=server.address, retry_policy=default):
        inherits_id = await client.send("Layered", "inherits")
        overrides_id = await client.send("Layered", "overrides")
        paused = await wait_state(client, inherits_id, pb.INVOCATION_STATE_PAUSED)
        killed = await client.attach(overrides_id)

    assert paused.attempt_count == attempts[inherits_id] == 2
    assert killed.outcome == pb.OUTCOME_KILLED
    assert killed.attempt_count == attempts[overrides_id] == 4

    [dep] = await client.list_deployments("Layered")
    [definition] = dep.services
    policies = {h.name: h.retry_policy for h in definition.handlers}
    assert policies["inherits"].max_attempts == 2
    assert policies["overrides"].max_attempts == 4
