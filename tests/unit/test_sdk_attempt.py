"""What an attempt sends for what a handler does, against an in-memory channel."""

from typing import Any

import pytest

from invoctl.sdk import (
    Context,
    InvocationCancelled,
    NonDeterminismError,
    ObjectContext,
    Service,
    TerminalError,
    VirtualObject,
)
from invoctl.sdk._attempt import run_attempt
from invoctl.sdk._errors import AttemptAborted
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2

RUN = pb.JOURNAL_ENTRY_KIND_RUN
SLEEP = pb.JOURNAL_ENTRY_KIND_SLEEP
CALL = pb.JOURNAL_ENTRY_KIND_CALL
SEND = pb.JOURNAL_ENTRY_KIND_SEND
GET = pb.JOURNAL_ENTRY_KIND_GET_STATE
SET = pb.JOURNAL_ENTRY_KIND_SET_STATE
CLEAR = pb.JOURNAL_ENTRY_KIND_CLEAR_STATE


def copy(entry: pb.JournalEntry, **changes: Any) -> pb.JournalEntry:
    result = pb.JournalEntry()
    result.CopyFrom(entry)
    for name, value in changes.items():
        setattr(result, name, value)
    return result


class FakeChannel:
    """Records what the attempt sends and acks it the way the server does."""

    def __init__(self, state: dict[str, str] | None = None, abort_on: str | None = None) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.state = dict(state or {})
        self.abort_on = abort_on
        self.cancelled = False

    def _record(self, kind: str, payload: Any) -> None:
        self.sent.append((kind, payload))
        if kind == self.abort_on:
            raise AttemptAborted("STALE_ATTEMPT", "a newer attempt runs")

    async def append(self, entries: list[pb.JournalEntry]) -> list[pb.JournalEntry]:
        self._record("append", [copy(e) for e in entries])
        stored = []
        for sent in entries:
            entry = copy(sent)
            if entry.kind == GET:
                entry.value = self.state.get(entry.name, "null")
            elif entry.kind == SET:
                self.state[entry.name] = entry.value
            elif entry.kind == SLEEP:
                entry.completed = entry.delay_ms == 0
            elif entry.kind == CALL:
                entry.callee_invocation_id = "inv_callee"
            stored.append(entry)
        return stored

    async def suspend(self, waiting_on: int) -> None:
        self._record("suspend", waiting_on)

    async def complete(
        self, *, output: str | None = None, failure: pb.Failure | None = None
    ) -> None:
        self._record("complete", failure if failure is not None else output)

    async def fail(self, failure: pb.Failure) -> None:
        self._record("fail", failure)

    def check_running(self) -> None:
        pass

    def cancel_requested(self) -> bool:
        return self.cancelled

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.sent]


async def attempt(
    svc: Service | VirtualObject,
    handler: str,
    input: str = "",
    journal: list[pb.JournalEntry] | None = None,
    channel: FakeChannel | None = None,
    key: str = "",
    cancel_at: int | None = None,
) -> FakeChannel:
    channel = channel or FakeChannel()
    start = workers_pb2.AttemptStart(
        invocation_id="inv_1",
        attempt=2,
        target=pb.Target(service=svc.name, handler=handler, key=key),
        input=input,
        headers={"h": "v"},
        journal=journal or [],
        cancel_at_entry=cancel_at,
    )
    await run_attempt(start, {svc.name: svc}, channel)
    return channel


def journaled(*entries: pb.JournalEntry) -> list[pb.JournalEntry]:
    return [copy(e, index=i) for i, e in enumerate(entries)]


svc = Service("Greeter")
calls: list[str] = []


@svc.handler()
async def greet(ctx: Context, name: str) -> str:
    greeting = await ctx.run("compose", lambda: calls.append(name) or f"Hello, {name}!")
    return greeting


async def test_live_run_is_durable_before_the_handler_continues() -> None:
    calls.clear()
    channel = await attempt(svc, "greet", '"Ann"')
    assert calls == ["Ann"]
    assert channel.kinds() == ["append", "complete"]
    [run] = channel.sent[0][1]
    assert (run.index, run.kind, run.name, run.completed) == (0, RUN, "compose", True)
    assert run.value == '"Hello, Ann!"'
    assert channel.sent[1][1] == '"Hello, Ann!"'


