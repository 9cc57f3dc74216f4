"""The bulk forms of `invoctl invocations cancel|kill|...` and `invoctl bulk ls|watch|stop`,
run as a subprocess against a real server, as an operator types them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import sys

from invoctl.client import Client, selector
from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e.test_bulk import naps, states

BULK_ID = re.compile(r"bulk_[-0-9A-Za-z_]{22}")


async def spawn(address: str, *args: str, stdin: int = asyncio.subprocess.DEVNULL):
    """The CLI as a child process; its stdin is not a terminal unless a pty is passed."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "invoctl.cli", "--server", address, *args,
        stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def invoctl(address: str, *args: str, answer: bytes | None = None) -> tuple[int, str, str]:
    """Run the CLI to its end. With `answer`, stdin is a pseudo-terminal it is typed at."""
    if answer is None:
        proc = await spawn(address, *args)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode(), err.decode()
    master, slave = os.openpty()
    try:
        proc = await spawn(address, *args, stdin=slave)
        os.close(slave)
        os.write(master, answer)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.close(master)
    return proc.returncode, out.decode(), err.decode()


async def bulk_count(db) -> int:
    return await db.fetchval("SELECT count(*) FROM bulk_operations")


async def test_query_cancel_with_yes_cancels_every_match(lab, client):
    suspended = await naps(lab, 5)
    done = await lab.make(pb.INVOCATION_STATE_COMPLETED)  # Lab/echo: nothing to cancel
    args = ("invocations", "cancel", "Lab", "--yes", "--reason", "bad deploy")
    code, out, err = await invoctl(lab.server, *args)
    assert code == 0, err
    assert "6 invocations match: it would act on 5 and skip 1" in out
    assert re.search(r"^  completed +1  skip all$", out, re.M), out
    [bulk_id] = set(BULK_ID.findall(out))
    assert f"started {bulk_id}: cancel of 6 invocations" in err
    assert f"{bulk_id} cancel completed: 5 succeeded, 1 skipped, 0 failed (6 of 6 in" in out
    assert "failures" not in out
    for inv_id in suspended:
        inv = await client.attach(inv_id)
        assert (inv.state, inv.outcome) == (pb.INVOCATION_STATE_COMPLETED, pb.OUTCOME_CANCELLED)
    assert (await client.get_invocation(done)).outcome == pb.OUTCOME_SUCCEEDED
    [op], _ = await client.list_bulk_operations()
    assert (op.bulk_operation_id, op.reason, op.selector.query) == (bulk_id, "bad deploy", "Lab")


async def test_dry_run_prints_the_count_and_a_sample_and_changes_nothing(lab, client, db):
    ids = await naps(lab, 7)
    code, out, err = await invoctl(lab.server, "invocations", "kill", "Lab/nap", "--dry-run")
    assert code == 0, err
    assert "7 invocations match: it would act on 7 and skip 0" in out
    assert re.search(r"^  suspended +7  act on all$", out, re.M), out
    assert "for example:" in out
    shown = [line.strip() for line in out.splitlines() if line.startswith("  inv_")]
    assert shown == sorted(ids)[:5]
    assert "and 2 more" in out
    assert "dry run: nothing changed" in err

    args = ("--json", "invocations", "kill", "Lab/nap", "--dry-run", "--yes")
    code, out, _ = await invoctl(lab.server, *args)
    assert code == 0
    document = json.loads(out)
    assert document["state"] == "BULK_OPERATION_STATE_DRY_RUN"
    assert document["matched"] == "7"  # int64: a string in proto3 JSON
    assert document["sampleInvocationIds"] == sorted(ids)

    # An ID alone with --dry-run is a bulk dry run too: it must never act.
    code, out, _ = await invoctl(lab.server, "invocations", "kill", ids[0], "--dry-run")
    assert code == 0 and "1 invocation matches: it would act on 1" in out
    assert await bulk_count(db) == 0
    assert await states(client, ids) == {pb.INVOCATION_STATE_SUSPENDED}


