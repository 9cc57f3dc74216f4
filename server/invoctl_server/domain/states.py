"""The invocation state machine (DESIGN.md section 3) as data.

`TRANSITIONS` is the only place that decides which state changes are legal; the store's
transition function consults it for every write of `invocations.state`.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    """Lifecycle state. Values are what the database stores (see the CHECK in 0001)."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    READY = "ready"
    RUNNING = "running"
    BACKING_OFF = "backing-off"
    SUSPENDED = "suspended"
    PAUSED = "paused"
    COMPLETED = "completed"


class Outcome(enum.StrEnum):
    """How a completed invocation ended; set if and only if the state is completed."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    KILLED = "killed"


class Event(enum.StrEnum):
    """What causes a transition; recorded in the history and on the span."""

    ACCEPTED = "accepted"  # Invoke, a call or a send created the invocation
    KEY_ACQUIRED = "key_acquired"  # the object key's lock passed to this invocation
    KEY_BUSY = "key_busy"  # a scheduled invocation came due but its key is held
    DUE = "due"  # a scheduled invocation's run_at passed
    CLAIMED = "claimed"  # a worker took an attempt
    SUSPENDED = "suspended"  # the attempt waits on a timer or a call
    WOKEN = "woken"  # the awaited timer fired or call completed
    ATTEMPT_FAILED = "attempt_failed"  # retryable failure reported by the worker
    LEASE_EXPIRED = "lease_expired"  # the worker stopped heart-beating or went away
    RETRIES_EXHAUSTED = "retries_exhausted"  # max attempts reached
    RETRY_DUE = "retry_due"  # the backoff timer fired
    COMPLETED = "completed"  # the handler returned a value or a terminal error
    CANCELLED = "cancelled"  # an operator cancelled it, or an invocation up its call tree
    KILLED = "killed"  # an operator killed it, or an invocation up its call tree
    PAUSED = "paused"  # an operator paused it
    RESUMED = "resumed"  # an operator resumed it


# The state "before" an invocation exists: the accepting transition starts here.
NEW = None

_S = State
# (state before, event) -> states the event may lead to. Where an event has more than one
# possible target (accepted, retries exhausted) the caller names it and the table checks it.
TRANSITIONS: dict[tuple[State | None, Event], frozenset[State]] = {
    (NEW, Event.ACCEPTED): frozenset({_S.READY, _S.PENDING, _S.SCHEDULED}),
    (_S.PENDING, Event.KEY_ACQUIRED): frozenset({_S.READY}),
    (_S.SCHEDULED, Event.DUE): frozenset({_S.READY}),
    (_S.SCHEDULED, Event.KEY_BUSY): frozenset({_S.PENDING}),
    (_S.READY, Event.CLAIMED): frozenset({_S.RUNNING}),
    (_S.RUNNING, Event.SUSPENDED): frozenset({_S.SUSPENDED}),
    (_S.SUSPENDED, Event.WOKEN): frozenset({_S.READY}),
    # With a cancellation pending (its handler has yet to see it) a failed attempt is not
    # retried: the invocation completes cancelled.
    (_S.RUNNING, Event.ATTEMPT_FAILED): frozenset({_S.BACKING_OFF, _S.COMPLETED}),
    (_S.RUNNING, Event.LEASE_EXPIRED): frozenset({_S.BACKING_OFF}),
    (_S.RUNNING, Event.RETRIES_EXHAUSTED): frozenset({_S.PAUSED, _S.COMPLETED}),
    (_S.BACKING_OFF, Event.RETRY_DUE): frozenset({_S.READY}),
    (_S.RUNNING, Event.COMPLETED): frozenset({_S.COMPLETED}),
    # Operator actions (DESIGN.md section 4). A cancel completes what has not started;
    # what has started keeps going (or is woken) to let its handler see the cancellation.
    (_S.PENDING, Event.CANCELLED): frozenset({_S.COMPLETED}),
    (_S.SCHEDULED, Event.CANCELLED): frozenset({_S.COMPLETED}),
    (_S.READY, Event.CANCELLED): frozenset({_S.COMPLETED, _S.READY}),
    (_S.RUNNING, Event.CANCELLED): frozenset({_S.RUNNING}),
    # A suspended one awaiting a call to a not-completed invocation of its call tree stays
    # suspended: the callee, cancelled too, ends first and then wakes it (leaves first).
    (_S.SUSPENDED, Event.CANCELLED): frozenset({_S.READY, _S.SUSPENDED}),
    (_S.BACKING_OFF, Event.CANCELLED): frozenset({_S.READY}),
    (_S.PAUSED, Event.CANCELLED): frozenset({_S.READY}),
    **{(s, Event.KILLED): frozenset({_S.COMPLETED}) for s in State if s != _S.COMPLETED},
    (_S.RUNNING, Event.PAUSED): frozenset({_S.PAUSED}),
    (_S.BACKING_OFF, Event.PAUSED): frozenset({_S.PAUSED}),
    (_S.PAUSED, Event.RESUMED): frozenset({_S.READY}),
    (_S.SUSPENDED, Event.RESUMED): frozenset({_S.READY}),
    (_S.BACKING_OFF, Event.RESUMED): frozenset({_S.READY}),
    # A ready invocation that has started before waits for a worker of its deployment,
    # which may be gone: a resume re-pins it (operations.resume_many refuses one that has
    # not started: it goes to the newest deployment by itself).
    (_S.READY, Event.RESUMED): frozenset({_S.READY}),
}


def allowed_targets(state: State | None, event: Event) -> frozenset[State]:
    """The states `event` may move an invocation in `state` to; empty when illegal."""
    return TRANSITIONS.get((state, event), frozenset())


def started(state: State, attempts: int) -> bool:
    """Whether an invocation has started: pending, scheduled, and ready before its first
    attempt have not. A cancel completes those at once, and a resume refuses a ready one
    that never started (it goes to the newest deployment by itself)."""
    if state in (State.PENDING, State.SCHEDULED):
        return False
    return not (state == State.READY and attempts == 0)


# The operator actions that are transitions, by name, with the event each causes; the
# others (purge, purge journal, restart as new) act on completed invocations only.
OPERATOR_EVENTS: dict[str, Event] = {
    "cancel": Event.CANCELLED,
    "kill": Event.KILLED,
    "pause": Event.PAUSED,
    "resume": Event.RESUMED,
}


def acts_on(event: Event | None, state: State, has_started: bool | None = None) -> bool:
    """Whether an operator action applies to an invocation in `state`: the action's event,
    or None for purge, purge journal and restart as new, which apply to completed
    invocations only (DESIGN.md section 4). `has_started`, when known, is started() of
    the invocation: a resume refuses a ready one that never started."""
    if event is None:
        return state == State.COMPLETED
    if event == Event.RESUMED and has_started is False:
        return False
    return bool(allowed_targets(state, event))