async def test_replayed_run_returns_the_journaled_value_without_running() -> None:
    calls.clear()
    entry = pb.JournalEntry(kind=RUN, name="compose", value='"from journal"', completed=True)
    journal = journaled(entry)
    channel = await attempt(svc, "greet", '"Ann"', journal)
    assert calls == []
    assert channel.sent == [("complete", '"from journal"')]


steps = Service("Steps")


@steps.handler()
async def terminal_step(ctx: Context) -> None:
    def refuse() -> None:
        raise TerminalError("card declined", code="DECLINED")

    await ctx.run("charge", refuse)


async def test_terminal_error_from_run_is_journaled_and_fails_the_invocation() -> None:
    channel = await attempt(steps, "terminal_step")
    assert channel.kinds() == ["append", "complete"]
    [run] = channel.sent[0][1]
    assert run.name == "charge"
    assert run.failure == pb.Failure(code="DECLINED", message="card declined")
    assert channel.sent[1][1] == pb.Failure(code="DECLINED", message="card declined")


async def test_journaled_run_failure_is_raised_again_on_replay() -> None:
    failure = pb.Failure(code="DECLINED", message="card declined")
    journal = journaled(pb.JournalEntry(kind=RUN, name="charge", completed=True, failure=failure))
    channel = await attempt(steps, "terminal_step", journal=journal)
    assert channel.sent == [("complete", failure)]


@steps.handler()
async def nap(ctx: Context, seconds: float) -> str:
    await ctx.sleep(seconds)
    return "awake"


async def test_sleep_suspends_on_its_entry() -> None:
    channel = await attempt(steps, "nap", "1.5")
    assert channel.kinds() == ["append", "suspend"]
    [sleep] = channel.sent[0][1]
    assert (sleep.kind, sleep.delay_ms) == (SLEEP, 1500)
    assert channel.sent[1][1] == 0


async def test_a_zero_sleep_completes_at_once() -> None:
    channel = await attempt(steps, "nap", "0")
    assert channel.kinds() == ["append", "complete"]


async def test_replayed_sleep_continues_when_fired_and_suspends_again_when_not() -> None:
    fired = await attempt(steps, "nap", "1", journaled(pb.JournalEntry(kind=SLEEP, completed=True)))
    assert fired.sent == [("complete", '"awake"')]
    pending = await attempt(steps, "nap", "1", journaled(pb.JournalEntry(kind=SLEEP)))
    assert pending.sent == [("suspend", 0)]


@steps.handler()
async def caller(ctx: Context) -> Any:
    return await ctx.call("Cart", "total", {"x": 1}, key="k1")


async def test_call_journals_the_target_and_suspends() -> None:
    channel = await attempt(steps, "caller")
    assert channel.kinds() == ["append", "suspend"]
    [call] = channel.sent[0][1]
    assert (call.target.service, call.target.handler, call.target.key) == ("Cart", "total", "k1")
    assert call.argument == '{"x": 1}'


async def test_completed_call_returns_its_value_or_raises_its_failure() -> None:
    target = pb.Target(service="Cart", handler="total", key="k1")
    done = journaled(pb.JournalEntry(kind=CALL, target=target, completed=True, value="42"))
    assert (await attempt(steps, "caller", journal=done)).sent == [("complete", "42")]

    failure = pb.Failure(code="CANCELLED", message="cancelled")
    failed = journaled(pb.JournalEntry(kind=CALL, target=target, completed=True, failure=failure))
    assert (await attempt(steps, "caller", journal=failed)).sent == [("complete", failure)]


cart = VirtualObject("CartObject")


@cart.handler()
async def add(ctx: ObjectContext, item: str) -> int:
    items = await ctx.get("items") or []
    ctx.set("items", [*items, item])
    ctx.clear("draft")
    ctx.send("Mailer", "notify", {"key": ctx.key}, delay=2)
    return await ctx.run("count", len, [*items, item])


