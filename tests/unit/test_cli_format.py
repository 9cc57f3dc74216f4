"""Rendering of invocations, journals and deployments for people and for scripts."""

import datetime as dt
import io

import pytest
from google.protobuf import timestamp_pb2
from rich.console import Console

from invoctl.cli import _format as fmt
from invoctl.v1 import control_pb2, invocation_pb2, workers_pb2
from tests.unit._cli import NOW, render, ts


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "now"),
        (-0.5, "now"),
        (-5, "5s ago"),
        (-185, "3m ago"),
        (-7300, "2h ago"),
        (-3 * 86400 - 5, "3d ago"),
        (42, "in 42s"),
    ],
)
def test_format_relative(seconds: float, text: str) -> None:
    assert fmt.format_relative(dt.timedelta(seconds=seconds)) == text


def test_format_time_is_absolute_utc_and_relative() -> None:
    assert fmt.format_time(ts(-180), NOW) == "2025-03-01 11:57:00Z (3m ago)"
    assert fmt.format_time(timestamp_pb2.Timestamp(), NOW) == ""


def test_state_text_is_lower_case_with_outcome() -> None:
    backing_off = invocation_pb2.Invocation(state=invocation_pb2.INVOCATION_STATE_BACKING_OFF)
    killed = invocation_pb2.Invocation(
        state=invocation_pb2.INVOCATION_STATE_COMPLETED, outcome=invocation_pb2.OUTCOME_KILLED
    )
    assert fmt.state_text(backing_off).plain == "backing-off"
    assert fmt.state_text(killed).plain == "completed (killed)"


def _invocation() -> invocation_pb2.Invocation:
    return invocation_pb2.Invocation(
        id="inv_abc",
        service="CartObject",
        key="cart55",
        handler="add",
        target="CartObject/cart55/add",
        state=invocation_pb2.INVOCATION_STATE_BACKING_OFF,
        deployment_id="dp_1",
        attempt_count=3,
        input='{"sku": 1}',
        last_failure=invocation_pb2.Failure(code="RETRYABLE", message="[db] timeout"),
        next_retry_at=ts(30),
        created_at=ts(-120),
        modified_at=ts(-2),
        headers={"x-tenant": "acme"},
    )


def test_invocations_table() -> None:
    text = render(fmt.invocations_table([_invocation()], NOW))
    for expected in (
        "inv_abc",
        "CartObject/cart55/add",
        "backing-off",
        "dp_1",
        "2025-03-01 11:58:00Z (2m ago)",
    ):
        assert expected in text


def test_invocation_details_show_set_fields_and_keep_brackets() -> None:
    text = render(fmt.invocation_details(_invocation(), NOW))
    assert "[RETRYABLE] [db] timeout" in text  # user text is never read as rich markup
    assert "in 30s" in text
    assert "header x-tenant" in text
    assert "restarted from" not in text  # unset fields are left out


def _journal() -> control_pb2.GetJournalResponse:
    return control_pb2.GetJournalResponse(
        invocation=_invocation(),
        entries=[
            invocation_pb2.JournalEntry(
                index=0,
                kind=invocation_pb2.JOURNAL_ENTRY_KIND_CALL,
                completed=True,
                target=invocation_pb2.Target(service="Stock", handler="reserve"),
                argument='{"sku": 1}',
                callee_invocation_id="inv_callee",
                value="true",
            ),
            invocation_pb2.JournalEntry(
                index=1,
                kind=invocation_pb2.JOURNAL_ENTRY_KIND_SLEEP,
                wake_at=ts(60),
            ),
        ],
        transitions=[
            invocation_pb2.Transition(
                to_state=invocation_pb2.INVOCATION_STATE_READY,
                event="accepted",
                actor="server",
                at=ts(-120),
            ),
            invocation_pb2.Transition(
                from_state=invocation_pb2.INVOCATION_STATE_RUNNING,
                to_state=invocation_pb2.INVOCATION_STATE_BACKING_OFF,
                event="failed",
                actor="worker-1",
                attempt=3,
                detail="[db] timeout",
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                at=ts(-2),
            ),
        ],
    )


def test_entries_table() -> None:
    text = render(fmt.entries_table(_journal(), NOW))
    assert "Stock/reserve -> inv_callee" in text
    assert "= true" in text
    assert "sleep" in text
    assert "wakes 2025-03-01 12:01:00Z (in 1m)" in text


def test_transitions_table() -> None:
    text = render(fmt.transitions_table(_journal(), NOW))
    assert "backing-off" in text
    assert "[db] timeout" in text
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in text


def test_deployments_table() -> None:
    deployment = workers_pb2.Deployment(
        id="dp_1",
        created_at=ts(-60),
        services=[
            workers_pb2.ServiceDefinition(
                name="CartObject",
                kind=workers_pb2.SERVICE_KIND_VIRTUAL_OBJECT,
                handlers=[
                    workers_pb2.HandlerDefinition(name="add"),
                    workers_pb2.HandlerDefinition(name="get", shared=True),
                ],
            )
        ],
    )
    text = render(fmt.deployments_table([deployment], NOW))
    assert "CartObject [virtual-object]: add, get (shared)" in text
    assert "none ever" in text  # no worker ever connected


