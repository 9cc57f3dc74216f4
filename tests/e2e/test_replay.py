"""A new attempt replays the journal; a handler that no longer matches it fails with
NON_DETERMINISM and is retried (DESIGN.md section 2, Journal)."""

from __future__ import annotations

from collections import Counter

from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import FAST_RETRY, history
from tests.support import wait_for


async def test_retry_replays_completed_steps_without_running_them_again(server, client):
    executed: Counter[str] = Counter()
    svc = Service("Replayer", retry_policy=FAST_RETRY)

    @svc.handler()
    async def work(ctx: Context, base: int) -> list[int]:
        def step(name: str, value: int) -> int:
            executed[name] += 1
            return value

        one = await ctx.run("step1", step, "step1", base + 1)
        two = await ctx.run("step2", step, "step2", base + 2)
        if ctx.attempt == 1:
            raise RuntimeError("crash after step 2")
        three = await ctx.run("step3", step, "step3", base + 3)
        return [one, two, three]

    async with Worker([svc], server=server.address):
        out = await client.invoke("Replayer", "work", 10)

    assert out == [11, 12, 13]  # replayed results are the journaled ones
    assert executed == {"step1": 1, "step2": 1, "step3": 1}
    [inv], _ = await client.list_invocations(service="Replayer")
    assert inv.attempt_count == 2
    assert inv.last_failure.code == "RETRYABLE"
    assert "crash after step 2" in inv.last_failure.message
    journal = await client.get_journal(inv.id)
    assert [(e.name, e.value) for e in journal.entries] == [
        ("step1", "11"),
        ("step2", "12"),
        ("step3", "13"),
    ]
    assert [e for _, _, e in await history(client, inv.id)] == [
        "accepted",
        "claimed",
        "attempt_failed",
        "retry_due",
        "claimed",
        "completed",
    ]


async def test_journal_mismatch_fails_with_non_determinism_and_is_retried(server, client):
    # The step name lives in a closure: the first attempt renames it before crashing, so
    # the second attempt's code no longer matches the journal; the test later "fixes the
    # code" by restoring the name.
    names = {"step": "original"}
    executed: Counter[str] = Counter()
    # Attempt 1 -> 2 after 50 ms; attempt 2 -> 3 after 500 ms: room to observe backing-off.
    policy = RetryPolicy(initial_interval=0.05, factor=10, max_interval=1)
    svc = Service("Drifter", retry_policy=policy)

    @svc.handler()
    async def work(ctx: Context) -> str:
        def step() -> str:
            executed[names["step"]] += 1
            return "done"

        result = await ctx.run(names["step"], step)
        if ctx.attempt == 1:
            names["step"] = "renamed"
            raise RuntimeError("crash after the step")
        return f"{result} in attempt {ctx.attempt}"

    async with Worker([svc], server=server.address):
        inv_id = await client.send("Drifter", "work")
        inv = await _wait_attempt_failed(client, inv_id, attempt=2)
        assert inv.state == pb.INVOCATION_STATE_BACKING_OFF
        assert inv.attempt_count == 2
        assert inv.last_failure.code == "NON_DETERMINISM"
        assert "original" in inv.last_failure.message
        assert "renamed" in inv.last_failure.message
        assert inv.HasField("next_retry_at")
        assert executed == {"original": 1}  # the mismatching step did not run

        names["step"] = "original"  # the fixed deployment
        done = await client.attach(inv_id)

    assert done.outcome == pb.OUTCOME_SUCCEEDED
    assert done.output == '"done in attempt 3"'
    assert executed == {"original": 1}
    journal = await client.get_journal(inv_id)
    assert [e.name for e in journal.entries] == ["original"]
    failed = [t for t in journal.transitions if t.event == "attempt_failed"]
    assert [t.attempt for t in failed] == [1, 2]
    assert all(t.to_state == pb.INVOCATION_STATE_BACKING_OFF for t in failed)
    assert "NonDeterminismError" in failed[1].detail


async def _wait_attempt_failed(client, inv_id: str, *, attempt: int) -> pb.Invocation:
    async def probe():
        inv = await client.get_invocation(inv_id)
        if inv.state == pb.INVOCATION_STATE_BACKING_OFF and inv.attempt_count == attempt:
            return inv
        return None

    return await wait_for(probe, timeout=10, what=f"attempt {attempt} of {inv_id} to fail")
