"""PurgeInvocation deletes a completed invocation, its journal and history and frees its
idempotency key; PurgeJournal keeps the result but makes a restart impossible
(DESIGN.md section 4)."""

from __future__ import annotations

import pytest

from invoctl.client import InvoctlError
from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._operator import (
    FAILED_PRECONDITION,
    NOT_FOUND,
    assert_refused,
    footprint,
)


def stepper(runs: list[str]) -> Service:
    svc = Service("Stepper")

    @svc.handler()
    async def work(ctx: Context, label: str) -> str:
        runs.append(label)
        first = await ctx.run("first", lambda: f"{label}-1")
        second = await ctx.run("second", lambda: f"{label}-2")
        return f"{first}+{second}"

    return svc


async def _counts(db, inv_id: str) -> tuple[int, int, int]:
    return (
        await db.fetchval("SELECT count(*) FROM invocations WHERE id = $1", inv_id),
        await db.fetchval("SELECT count(*) FROM journal_entries WHERE invocation_id = $1", inv_id),
        await db.fetchval(
            "SELECT count(*) FROM invocation_transitions WHERE invocation_id = $1", inv_id
        ),
    )


async def test_purge_deletes_the_invocation_and_frees_its_idempotency_key(server, client, op, db):
    runs: list[str] = []
    async with Worker([stepper(runs)], server=server.address):
        first = await client.send("Stepper", "work", "a", idempotency_key="order-1")
        done = await client.attach(first)
        assert done.output == '"a-1+a-2"'
        # While it is retained, the key answers with the same invocation.
        assert await client.send("Stepper", "work", "a", idempotency_key="order-1") == first
        other = await client.invoke("Stepper", "work", "b")
        assert other == "b-1+b-2"
        assert await _counts(db, first) == (1, 2, 3)

        purged = await op.purge(first, reason="gdpr")
        assert purged.id == first
        assert purged.state == pb.INVOCATION_STATE_COMPLETED
        assert await _counts(db, first) == (0, 0, 0)
        for read in (client.get_invocation, client.get_journal):
            with pytest.raises(InvoctlError) as gone:
                await read(first)
            assert (gone.value.code, gone.value.reason) == (NOT_FOUND, "INVOCATION_NOT_FOUND")
        err = await op.refused("PurgeInvocation", first)
        assert_refused(err, NOT_FOUND, "INVOCATION_NOT_FOUND")

        # The key is free: the same key starts a new invocation, which runs.
        second = await client.send("Stepper", "work", "a", idempotency_key="order-1")
        assert second != first
        assert (await client.attach(second)).output == '"a-1+a-2"'
    assert runs.count("a") == 2
    # Others are untouched, and the audit log still tells what happened to it.
    [kept] = [i for i in (await client.list_invocations(service="Stepper"))[0] if i.input == '"b"']
    assert kept.output == '"b-1+b-2"'
    audit = await op.audit(first)
    assert [(e.operation, e.result) for e in audit] == [
        ("PurgeInvocation", "INVOCATION_NOT_FOUND"),
        ("PurgeInvocation", "OK"),
    ]
    assert audit[1].reason == "gdpr"


async def test_purge_journal_keeps_the_output_and_refuses_a_restart(server, client, op, db):
    async with Worker([stepper([])], server=server.address):
        inv_id = await client.send("Stepper", "work", "j")
        await client.attach(inv_id)
        history_before = await db.fetchval(
            "SELECT count(*) FROM invocation_transitions WHERE invocation_id = $1", inv_id
        )
        after = await op.purge_journal(inv_id)
        assert (after.id, after.journal_length) == (inv_id, 0)
        assert (after.state, after.outcome) == (
            pb.INVOCATION_STATE_COMPLETED,
            pb.OUTCOME_SUCCEEDED,
        )
        assert after.output == '"j-1+j-2"'
        journal = await client.get_journal(inv_id)
        assert list(journal.entries) == []
        assert journal.invocation.output == '"j-1+j-2"'
        assert await _counts(db, inv_id) == (1, 0, history_before)

        before = await footprint(db, inv_id)
        err = await op.refused("RestartInvocationAsNew", inv_id)
        assert_refused(err, FAILED_PRECONDITION, "JOURNAL_PURGED", invocation_id=inv_id)
        # With a prefix too: there is no journal left to keep a prefix of.
        err = await op.refused("RestartInvocationAsNew", inv_id, from_entry=1)
        assert err.reason in ("JOURNAL_PURGED", "INVALID_FROM_ENTRY"), repr(err)
        assert await footprint(db, inv_id) == before
        assert (await client.list_invocations(service="Stepper"))[0][0].id == inv_id