async def test_buffered_entries_go_out_with_the_next_awaited_action() -> None:
    state = FakeChannel({"items": '["pear"]'})
    channel = await attempt(cart, "add", '"apple"', channel=state, key="c1")
    assert channel.kinds() == ["append", "append", "complete"]
    assert [e.kind for e in channel.sent[0][1]] == [GET]
    batch = channel.sent[1][1]
    assert [(e.index, e.kind) for e in batch] == [(1, SET), (2, CLEAR), (3, SEND), (4, RUN)]
    assert batch[0].value == '["pear", "apple"]'
    send = batch[2]
    assert (send.target.service, send.delay_ms, send.argument) == ("Mailer", 2000, '{"key": "c1"}')
    assert channel.sent[2][1] == "2"


@cart.handler()
async def put(ctx: ObjectContext, item: str) -> None:
    ctx.set("last", item)


async def test_buffered_entries_are_flushed_before_complete() -> None:
    channel = await attempt(cart, "put", '"x"', key="c1")
    assert channel.kinds() == ["append", "complete"]
    assert [e.kind for e in channel.sent[0][1]] == [SET]
    assert channel.sent[1][1] == "null"


async def test_replayed_buffered_entries_are_not_sent_again() -> None:
    journal = journaled(pb.JournalEntry(kind=SET, name="last", value='"x"'))
    channel = await attempt(cart, "put", '"x"', journal, key="c1")
    assert channel.sent == [("complete", "null")]


@cart.handler(shared=True)
async def sneaky_write(ctx: ObjectContext) -> None:
    ctx.set("x", 1)


async def test_shared_handlers_cannot_write_state() -> None:
    channel = await attempt(cart, "sneaky_write", key="c1")
    [(kind, failure)] = channel.sent
    assert kind == "fail"
    assert failure.code == "RETRYABLE" and "shared handler" in failure.message


flaky = Service("Flaky")


@flaky.handler()
async def boom(ctx: Context) -> None:
    ctx.send("Mailer", "notify")
    raise ValueError("boom")


async def test_other_exceptions_fail_the_attempt_without_flushing() -> None:
    channel = await attempt(flaky, "boom")
    assert channel.sent == [("fail", pb.Failure(code="RETRYABLE", message="ValueError: boom"))]


@flaky.handler()
async def swallows(ctx: Context) -> str:
    try:
        await ctx.run("renamed", lambda: 1)
    except NonDeterminismError:
        pass
    return "ok"


async def test_non_determinism_fails_the_attempt_even_if_caught() -> None:
    journal = journaled(pb.JournalEntry(kind=RUN, name="original", value="1", completed=True))
    [(kind, failure)] = (await attempt(flaky, "swallows", journal=journal)).sent
    assert kind == "fail"
    assert failure.code == "NON_DETERMINISM"
    assert "RUN('original')" in failure.message and "RUN('renamed')" in failure.message


@flaky.handler()
async def quick(ctx: Context) -> str:
    return "done"


async def test_finishing_before_the_journal_is_non_determinism() -> None:
    journal = journaled(pb.JournalEntry(kind=SLEEP, completed=True))
    [(kind, failure)] = (await attempt(flaky, "quick", journal=journal)).sent
    assert (kind, failure.code) == ("fail", "NON_DETERMINISM")


@flaky.handler()
async def nested(ctx: Context) -> None:
    await ctx.run("outer", lambda: ctx.send("A", "b"))


async def test_context_cannot_be_used_inside_run() -> None:
    [(kind, failure)] = (await attempt(flaky, "nested")).sent
    assert kind == "fail" and "RuntimeError" in failure.message


@flaky.handler()
async def stubborn(ctx: Context) -> str:
    for _ in range(2):
        try:
            await ctx.sleep(10)
        except BaseException:
            pass
    return "carried on"


async def test_an_attempt_that_ended_reports_nothing_more() -> None:
    channel = await attempt(flaky, "stubborn")
    assert channel.kinds() == ["append", "suspend"]


async def test_aborted_attempt_stops_quietly() -> None:
    calls.clear()
    channel = await attempt(svc, "greet", '"Ann"', channel=FakeChannel(abort_on="append"))
    assert channel.kinds() == ["append"]


async def test_invalid_input_fails_terminally() -> None:
    [(kind, failure)] = (await attempt(svc, "greet", "{nope")).sent
    assert (kind, failure.code) == ("complete", "TERMINAL")


async def test_unknown_handler_fails_the_attempt() -> None:
    [(kind, failure)] = (await attempt(svc, "missing")).sent
    assert (kind, failure.code) == ("fail", "RETRYABLE")
    assert "Greeter/missing" in failure.message