def test_deployments_table_shows_identity_workers_and_pinned_invocations() -> None:
    served = workers_pb2.Deployment(
        id="dp_1",
        identity="checkout@2026-11-30",
        created_at=ts(-600),
        pinned_invocations=42,
        sessions=[
            workers_pb2.WorkerSession(id="sess_1", worker_name="w1", server="s1"),
            workers_pb2.WorkerSession(id="sess_2", worker_name="w2", server="s2"),
        ],
    )
    drained = workers_pb2.Deployment(
        id="dp_0", identity="checkout@2026-11-01", last_seen_at=ts(-120)
    )
    rows = render(fmt.deployments_table([served, drained], NOW)).splitlines()
    assert rows[0].split() == ["ID", "IDENTITY", "CREATED", "SERVICES", "WORKERS", "PINNED"]
    assert "checkout@2026-11-30" in rows[1] and "2: w1 @ s1, w2 @ s2" in rows[1]
    assert rows[1].rstrip().endswith("42")
    assert "none since 2025-03-01 11:58:00Z (2m ago)" in rows[2]
    assert rows[2].rstrip().endswith("0")


def test_invocation_details_say_when_no_worker_can_run_it() -> None:
    waiting = invocation_pb2.Invocation(
        id="inv_1",
        state=invocation_pb2.INVOCATION_STATE_READY,
        deployment_id="dp_1",
        no_worker=invocation_pb2.NoWorker(deployment_id="dp_1", last_seen_at=ts(-300)),
    )
    rows = [" ".join(r.split()) for r in render(fmt.invocation_details(waiting, NOW)).splitlines()]
    assert "waiting no worker of dp_1 connected since 2025-03-01 11:55:00Z (5m ago)" in rows
    never = invocation_pb2.Invocation(
        id="inv_2", no_worker=invocation_pb2.NoWorker(deployment_id="dp_2")
    )
    assert "no worker of dp_2 connected (none ever was)" in render(
        fmt.invocation_details(never, NOW)
    )
    assert "waiting" not in render(fmt.invocation_details(_invocation(), NOW))


def test_message_to_json_is_canonical_and_complete() -> None:
    doc = fmt.message_to_json(_invocation())
    assert doc["state"] == "INVOCATION_STATE_BACKING_OFF"
    assert doc["attemptCount"] == 3
    assert doc["key"] == "cart55"
    assert doc["callerId"] == ""  # defaults are printed, so scripts need no fallbacks


def test_audit_table_marks_an_unknown_caller() -> None:
    # A request refused as UNAUTHENTICATED has no identity in the audit log.
    entry = control_pb2.AuditEntry(
        id=1, at=ts(-5), identity="", operation="KillInvocation",
        invocation_id="inv_" + "A" * 22, result="UNAUTHENTICATED",
    )  # fmt: skip
    [row] = [line for line in render(fmt.audit_table([entry], NOW)).splitlines() if "Kill" in line]
    assert row.split()[4:6] == ["-", "KillInvocation"], row


@pytest.mark.parametrize("width", [250, 120, 100, 80, 60, 40])
def test_invocations_table_fits_the_width_and_never_cuts_an_id(width: int) -> None:
    inv = _invocation()
    inv.id = "inv_0SbGBdTYHK2jVz6WXxDlqf"
    inv.deployment_id = "dp_0SbGBdTYHK2jVz6WXxDlqg"
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(fmt.invocations_table([inv, inv], NOW, width), crop=False)
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 3  # a header and one line per row
    assert all(line.startswith(inv.id) for line in lines[1:])
    if width >= 60:
        assert all(len(line.rstrip()) <= width for line in lines)
    if width >= 250:
        assert "dp_0SbGBdTYHK2jVz6WXxDlqg" in lines[1] and "(2m ago)" in lines[1]


@pytest.mark.parametrize("width", [250, 100, 80, 60])
def test_audit_and_bulk_tables_fit_the_width_and_never_cut_an_id(width: int) -> None:
    from invoctl.cli import _bulk_format as bfmt
    from invoctl.v1 import bulk_pb2

    old, new = "inv_0SbGBdTYHK2jVz6WXxDlqf", "inv_0SbGBdTYHK2jVz6WXxDlqg"
    restart = control_pb2.AuditEntry(
        at=ts(-60),
        identity="operator@example.com",
        operation="RestartInvocationAsNew",
        invocation_id=old,
        new_invocation_id=new,
        reason="bad deploy of the checkout service",
        result="OK",
    )
    bulk = bulk_pb2.BulkOperationProgress(
        bulk_operation_id="bulk_0SbGBdTYHK2jVz6WXxDlqh",
        kind=bulk_pb2.BULK_OPERATION_KIND_RESTART_AS_NEW,
        state=bulk_pb2.BULK_OPERATION_STATE_RUNNING,
        matched=12_345,
        processed=1_234,
        succeeded=1_200,
        skipped=30,
        failed=4,
        created_at=ts(-600),
        reason="bad deploy of the checkout service",
    )
    for table, ids in (
        (fmt.audit_table([restart], NOW, width), (old, new)),
        (bfmt.bulk_table([bulk], NOW, width), (bulk.bulk_operation_id,)),
    ):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(table, crop=False)
        text = console.file.getvalue()
        assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
        for inv_id in ids:
            assert inv_id in text, text
