"""The console's actions: which RPC each runs, and in which states it applies, read from
the one state table (domain/states.py), so a button shows exactly where the server would
act. Purge, purge journal and restart as new are not transitions: they apply to completed
invocations only (DESIGN.md section 4)."""

from __future__ import annotations

import dataclasses

from ..domain.states import Event, State, acts_on, started
from ..http.route import CONTROL


@dataclasses.dataclass(frozen=True)
class Action:
    name: str  # as the URL and the CLI spell it
    label: str
    rpc: str  # the single-invocation RPC
    bulk_rpc: str
    event: Event | None  # None: completed invocations only
    warning: str = ""  # what it cannot undo


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("cancel", "Cancel", "CancelInvocation", "CancelInvocations", Event.CANCELLED),
        Action("kill", "Kill", "KillInvocation", "KillInvocations", Event.KILLED,
               "Kill stops it at once: its handler does not run again and its callees are "
               "killed too. This cannot be undone."),
        Action("pause", "Pause", "PauseInvocation", "PauseInvocations", Event.PAUSED),
        Action("resume", "Resume", "ResumeInvocation", "ResumeInvocations", Event.RESUMED),
        Action("purge", "Purge", "PurgeInvocation", "PurgeInvocations", None,
               "Purge deletes the invocation, its journal and its history. This cannot be "
               "undone."),
        Action("purge-journal", "Purge journal", "PurgeJournal", "", None,
               "The journal is deleted; it cannot be restored."),
        Action("restart-as-new", "Restart as new", "RestartInvocationAsNew",
               "RestartInvocationsAsNew", None),
    )
}  # fmt: skip
BULK_ACTIONS = [a for a in ACTIONS.values() if a.bulk_rpc]


def applies(action: Action, state: State, attempts: int | None = None) -> bool:
    """Whether the action applies to an invocation in `state` (with `attempts` started so
    far, when known: a resume refuses a ready invocation that never started)."""
    return acts_on(action.event, state, None if attempts is None else started(state, attempts))


def rpc(name: str) -> str:
    return CONTROL + name