@flaky.handler()
async def about(ctx: Context) -> dict[str, Any]:
    return {"id": ctx.invocation_id, "attempt": ctx.attempt, "headers": dict(ctx.headers)}


async def test_context_exposes_the_invocation() -> None:
    [(_, output)] = (await attempt(flaky, "about", "ignored")).sent
    assert output == '{"id": "inv_1", "attempt": 2, "headers": {"h": "v"}}'


@pytest.mark.parametrize("delay", [-1, "soon"])
async def test_invalid_sleep_fails_the_attempt(delay: Any) -> None:
    local = Service("Local")

    @local.handler()
    async def h(ctx: Context) -> None:
        await ctx.sleep(delay)

    [(kind, failure)] = (await attempt(local, "h")).sent
    assert (kind, failure.code) == ("fail", "RETRYABLE")


@flaky.handler()
async def async_step(ctx: Context, n: int) -> Any:
    async def double(x: int) -> tuple[int, int]:
        return (x, 2 * x)

    return await ctx.run("double", double, n)


async def test_run_awaits_async_functions_and_returns_the_json_form() -> None:
    channel = await attempt(flaky, "async_step", "3")
    # A tuple comes back as a list, live as on replay.
    assert channel.sent[-1] == ("complete", "[3, 6]")


@flaky.handler()
async def not_json(ctx: Context) -> float:
    return float("nan")


async def test_output_must_be_json() -> None:
    [(kind, failure)] = (await attempt(flaky, "not_json")).sent
    assert (kind, failure.code) == ("fail", "RETRYABLE")
    assert failure.message.startswith("ValueError")


# --- cancellation ----------------------------------------------------------------------

CANCEL = pb.JOURNAL_ENTRY_KIND_CANCEL
CANCELLED = pb.Failure(code="CANCELLED", message="cancelled by an operator")
compensations: list[str] = []
cancellable = Service("Cancellable")


@cancellable.handler()
async def refund(ctx: Context) -> str:
    await ctx.run("charge", lambda: "charged")
    try:
        await ctx.run("ship", lambda: "shipped")
    except InvocationCancelled:
        await ctx.run("refund", lambda: compensations.append("refund") or "refunded")
        raise
    return "shipped"


async def test_a_pending_cancel_is_journaled_and_raised_at_the_first_live_await() -> None:
    compensations.clear()
    channel = FakeChannel()
    channel.cancelled = True
    journal = journaled(pb.JournalEntry(kind=RUN, name="charge", value='"charged"', completed=True))
    await attempt(cancellable, "refund", journal=journal, channel=channel)
    # Replayed entries do not see it; the first live await journals it, then compensates.
    assert channel.kinds() == ["append", "append", "complete"]
    [cancel] = channel.sent[0][1]
    assert (cancel.index, cancel.kind, cancel.failure) == (1, CANCEL, CANCELLED)
    [compensation] = channel.sent[1][1]
    assert (compensation.index, compensation.name) == (2, "refund")
    assert channel.sent[2][1] == CANCELLED
    assert compensations == ["refund"]


async def test_a_journaled_cancel_is_raised_again_where_it_was_seen() -> None:
    compensations.clear()
    journal = journaled(
        pb.JournalEntry(kind=RUN, name="charge", value='"charged"', completed=True),
        pb.JournalEntry(kind=CANCEL, completed=True, failure=CANCELLED),
        pb.JournalEntry(kind=RUN, name="refund", value='"refunded"', completed=True),
    )
    channel = await attempt(cancellable, "refund", journal=journal)
    assert channel.sent == [("complete", CANCELLED)]
    assert compensations == []


async def test_a_cancel_is_raised_once() -> None:
    # The cancel is pending and already journaled: the compensation is not cancelled.
    compensations.clear()
    channel = FakeChannel()
    channel.cancelled = True
    journal = journaled(
        pb.JournalEntry(kind=RUN, name="charge", value='"charged"', completed=True),
        pb.JournalEntry(kind=CANCEL, completed=True, failure=CANCELLED),
    )
    await attempt(cancellable, "refund", journal=journal, channel=channel)
    assert channel.kinds() == ["append", "complete"]
    assert compensations == ["refund"]


