"""The console's actions: which RPC each runs, and in which states it applies, read from
the one state table (domain/states.py), so a button shows exactly where the server would
act. Purge, purge journal and restart as new are not transitions: they apply to completed
invocations only (DESIGN.md section 4)."""

from __future__ import annotations

import dataclasses

from ..domain.states import OPERATOR_EVENTS, Event, State, acts_on, started
from ..http.route import CONTROL


@dataclasses.dataclass(frozen=True)
class Action:
    name: str  # as the URL and the CLI spell it
    label: str
    rpc: str  # the single-invocation RPC
    bulk_rpc: str
    warning: str = ""  # what it cannot undo

    @property
    def event(self) -> Event | None:
        """The event it causes; None: it acts on completed invocations only."""
        return OPERATOR_EVENTS.get(self.name)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("cancel", "Cancel", "CancelInvocation", "CancelInvocations"),
        Action("kill", "Kill", "KillInvocation", "KillInvocations",
               "Kill stops it at once: its handler does not run again and its callees are "
               "killed too. This cannot be undone."),
        Action("pause", "Pause", "PauseInvocation", "PauseInvocations"),
        Action("resume", "Resume", "ResumeInvocation", "ResumeInvocations"),
        Action("purge", "Purge", "PurgeInvocation", "PurgeInvocations",
               "Purge deletes the invocation, its journal and its history. This cannot be "
               "undone."),
        Action("purge-journal", "Purge journal", "PurgeJournal", "",
               "The journal is deleted; it cannot be restored."),
        Action("restart-as-new", "Restart as new", "RestartInvocationAsNew",
               "RestartInvocationsAsNew"),
    )
}  # fmt: skip
BULK_ACTIONS = [a for a in ACTIONS.values() if a.bulk_rpc]


def applies(action: Action, state: State, attempts: int | None = None) -> bool:
    """Whether the action applies to an invocation in `state` (with `attempts` started so
    far, when known: a resume refuses a ready invocation that never started)."""
    return acts_on(action.event, state, None if attempts is None else started(state, attempts))


def rpc(name: str) -> str:
    return CONTROL + name
