"""ListAuditEntries: every operator request, accepted or refused, newest first, with who,
what, why and the result (DESIGN.md section 4)."""

from __future__ import annotations

from datetime import UTC

import pytest

from invoctl.client import InvoctlError
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._operator import UNKNOWN_ID


async def test_every_request_is_recorded_newest_first(lab, op):
    running = await lab.make(pb.INVOCATION_STATE_RUNNING)
    done = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    await op.kill(running, reason="stuck", request_id="req-kill")
    await op.refused("PauseInvocation", done, reason="oops")
    restarted = await op.restart(done, reason="rerun", request_id="req-restart")
    await op.refused("KillInvocation", UNKNOWN_ID, reason="typo")

    entries = await op.audit()
    assert [(e.operation, e.invocation_id, e.result, e.reason, e.request_id) for e in entries] == [
        ("KillInvocation", UNKNOWN_ID, "INVOCATION_NOT_FOUND", "typo", ""),
        ("RestartInvocationAsNew", done, "OK", "rerun", "req-restart"),
        ("PauseInvocation", done, "INVALID_STATE_TRANSITION", "oops", ""),
        ("KillInvocation", running, "OK", "stuck", "req-kill"),
    ]
    assert {e.identity for e in entries} == {"anonymous"}
    ids = [e.id for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    ats = [e.at.ToDatetime() for e in entries]
    assert ats == sorted(ats, reverse=True)
    unknown, restart, pause, kill = entries
    assert kill.state_after == pb.INVOCATION_STATE_COMPLETED
    assert pause.state_after == pb.INVOCATION_STATE_UNSPECIFIED
    assert unknown.state_after == pb.INVOCATION_STATE_UNSPECIFIED
    assert restart.new_invocation_id == restarted.id
    assert kill.new_invocation_id == pause.new_invocation_id == ""

    # Filtered by invocation.
    about_done = await op.audit(done)
    assert [(e.operation, e.result) for e in about_done] == [
        ("RestartInvocationAsNew", "OK"),
        ("PauseInvocation", "INVALID_STATE_TRANSITION"),
    ]
    assert await op.audit(restarted.id) == []


async def test_audit_pages(lab, op):
    inv_id = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    for n in range(5):
        await op.refused("PauseInvocation", inv_id, reason=f"try {n}")
    everything = await op.audit(inv_id)
    assert [e.reason for e in everything] == [f"try {n}" for n in reversed(range(5))]

    pages = []
    token = ""
    while True:
        page = await op.audit_page(inv_id, page_size=2, page_token=token)
        pages.append([e.reason for e in page.entries])
        token = page.next_page_token
        if not token:
            break
    assert pages == [["try 4", "try 3"], ["try 2", "try 1"], ["try 0"]]
    with pytest.raises(InvoctlError) as refused:
        await op.audit_page(inv_id, page_size=2, page_token="garbage!")
    assert refused.value.reason == "INVALID_PAGE_TOKEN"


async def test_the_server_filters_by_identity_operation_and_time(lab, op, client):
    first = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    await op.refused("PauseInvocation", first, reason="one")
    await op.refused("KillInvocation", first, reason="two")
    entries, _ = await client.list_audit_entries()
    two, _ = entries  # newest first
    at_two = two.at.ToDatetime(tzinfo=UTC)

    async def reasons(**filters) -> list[str]:
        page, _ = await client.list_audit_entries(**filters)
        return [e.reason for e in page]

    assert await reasons(operation="KILL") == ["two"]  # contained, any case
    assert await reasons(operation="invocation") == ["two", "one"]
    assert await reasons(identity="anonymous") == ["two", "one"]
    assert await reasons(identity="anon") == []  # identity is exact
    assert await reasons(after=at_two) == ["two"]  # at or after
    assert await reasons(before=at_two) == ["one"]  # strictly before
    assert await reasons(after=at_two, operation="pause") == []
    with pytest.raises(ValueError, match="timezone"):
        await client.list_audit_entries(after=at_two.replace(tzinfo=None))
