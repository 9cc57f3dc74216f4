"""The replay cursor of one attempt: journaled entries in, new entries out.

A handler's durable actions are numbered in the order it performs them. While the
attempt replays, each action consumes the journaled entry at its index and must match
it; once the journal is exhausted the actions run live and their entries are staged
here until the context sends them in one JournalAppend.
"""

from __future__ import annotations

from collections.abc import Sequence

from invoctl.v1 import invocation_pb2

from ._errors import NonDeterminismError

JournalEntry = invocation_pb2.JournalEntry
Kind = invocation_pb2.JournalEntryKind

# What identifies an action for the replay check. A sleep matches by kind alone: a
# changed duration does not change what the handler does next.
_MATCH_BY_NAME = frozenset(
    {
        invocation_pb2.JOURNAL_ENTRY_KIND_RUN,
        invocation_pb2.JOURNAL_ENTRY_KIND_GET_STATE,
        invocation_pb2.JOURNAL_ENTRY_KIND_SET_STATE,
        invocation_pb2.JOURNAL_ENTRY_KIND_CLEAR_STATE,
    }
)
_MATCH_BY_TARGET = frozenset(
    {invocation_pb2.JOURNAL_ENTRY_KIND_CALL, invocation_pb2.JOURNAL_ENTRY_KIND_SEND}
)


# The name of a cancel entry that the await of the entry before it (a call or sleep)
# raised in place of that entry's result; an unnamed one was raised at the start of the
# action that would have made its entry.
CANCEL_AT_AWAIT = "await"


def target_path(target: invocation_pb2.Target) -> str:
    """Restate-style target string: ``Service/handler`` or ``Object/key/handler``."""
    return "/".join(part for part in (target.service, target.key, target.handler) if part)


def describe(entry: JournalEntry) -> str:
    """Returns a short human-readable form of an action, for error messages."""
    kind = Kind.Name(entry.kind).removeprefix("JOURNAL_ENTRY_KIND_")
    if entry.kind in _MATCH_BY_NAME:
        return f"{kind}({entry.name!r})"
    if entry.kind in _MATCH_BY_TARGET:
        return f"{kind}({target_path(entry.target)})"
    return kind


def mismatch(expected: JournalEntry, journaled: JournalEntry) -> str | None:
    """Returns why ``journaled`` does not record the action ``expected``, or None."""
    same = expected.kind == journaled.kind
    if same and expected.kind in _MATCH_BY_NAME:
        same = expected.name == journaled.name
    if same and expected.kind in _MATCH_BY_TARGET:
        same = (expected.target.service, expected.target.handler, expected.target.key) == (
            journaled.target.service,
            journaled.target.handler,
            journaled.target.key,
        )
    if same:
        return None
    return (
        f"journal entry {journaled.index} is {describe(journaled)} "
        f"but the handler now does {describe(expected)}"
    )


class Journal:
    """Replay cursor and staging buffer of one attempt."""

    def __init__(self, journaled: Sequence[JournalEntry]) -> None:
        self._journaled = list(journaled)
        for position, entry in enumerate(self._journaled):
            if entry.index != position:
                raise ValueError(f"journal entry {position} has index {entry.index}")
        self._next_index = 0
        self._pending: list[JournalEntry] = []
        self.mismatch: str | None = None
        """The first replay mismatch; the attempt fails with NON_DETERMINISM if set."""

    @property
    def replaying(self) -> bool:
        """Whether the next action consumes a journaled entry."""
        return self._next_index < len(self._journaled)

    @property
    def next_index(self) -> int:
        """The index of the next action."""
        return self._next_index

    def replay(self, expected: JournalEntry) -> JournalEntry | None:
        """Consumes the journaled entry of the next action, or returns None when live.

        Raises NonDeterminismError (and remembers it) when the entry records a
        different action than ``expected``.
        """
        if self.mismatch is not None:
            raise NonDeterminismError(self.mismatch)
        if not self.replaying:
            return None
        journaled = self._journaled[self._next_index]
        reason = mismatch(expected, journaled)
        if reason is not None:
            self.mismatch = reason
            raise NonDeterminismError(reason)
        self._next_index += 1
        return journaled

    def replay_cancel(self, *, at_await: bool = False) -> JournalEntry | None:
        """Consumes the journaled cancel entry at the cursor, if that is what is there:
        the point where an earlier attempt saw the invocation's cancellation. With
        ``at_await``, only one the await of the entry just replayed raised
        (CANCEL_AT_AWAIT); without, only one raised at the start of an action."""
        if self.mismatch is not None or not self.replaying:
            return None
        journaled = self._journaled[self._next_index]
        if journaled.kind != invocation_pb2.JOURNAL_ENTRY_KIND_CANCEL:
            return None
        if (journaled.name == CANCEL_AT_AWAIT) != at_await:
            return None
        self._next_index += 1
        return journaled

    def stage(self, entry: JournalEntry) -> int:
        """Numbers a live entry and buffers it until the next flush; returns its index."""
        if self.replaying:
            raise RuntimeError("cannot stage a live entry while replaying")
        entry.index = self._next_index
        self._next_index += 1
        self._pending.append(entry)
        return entry.index

    def take_pending(self) -> list[JournalEntry]:
        """Returns the staged entries, oldest first, and empties the buffer."""
        pending, self._pending = self._pending, []
        return pending

    def check_replayed(self) -> None:
        """Raises NonDeterminismError if the handler finished before the journal did."""
        if self.mismatch is None and self.replaying:
            left = self._journaled[self._next_index]
            self.mismatch = (
                f"the handler finished but journal entry {left.index} ({describe(left)}) "
                "was not replayed"
            )
        if self.mismatch is not None:
            raise NonDeterminismError(self.mismatch)
