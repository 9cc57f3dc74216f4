"""The proto enum, the Python enum and the database CHECK agree on states and outcomes."""

from __future__ import annotations

import re

from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.domain.states import TRANSITIONS, Outcome, State


async def _check_values(db, constraint_column: str) -> set[str]:
    definition = await db.fetchval(
        """
        SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
        WHERE c.conrelid = 'invocations'::regclass AND c.contype = 'c'
          AND pg_get_constraintdef(c.oid) LIKE $1
        """,
        f"%({constraint_column} = ANY%",
    )
    assert definition, f"no CHECK on invocations.{constraint_column}"
    return set(re.findall(r"'([a-z-]+)'::text", definition))


async def test_states_agree_across_proto_python_and_database(db):
    proto = {n.removeprefix("INVOCATION_STATE_") for n in pb.InvocationState.keys()}
    proto.discard("UNSPECIFIED")
    assert proto == {s.name for s in State}
    assert await _check_values(db, "state") == {s.value for s in State}


async def test_outcomes_agree_across_proto_python_and_database(db):
    proto = {n.removeprefix("OUTCOME_") for n in pb.Outcome.keys()}
    proto.discard("UNSPECIFIED")
    assert proto == {o.name for o in Outcome}
    assert await _check_values(db, "outcome") == {o.value for o in Outcome}


async def test_database_refuses_an_outcome_on_a_running_invocation(db):
    import asyncpg
    import pytest

    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            """INSERT INTO invocations (id, service, handler, exclusive, state, outcome, input,
                   session_id, created_at, modified_at)
               VALUES ('inv_x', 's', 'h', false, 'running', 'succeeded', 'null', 'sess', now(),
                   now())"""
        )


def test_every_state_but_completed_has_a_way_out():
    sources = {s for (s, _e) in TRANSITIONS if s is not None}
    # paused is left by operator actions (next issue); the rest must have a transition out.
    assert sources >= set(State) - {State.COMPLETED, State.PAUSED}
    assert all(State.COMPLETED != s for (s, _e) in TRANSITIONS)


async def test_every_named_query_prepares_against_the_schema(db):
    """Catches SQL typos, and a query the loader split wrongly, before any test needs it."""
    from invoctl_server.store._sql import Q

    assert len(Q) > 30
    for name, sql in Q.items():
        assert sql and not sql.startswith("--"), name
        await db.prepare(sql)
