"""The bulk commands: when an operation goes bulk, the selector its flags build, usage
errors, exit codes, and how counts, progress, summaries and tables read."""

from __future__ import annotations

import datetime as dt

import pytest

from invoctl.cli import _bulk
from invoctl.cli import _bulk_format as bfmt
from invoctl.cli.main import build_parser, main
from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import invocation_pb2
from tests.unit._cli import NOW, render, ts

ID = "inv_" + "A" * 22
COMPLETED = bpb.BULK_OPERATION_STATE_COMPLETED
STOPPED = bpb.BULK_OPERATION_STATE_STOPPED


def _args(*argv: str):
    return build_parser().parse_args(["invocations", *argv])


# -- parsing --------------------------------------------------------------------------


def test_every_selector_flag_reaches_the_selector() -> None:
    args = _args(
        "cancel", "CartObject/cart55", "--service", "CartObject", "--handler", "add",
        "--key", "cart55", "--state", "suspended", "paused", "--state", "backing-off",
        "--deployment-id", "dp_7", "--created-before", "2025-03-01T12:00:00",
        "--created-after", "2025-03-01T11:00:00+02:00", "--id", ID, "--id", ID,
        "--max-per-second", "2.5", "--yes", "--dry-run", "--reason", "r", "--request-id", "q",
    )  # fmt: skip
    where = _bulk.selector_of(args)
    assert (where.query, where.service, where.handler, where.key) == (
        "CartObject/cart55", "CartObject", "add", "cart55",
    )  # fmt: skip
    assert list(where.states) == [
        invocation_pb2.INVOCATION_STATE_SUSPENDED,
        invocation_pb2.INVOCATION_STATE_PAUSED,
        invocation_pb2.INVOCATION_STATE_BACKING_OFF,
    ]
    assert where.deployment_id == "dp_7"
    assert list(where.invocation_ids) == [ID, ID]
    # A time without a zone is UTC; one with a zone keeps it.
    assert where.created_before.ToDatetime(tzinfo=dt.UTC) == NOW
    assert where.created_after.ToDatetime(tzinfo=dt.UTC) == NOW - dt.timedelta(hours=3)
    assert (args.max_per_second, args.yes, args.dry_run) == (2.5, True, True)
    assert (args.reason, args.request_id) == ("r", "q")


def test_selector_flags_alone_need_no_query() -> None:
    args = _args("kill", "--service", "Greeter")
    assert args.invocation_id is None
    assert _bulk.is_bulk(args)
    assert _bulk.selector_of(args).query == ""
    assert _bulk.usage_problem(args) is None


def test_resume_keeps_deployment_for_the_target_and_filters_by_deployment_id() -> None:
    args = _args("resume", "Lab", "--deployment", "latest", "--deployment-id", "dp_1")
    assert (args.deployment, args.deployment_id) == ("latest", "dp_1")
    assert _bulk.selector_of(args).deployment_id == "dp_1"


