"""Every operator RPC refuses a malformed ID, an unknown ID and a wrong state with its
code and ErrorInfo reason, and a refused request changes nothing (DESIGN.md section 4)."""

from __future__ import annotations

import pytest

from invoctl.client import state_name
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._operator import (
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    MALFORMED_IDS,
    NOT_FOUND,
    OPERATIONS,
    REFUSED_FROM,
    UNKNOWN_ID,
    assert_refused,
    assert_wrong_state,
    footprint,
)


@pytest.mark.parametrize("rpc", OPERATIONS)
async def test_malformed_and_unknown_ids_are_refused(op, lab, db, rpc):
    # Something to leave alone: a completed invocation.
    done = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    before = await footprint(db, done)
    for bad_id in MALFORMED_IDS:
        err = await op.refused(rpc, bad_id, reason="typo")
        assert_refused(err, INVALID_ARGUMENT, "MALFORMED_ID", invocation_id=bad_id)
        assert err.message
    err = await op.refused(rpc, UNKNOWN_ID, reason="gone")
    assert_refused(err, NOT_FOUND, "INVOCATION_NOT_FOUND", invocation_id=UNKNOWN_ID)
    assert await footprint(db, done) == before


@pytest.mark.parametrize("rpc", OPERATIONS)
async def test_wrong_state_is_refused_and_changes_nothing(op, lab, db, rpc):
    for state in REFUSED_FROM[rpc]:
        inv_id = await lab.make(state)
        before = await footprint(db, inv_id)
        err = await op.refused(rpc, inv_id, reason=f"{rpc} from {state_name(state)}")
        assert_wrong_state(err, inv_id, state)
        assert await footprint(db, inv_id) == before, state_name(state)


async def test_refusals_about_an_invocation_carry_its_current_state(op, lab, client, db):
    # DESIGN.md section 4: every error about an existing invocation carries its ID and
    # current state in the ErrorInfo metadata, not only INVALID_STATE_TRANSITION.
    paused = await lab.make(pb.INVOCATION_STATE_PAUSED)
    done = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    [idle] = await client.list_deployments(service="LabIdle")  # serves no Lab handler
    before = (await footprint(db, paused), await footprint(db, done))

    err = await op.refused("ResumeInvocation", paused, deployment=idle.id)
    assert_refused(err, FAILED_PRECONDITION, "DEPLOYMENT_DOES_NOT_SERVE",
                   invocation_id=paused, state=state_name(pb.INVOCATION_STATE_PAUSED))  # fmt: skip
    err = await op.refused("RestartInvocationAsNew", done, from_entry=99)
    assert_refused(err, INVALID_ARGUMENT, "INVALID_FROM_ENTRY",
                   invocation_id=done, state=state_name(pb.INVOCATION_STATE_COMPLETED))  # fmt: skip
    assert (await footprint(db, paused), await footprint(db, done)) == before

    await op.call("PurgeJournal", done)
    err = await op.refused("RestartInvocationAsNew", done)
    assert_refused(err, FAILED_PRECONDITION, "JOURNAL_PURGED",
                   invocation_id=done, state=state_name(pb.INVOCATION_STATE_COMPLETED))  # fmt: skip