async def test_without_a_terminal_or_yes_it_refuses_and_starts_nothing(lab, client, db):
    ids = await naps(lab, 3)
    code, out, err = await invoctl(lab.server, "invocations", "cancel", "Lab")
    assert code == 2
    assert "3 invocations match" in out
    [line] = err.strip().splitlines()
    assert line.startswith("error: refusing to cancel 3 invocations without confirmation")
    assert "--yes" in line
    assert await bulk_count(db) == 0
    assert await states(client, ids) == {pb.INVOCATION_STATE_SUSPENDED}


async def test_on_a_terminal_it_asks_and_only_yes_goes_ahead(lab, client, db):
    ids = await naps(lab, 2)
    code, _, err = await invoctl(lab.server, "invocations", "kill", "Lab/nap", answer=b"n\n")
    assert code == 1
    assert "Kill 2 invocations? [y/N]" in err and "nothing started" in err
    assert await bulk_count(db) == 0

    code, out, err = await invoctl(lab.server, "invocations", "kill", "Lab/nap", answer=b"y\n")
    assert code == 0, err
    assert "Kill 2 invocations? [y/N]" in err
    assert "kill completed: 2 succeeded, 0 skipped, 0 failed" in out
    for inv_id in ids:
        assert (await client.get_invocation(inv_id)).outcome == pb.OUTCOME_KILLED


async def test_no_match_is_not_an_error(lab, db):
    await naps(lab, 1)
    code, out, err = await invoctl(
        lab.server, "invocations", "purge", "Lab", "--state", "completed"
    )
    assert (code, out) == (0, "")
    assert "no invocations match" in err
    assert await bulk_count(db) == 0


