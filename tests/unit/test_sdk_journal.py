"""Replay matching and live staging of the SDK's journal cursor."""

import pytest

from invoctl.sdk import NonDeterminismError
from invoctl.sdk._journal import Journal, describe, mismatch
from invoctl.v1 import invocation_pb2 as pb

RUN = pb.JOURNAL_ENTRY_KIND_RUN
SLEEP = pb.JOURNAL_ENTRY_KIND_SLEEP
CALL = pb.JOURNAL_ENTRY_KIND_CALL
SEND = pb.JOURNAL_ENTRY_KIND_SEND
GET = pb.JOURNAL_ENTRY_KIND_GET_STATE
SET = pb.JOURNAL_ENTRY_KIND_SET_STATE


def entry(index: int = 0, **fields: object) -> pb.JournalEntry:
    return pb.JournalEntry(index=index, **fields)


def target(service: str, handler: str, key: str = "") -> pb.Target:
    return pb.Target(service=service, handler=handler, key=key)


@pytest.mark.parametrize(
    ("expected", "journaled"),
    [
        (entry(kind=RUN, name="charge"), entry(kind=RUN, name="charge", value="1")),
        (entry(kind=GET, name="count"), entry(kind=GET, name="count", value="null")),
        (entry(kind=SET, name="count", value="2"), entry(kind=SET, name="count", value="1")),
        # A sleep matches by kind: a changed duration does not change what comes next.
        (entry(kind=SLEEP, delay_ms=5), entry(kind=SLEEP, delay_ms=10)),
        # Calls and sends match by target; the argument may differ.
        (
            entry(kind=CALL, target=target("Cart", "add", "k1"), argument="1"),
            entry(kind=CALL, target=target("Cart", "add", "k1"), argument="2"),
        ),
        (
            entry(kind=SEND, target=target("Mail", "send")),
            entry(kind=SEND, target=target("Mail", "send")),
        ),
    ],
)
def test_matching_actions(expected: pb.JournalEntry, journaled: pb.JournalEntry) -> None:
    assert mismatch(expected, journaled) is None


@pytest.mark.parametrize(
    ("expected", "journaled"),
    [
        (entry(kind=RUN, name="charge"), entry(kind=RUN, name="refund")),
        (entry(kind=RUN, name="x"), entry(kind=SLEEP)),
        (entry(kind=GET, name="a"), entry(kind=SET, name="a")),
        (
            entry(kind=CALL, target=target("Cart", "add", "k1")),
            entry(kind=CALL, target=target("Cart", "add", "k2")),
        ),
        (
            entry(kind=CALL, target=target("Cart", "add")),
            entry(kind=CALL, target=target("Cart", "remove")),
        ),
        (entry(kind=SEND, target=target("A", "h")), entry(kind=CALL, target=target("A", "h"))),
    ],
)
def test_mismatching_actions(expected: pb.JournalEntry, journaled: pb.JournalEntry) -> None:
    assert mismatch(expected, journaled) is not None


def test_mismatch_message_names_both_actions() -> None:
    reason = mismatch(
        entry(kind=RUN, name="charge"), entry(3, kind=CALL, target=target("Cart", "add", "k"))
    )
    assert reason == "journal entry 3 is CALL(Cart/k/add) but the handler now does RUN('charge')"


def test_describe() -> None:
    assert describe(entry(kind=SLEEP)) == "SLEEP"
    assert describe(entry(kind=SEND, target=target("Mail", "send"))) == "SEND(Mail/send)"


def test_replay_consumes_in_order_then_goes_live() -> None:
    journal = Journal(
        [entry(0, kind=RUN, name="a", value="1"), entry(1, kind=SLEEP, completed=True)]
    )
    assert journal.replaying
    assert journal.replay(entry(kind=RUN, name="a")).value == "1"
    assert journal.replay(entry(kind=SLEEP)).completed
    assert not journal.replaying
    assert journal.replay(entry(kind=RUN, name="b")) is None


def test_live_entries_continue_the_journal_indexes() -> None:
    journal = Journal([entry(0, kind=RUN, name="a")])
    journal.replay(entry(kind=RUN, name="a"))
    assert journal.stage(entry(kind=SET, name="x")) == 1
    assert journal.stage(entry(kind=RUN, name="b")) == 2
    assert [e.index for e in journal.take_pending()] == [1, 2]
    assert journal.take_pending() == []
    assert journal.next_index == 3


def test_stage_while_replaying_is_a_bug() -> None:
    journal = Journal([entry(0, kind=RUN, name="a")])
    with pytest.raises(RuntimeError):
        journal.stage(entry(kind=RUN, name="a"))


def test_a_mismatch_is_remembered() -> None:
    journal = Journal([entry(0, kind=RUN, name="a")])
    with pytest.raises(NonDeterminismError):
        journal.replay(entry(kind=RUN, name="b"))
    assert journal.mismatch is not None
    # Even an action that would match now fails: the handler already diverged.
    with pytest.raises(NonDeterminismError):
        journal.replay(entry(kind=RUN, name="a"))
    with pytest.raises(NonDeterminismError):
        journal.check_replayed()


def test_finishing_before_the_journal_is_a_mismatch() -> None:
    journal = Journal([entry(0, kind=RUN, name="a"), entry(1, kind=SLEEP)])
    journal.replay(entry(kind=RUN, name="a"))
    with pytest.raises(NonDeterminismError, match="entry 1 \\(SLEEP\\) was not replayed"):
        journal.check_replayed()


def test_fully_replayed_journal_passes_the_check() -> None:
    journal = Journal([entry(0, kind=RUN, name="a")])
    journal.replay(entry(kind=RUN, name="a"))
    journal.check_replayed()


def test_journal_indexes_must_be_contiguous() -> None:
    with pytest.raises(ValueError):
        Journal([entry(0, kind=RUN, name="a"), entry(2, kind=RUN, name="b")])