async def test_a_sleep_completed_by_a_cancel_raises_it() -> None:
    sleep = pb.JournalEntry(kind=SLEEP, completed=True, failure=CANCELLED)
    channel = await attempt(steps, "nap", "1", journaled(sleep))
    assert channel.sent == [("complete", CANCELLED)]


async def test_a_journaled_cancel_the_handler_no_longer_reaches_is_non_determinism() -> None:
    journal = journaled(
        pb.JournalEntry(kind=RUN, name="compose", value='"hi"', completed=True),
        pb.JournalEntry(kind=CANCEL, completed=True, failure=CANCELLED),
    )
    channel = await attempt(svc, "greet", '"Ann"', journal)
    [(kind, failure)] = channel.sent
    assert (kind, failure.code) == ("fail", "NON_DETERMINISM")


@cancellable.handler()
async def relay(ctx: Context) -> str:
    try:
        result = await ctx.call("Leaf", "work")
    except InvocationCancelled:
        await ctx.run("undo", lambda: compensations.append("undo") or "undone")
        raise
    await ctx.run("after", lambda: compensations.append("after") or "after")
    return result


REFUNDED = pb.JournalEntry(
    kind=CALL, target=pb.Target(service="Leaf", handler="work"), argument="null",
    completed=True, value='"refunded"', callee_invocation_id="inv_leaf",
)  # fmt: skip
AT_AWAIT = pb.JournalEntry(kind=CANCEL, name="await", completed=True, failure=CANCELLED)


async def test_a_cancel_at_the_awaited_call_raises_there_in_place_of_its_result() -> None:
    # Suspended on the call when cancelled, woken once the callee returned a value.
    compensations.clear()
    channel = FakeChannel()
    channel.cancelled = True
    await attempt(cancellable, "relay", journal=journaled(REFUNDED), channel=channel, cancel_at=0)
    assert channel.kinds() == ["append", "append", "complete"]
    [cancel] = channel.sent[0][1]
    assert (cancel.index, cancel.kind, cancel.name, cancel.failure) == (
        1,
        CANCEL,
        "await",
        CANCELLED,
    )
    [undo] = channel.sent[1][1]
    assert (undo.index, undo.name) == (2, "undo")
    assert channel.sent[2] == ("complete", CANCELLED)
    assert compensations == ["undo"]


async def test_a_cancel_journaled_at_a_call_is_replayed_at_that_call() -> None:
    compensations.clear()
    undone = pb.JournalEntry(kind=RUN, name="undo", value='"undone"', completed=True)
    journal = journaled(REFUNDED, AT_AWAIT, undone)
    assert (await attempt(cancellable, "relay", journal=journal)).sent == [("complete", CANCELLED)]
    assert compensations == []


async def test_an_unnamed_cancel_after_a_call_is_raised_at_the_next_await() -> None:
    # The call returned its value, and the cancel came after: not raised at the call.
    compensations.clear()
    unnamed = pb.JournalEntry(kind=CANCEL, completed=True, failure=CANCELLED)
    channel = await attempt(cancellable, "relay", journal=journaled(REFUNDED, unnamed))
    assert channel.sent == [("complete", CANCELLED)]
    assert compensations == []


async def test_a_cancel_at_a_call_that_is_not_the_awaited_entry_waits_for_the_next_await() -> None:
    compensations.clear()
    channel = FakeChannel()
    channel.cancelled = True
    await attempt(cancellable, "relay", journal=journaled(REFUNDED), channel=channel, cancel_at=5)
    [cancel] = channel.sent[0][1]
    assert (cancel.index, cancel.name) == (1, "")  # at the start of ctx.run("after")
    assert channel.sent[-1] == ("complete", CANCELLED)
    assert compensations == []


async def test_a_cancel_at_the_awaited_sleep_raises_there() -> None:
    slept = pb.JournalEntry(kind=SLEEP, completed=True, delay_ms=1000)
    channel = FakeChannel()
    channel.cancelled = True
    await attempt(steps, "nap", "1", journaled(slept), channel=channel, cancel_at=0)
    [cancel] = channel.sent[0][1]
    assert (cancel.index, cancel.name) == (1, "await")
    assert channel.sent[-1] == ("complete", CANCELLED)