async def test_structured_flags_narrow_the_query(lab, client):
    suspended = await naps(lab, 2)
    scheduled = await lab.make(pb.INVOCATION_STATE_SCHEDULED)  # Lab/echo, an hour from now
    completed = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    holder = await lab.make(pb.INVOCATION_STATE_RUNNING)  # Lab/block

    async def matched(*argv: str) -> int:
        code, out, err = await invoctl(
            lab.server, "--json", "invocations", "cancel", *argv, "--dry-run"
        )
        assert code == 0, err
        return int(json.loads(out)["matched"])

    now = dt.datetime.now(dt.UTC)
    hour_ago = (now - dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()  # naive: UTC
    assert await matched("Lab") == 5
    assert await matched("Lab/nap") == 2
    assert await matched("Lab", "--state", "suspended", "running") == 3
    assert await matched("--service", "Lab", "--handler", "echo") == 2
    assert await matched("Lab", "--created-after", hour_ago) == 5
    assert await matched("Lab", "--created-before", hour_ago) == 0
    assert await matched("--id", scheduled, "--id", completed) == 2
    assert await matched(holder) == 1
    deployment = (await client.get_invocation(holder)).deployment_id
    assert await matched("--deployment-id", deployment, "--handler", "block") == 1

    code, out, err = await invoctl(
        lab.server, "invocations", "cancel", "Lab", "--state", "suspended", "--yes"
    )
    assert code == 0, err
    assert "2 invocations match" in out
    assert "cancel completed: 2 succeeded, 0 skipped, 0 failed" in out
    for inv_id in suspended:
        assert (await client.attach(inv_id)).outcome == pb.OUTCOME_CANCELLED
    assert (await client.get_invocation(scheduled)).state == pb.INVOCATION_STATE_SCHEDULED


async def test_restate_query_strings_of_an_object(lab, client):
    waiting = await lab.make(pb.INVOCATION_STATE_PENDING)  # LabKey/k1/hold behind its holder
    assert (await client.get_invocation(waiting)).target == "LabKey/k1/hold"
    for query, expected in (("LabKey/k1", 2), ("LabKey/k1/hold", 2), ("LabKey/k2", 0)):
        code, out, err = await invoctl(
            lab.server, "--json", "invocations", "kill", query, "--dry-run"
        )
        assert code == 0, err
        assert json.loads(out)["matched"] == str(expected), query


async def test_json_prints_one_final_document(lab, client):
    ids = await naps(lab, 4)
    code, out, err = await invoctl(lab.server, "--json", "invocations", "pause", "Lab/nap", "--yes")
    # Suspended is not a state pause applies to: skipped, which is not a failure.
    assert code == 0, err
    document = json.loads(out)  # the whole of stdout is one document
    assert document["final"] is True
    assert document["state"] == "BULK_OPERATION_STATE_COMPLETED"
    assert document["kind"] == "BULK_OPERATION_KIND_PAUSE"
    assert (document["matched"], document["skipped"], document["failed"]) == ("4", "4", "0")
    assert BULK_ID.fullmatch(document["bulkOperationId"])
    assert await states(client, ids) == {pb.INVOCATION_STATE_SUSPENDED}


async def test_failures_are_listed_and_the_exit_code_is_1(lab, client):
    ids = await naps(lab, 2)
    await lab.make(pb.INVOCATION_STATE_COMPLETED)  # resume does not apply: skipped
    [idle] = await client.list_deployments(service="LabIdle")  # serves no Lab handler
    args = ("invocations", "resume", "Lab", "--deployment", idle.id, "--yes")
    code, out, err = await invoctl(lab.server, *args)
    assert code == 1, err
    assert "resume completed: 0 succeeded, 1 skipped, 2 failed" in out
    table = out[out.index("failures") :]
    assert "INVOCATION" in table and "REASON" in table and "MESSAGE" in table
    for inv_id in ids:
        [row] = [line for line in table.splitlines() if inv_id in line]
        assert "DEPLOYMENT_DOES_NOT_SERVE" in row and "does not serve Lab/nap" in row
    assert await states(client, ids) == {pb.INVOCATION_STATE_SUSPENDED}


async def test_bulk_ls_watch_and_stop(lab, client):
    await naps(lab, 20)
    # A finished operation, started from the CLI...
    code, out, _ = await invoctl(lab.server, "invocations", "pause", "Lab/nap", "--yes")
    assert code == 0
    [finished] = set(BULK_ID.findall(out))
    # ...and a slow one, started by the client, which leaves it running.
    # At one a second it is still running when the CLI looks, however slow the machine.
    stream = client.bulk_operation("kill", selector("Lab/nap"), max_per_second=1)
    running = (await anext(stream)).bulk_operation_id
    await stream.aclose()

    code, out, err = await invoctl(lab.server, "bulk", "ls")
    assert code == 0, err
    for column in ("ID", "KIND", "STATE", "PROCESSED", "SUCCEEDED", "SKIPPED", "FAILED"):
        assert column in out
    [row] = [line for line in out.splitlines() if finished in line]
    assert re.search(r"pause\s+completed\s+20/20\s+0\s+20\s+0", row), row
    [row] = [line for line in out.splitlines() if running in line]
    assert re.search(r"kill\s+running\s+\d+/20", row), row

    code, out, _ = await invoctl(lab.server, "--json", "bulk", "ls", "--state", "running")
    assert code == 0
    assert [o["bulkOperationId"] for o in json.loads(out)["bulkOperations"]] == [running]
    code, out, _ = await invoctl(lab.server, "bulk", "ls", "--limit", "1")
    assert running in out and finished not in out  # newest first

    code, out, err = await invoctl(lab.server, "bulk", "watch", finished)
    assert code == 0, err
    assert f"{finished} pause completed: 0 succeeded, 20 skipped, 0 failed (20 of 20" in out

    code, out, err = await invoctl(lab.server, "bulk", "stop", running)
    assert code == 0, err
    assert f"{running} kill stopped:" in out
    stopped = await _snapshot(client, running)
    assert stopped.state == bpb.BULK_OPERATION_STATE_STOPPED and stopped.processed < 20

    code, out, _ = await invoctl(lab.server, "bulk", "watch", running)
    assert code == 1  # stopped before the end
    assert f"{running} kill stopped:" in out

    code, out, _ = await invoctl(lab.server, "--json", "bulk", "stop", finished)
    assert code == 0
    assert json.loads(out)["state"] == "BULK_OPERATION_STATE_COMPLETED"

    code, out, err = await invoctl(lab.server, "bulk", "watch", "bulk_" + "A" * 22)
    assert (code, out) == (1, "")
    assert err.startswith("error: NOT_FOUND (BULK_OPERATION_NOT_FOUND)")


async def test_ctrl_c_detaches_and_the_operation_goes_on(lab, client):
    ids = await naps(lab, 40)  # 8 s at 5 a second: it outlives the CLI
    args = ("invocations", "kill", "Lab/nap", "--max-per-second", "5", "--yes")
    proc = await spawn(lab.server, *args)
    try:
        assert proc.stderr is not None
        first = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert first.startswith(b"started bulk_"), first
        proc.send_signal(signal.SIGINT)
        out, rest = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    err = (first + rest).decode()
    assert proc.returncode == 130, err
    [bulk_id] = set(BULK_ID.findall(err))
    # The command to re-attach names the server this one used.
    watch = f"invoctl --server {lab.server} bulk watch {bulk_id}"
    assert f"detached: {bulk_id} keeps running; re-attach with: {watch}" in err
    assert "Traceback" not in err and b"completed" not in out

    watched = [p async for p in client.watch_bulk_operation(bulk_id)]
    assert not watched[0].final  # still running after the CLI left
    last = watched[-1]
    assert last.state == bpb.BULK_OPERATION_STATE_COMPLETED
    assert (last.processed, last.succeeded) == (40, 40)
    for inv_id in ids:
        await wait_state(client, inv_id, pb.INVOCATION_STATE_COMPLETED)


async def test_the_same_request_id_re_attaches_and_says_so(lab, client):
    await naps(lab, 20)  # 2 s at 10 a second: the second command finds it running
    args = ("invocations", "kill", "Lab/nap", "--max-per-second", "10", "--yes")
    first = await spawn(lab.server, *args, "--request-id", "r-1")
    try:
        assert first.stderr is not None
        line = await asyncio.wait_for(first.stderr.readline(), 30)
        assert line.startswith(b"started bulk_"), line
        code, _, err = await invoctl(lab.server, *args, "--request-id", "r-1")
        await asyncio.wait_for(first.communicate(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            first.kill()
    assert code == 0, err
    [bulk_id] = set(BULK_ID.findall(line.decode()))
    assert f"re-attached to {bulk_id}: kill of" in err
    assert "started earlier by request ID 'r-1'; nothing new was started" in err
    assert "started bulk_" not in err
    operations, _ = await client.list_bulk_operations()
    assert [o.bulk_operation_id for o in operations] == [bulk_id]
    # The field the CLI reads: set on every snapshot of a re-attached stream only.
    again = client.bulk_operation("kill", selector("Lab/nap"), request_id="r-1")
    assert {(p.bulk_operation_id, p.reattached) async for p in again} == {(bulk_id, True)}
    fresh = client.bulk_operation("kill", selector("Lab/nap"), request_id="r-2")
    assert {p.reattached async for p in fresh} == {False}


async def test_ctrl_c_at_the_question_starts_nothing(lab, client, db):
    ids = await naps(lab, 2)
    master, slave = os.openpty()
    try:
        proc = await spawn(lab.server, "invocations", "cancel", "Lab", stdin=slave)
        os.close(slave)
        assert proc.stderr is not None
        prompt = await asyncio.wait_for(proc.stderr.readuntil(b"[y/N] "), 30)
        proc.send_signal(signal.SIGINT)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        os.close(master)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert prompt.endswith(b"Cancel 2 invocations? [y/N] ")
    assert proc.returncode == 130
    assert b"Traceback" not in rest
    assert await bulk_count(db) == 0
    assert await states(client, ids) == {pb.INVOCATION_STATE_SUSPENDED}


async def _snapshot(client: Client, bulk_id: str) -> bpb.BulkOperationProgress:
    operations, _ = await client.list_bulk_operations()
    [op] = [o for o in operations if o.bulk_operation_id == bulk_id]
    return op