@pytest.mark.parametrize(
    ("argv", "bulk"),
    [
        (["cancel", ID], False),  # one ID alone: the unary RPC, as before
        (["cancel", ID, "--yes", "--reason", "r"], False),
        (["resume", ID, "--deployment", "latest"], False),
        (["cancel", "inv_123"], False),  # malformed: the unary RPC says MALFORMED_ID
        (["purge-journal", "Lab"], False),  # no bulk form
        (["cancel", "Lab"], True),
        (["cancel", "Lab/nap"], True),
        (["cancel", ID, "--state", "suspended"], True),
        (["cancel", ID, "--dry-run"], True),  # a dry run must never act
        (["cancel", ID, "--max-per-second", "1"], True),
        (["cancel", "--id", ID], True),
    ],
)
def test_when_an_operation_goes_bulk(argv: list[str], bulk: bool) -> None:
    assert _bulk.is_bulk(_args(*argv)) is bulk


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invocations", "cancel"], "required"),
        (["invocations", "restart-as-new", "Lab", "--from", "2"], "--from applies to one"),
        (["invocations", "restart-as-new", ID, "--from", "2", "--state", "completed"], "--from"),
        (["invocations", "purge-journal", "Lab", "--state", "completed"], "unrecognized"),
        (["invocations", "purge-journal"], "required"),
        (["invocations", "cancel", "Lab", "--created-before", "yesterday"], "ISO 8601"),
        (["invocations", "cancel", "Lab", "--max-per-second", "0"], "number of invocations > 0"),
        (["invocations", "cancel", "Lab", "--max-per-second", "nan"], "> 0"),
        (["invocations", "cancel", "Lab", "--state", "asleep"], "unknown state 'asleep'"),
        (["invocations", "kill", "Lab", "--deployment", "latest"], "unrecognized"),
        (["bulk", "ls", "--state", "dry-run"], "choose from running, completed, stopped"),
        (["bulk", "ls", "--limit", "0"], "positive integer"),
        (["bulk", "watch"], "required"),
        (["bulk", "stop"], "required"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_restart_from_0_is_what_a_bulk_restart_does() -> None:
    assert _bulk.usage_problem(_args("restart-as-new", "Lab", "--from", "0")) is None


def test_bulk_ls_arguments() -> None:
    args = build_parser().parse_args(["bulk", "ls", "--state", "running", "STOPPED"])
    assert args.state == [bpb.BULK_OPERATION_STATE_RUNNING, STOPPED]
    assert args.limit == 50
    assert build_parser().parse_args(["bulk", "watch", "bulk_1"]).bulk_id == "bulk_1"


@pytest.mark.parametrize(
    ("state", "failed", "code"),
    [(COMPLETED, 0, 0), (COMPLETED, 1, 1), (STOPPED, 0, 1), (STOPPED, 3, 1)],
)
def test_exit_code(state: int, failed: int, code: int) -> None:
    assert _bulk.exit_code(bpb.BulkOperationProgress(state=state, failed=failed)) == code


# -- rendering ------------------------------------------------------------------------


def _progress(**fields: object) -> bpb.BulkOperationProgress:
    values: dict[str, object] = dict(
        bulk_operation_id="bulk_1",
        kind=bpb.BULK_OPERATION_KIND_CANCEL,
        state=COMPLETED,
        final=True,
        matched=1234,
        processed=1234,
        succeeded=1200,
        skipped=30,
        failed=4,
        rate=50.0,
        created_at=ts(-30),
        updated_at=ts(-5.3),
        completed_at=ts(-5.3),
    )
    values.update(fields)
    return bpb.BulkOperationProgress(**values)


def test_names_of_kinds_and_states() -> None:
    assert bfmt.bulk_kind_name(bpb.BULK_OPERATION_KIND_RESTART_AS_NEW) == "restart-as-new"
    assert bfmt.bulk_state_name(bpb.BULK_OPERATION_STATE_DRY_RUN) == "dry-run"
    assert bfmt.bulk_state_name(99) == "unknown(99)"


@pytest.mark.parametrize(
    ("command", "matched", "text"),
    [
        ("cancel", 1234, "Cancel 1,234 invocations?"),
        ("kill", 1, "Kill 1 invocation?"),
        ("restart-as-new", 3, "Restart 3 invocations as new?"),
    ],
)
def test_question(command: str, matched: int, text: str) -> None:
    assert bfmt.question(command, matched) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0s"), (8.24, "8.2s"), (125, "2m05s"), (3720, "1h02m"), (-1, "0.0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert bfmt.format_duration(seconds) == text


def test_matches_shows_the_count_and_a_few_ids() -> None:
    ids = [f"inv_{n}" for n in range(20)]
    text = bfmt.matches(bpb.BulkOperationProgress(matched=1234, sample_invocation_ids=ids), 3)
    assert text.plain == (
        "1,234 invocations match, for example:\n  inv_0\n  inv_1\n  inv_2\n  … and 1,231 more"
    )
    one = bfmt.matches(bpb.BulkOperationProgress(matched=1, sample_invocation_ids=ids[:1]))
    assert one.plain == "1 invocation matches:\n  inv_0"
    assert bfmt.matches(bpb.BulkOperationProgress()).plain == "no invocations match"


def test_progress_fields_and_eta() -> None:
    running = _progress(state=bpb.BULK_OPERATION_STATE_RUNNING, final=False, processed=234)
    assert bfmt.progress_fields(running) == {
        "description": "cancel",
        "completed": 234,
        "total": 1234,
        "rate": "50.0/s",
        "eta": "ETA 20.0s",  # 1000 left at 50 a second
    }
    assert bfmt.eta(_progress()) == ""  # done
    assert bfmt.eta(_progress(final=False, processed=0, rate=0)) == ""  # no rate yet


def test_summary_line() -> None:
    assert bfmt.summary(_progress()).plain == (
        "bulk_1 cancel completed: 1,200 succeeded, 30 skipped, 4 failed "
        "(1,234 of 1,234 in 24.7s, 50.0/s)"
    )
    stopped = _progress(state=STOPPED, processed=10, succeeded=10, skipped=0, failed=0)
    assert bfmt.summary(stopped).plain.startswith("bulk_1 cancel stopped: 10 succeeded")
    assert "(10 of 1,234 in 24.7s" in bfmt.summary(stopped).plain


def test_failures_table() -> None:
    progress = _progress(
        failures=[
            bpb.BulkFailure(
                invocation_id=ID,
                reason="DEPLOYMENT_DOES_NOT_SERVE",
                message="deployment dp_1 does not serve [Lab]/nap",
            ),
            bpb.BulkFailure(reason="DEPLOYMENT_NOT_FOUND", message="deployment dp_2 not found"),
        ]
    )
    text = render(bfmt.failures_table(progress))
    for expected in (
        "failures",
        "INVOCATION",
        "REASON",
        "MESSAGE",
        ID,
        "DEPLOYMENT_DOES_NOT_SERVE",
        "does not serve [Lab]/nap",  # user text is never read as rich markup
        "-  ",  # a failure without an invocation
    ):
        assert expected in text


def test_bulk_table() -> None:
    operations = [
        _progress(reason="[bad] deploy"),
        _progress(
            bulk_operation_id="bulk_2",
            kind=bpb.BULK_OPERATION_KIND_PURGE,
            state=bpb.BULK_OPERATION_STATE_RUNNING,
            processed=10,
            failed=0,
            created_at=ts(-120),
        ),
    ]
    lines = render(bfmt.bulk_table(operations, NOW)).splitlines()
    for column in ("ID", "KIND", "STATE", "PROCESSED", "SUCCEEDED", "SKIPPED", "FAILED"):
        assert column in lines[0]
    assert "CREATED" in lines[0] and "REASON" in lines[0]
    assert lines[1].split()[:7] == [
        "bulk_1", "cancel", "completed", "1,234/1,234", "1,200", "30", "4",
    ]  # fmt: skip
    assert "(30s ago)" in lines[1] and "[bad] deploy" in lines[1]
    assert lines[2].split()[:4] == ["bulk_2", "purge", "running", "10/1,234"]
    assert "(2m ago)" in lines[2]
