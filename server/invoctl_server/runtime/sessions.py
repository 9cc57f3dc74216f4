"""Worker sessions connected to this server, and the dispatcher that feeds them attempts."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from ..store import attempts, db, operations, transition
from .loop import Loop, woken

log = logging.getLogger("invoctl.dispatch")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass(eq=False)
class Session:
    """One worker's Connect stream. `outbox` carries Claimed attempts to the stream."""

    id: str
    deployment_id: str
    name: str
    capacity: int
    # The worker reads ConnectResponse.batch (its hello said so).
    batching: bool = False
    # The attempts it runs: invocation ID -> what their claim read (attempts.claim_known).
    inflight: dict[str, dict] = dataclasses.field(default_factory=dict)
    outbox: asyncio.Queue = dataclasses.field(default_factory=asyncio.Queue)
    # While claims for this session are in flight: the signals that came meanwhile for
    # attempts it does not track yet, by invocation. A claim commits before it returns
    # here, so an operator's action may commit in between and its signal arrive first.
    early: dict[str, operations.Signal] | None = None
    # Claims for this session in flight (the dispatcher's, and those made in the
    # transaction of an invoke), and the slots they may fill: they count as taken.
    claims: int = 0
    reserved: int = 0
    # When the worker last sent anything (monotonic clock): a worker that stopped talking
    # gets no new attempts, or it would receive the retries of its own lapsed leases.
    last_seen: float = dataclasses.field(default_factory=time.monotonic)
    # A lease renewal of this session is being written, and a heart-beat came meanwhile
    # (api/workers.py: one renewal at a time, the next one after it).
    renewing: bool = False
    renew_again: bool = False
    # The dispatcher's last look at this session may have left ready work behind (it was
    # full or silent, its claim filled the limit, or the claim failed): only then does a
    # freed slot call for another claim. Otherwise that claim found every ready attempt,
    # and newer ones come with their own wake-up (a ready notification, or the poll).
    starved: bool = False

    def seen(self) -> None:
        self.last_seen = time.monotonic()

    @property
    def actor(self) -> str:
        return f"worker:{self.name}"

    def free(self) -> int:
        return self.capacity - len(self.inflight) - self.reserved


class Dispatcher(Loop):
    """Claims ready invocations (FOR UPDATE SKIP LOCKED) for the sessions with free slots.

    Woken by `invoctl_ready` notifications from any server and by freed capacity, and
    polls every `poll_interval` in case a notification was missed.
    """

    task_name = "dispatcher"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        lease: timedelta,
        heartbeat: timedelta,
        poll_interval: float,
        batch: int = 64,
    ) -> None:
        self._pool = pool
        self._lease = lease
        self._silent_after = 2 * heartbeat.total_seconds()
        self._turn = 0
        self._poll = poll_interval
        self._batch = batch
        self._sessions: dict[str, Session] = {}
        self._wake = asyncio.Event()

    def wake(self, _payload: str = "") -> None:
        self._wake.set()

    def add(self, session: Session) -> None:
        self._sessions[session.id] = session
        self.wake()

    def remove(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def signal(self, payload: str) -> None:
        """An operator acted on a running attempt (notification from any server): if its
        session is here, tell the worker, after the attempt itself if its claim is still
        on its way to the session. A paused or killed attempt is fenced already and leaves
        the session; a cancelled one runs on to let its handler compensate."""
        signal = operations.signal_of(payload)
        session = self._sessions.get(signal.session_id)
        if session is None:
            return
        if signal.invocation_id in session.inflight:
            self._deliver(session, signal)
        elif session.early is not None:
            session.early[signal.invocation_id] = signal  # see Session.early

    def _deliver(self, session: Session, signal: operations.Signal) -> None:
        session.outbox.put_nowait(signal)
        if signal.kind != "cancel":
            self.done(session, signal.invocation_id)

    def live_session(self, deployment_id: str) -> Session | None:
        """The session of `deployment_id` with the most free slots, if any has one and its
        worker is not silent."""
        now = time.monotonic()
        best = None
        for s in self._sessions.values():
            if (
                s.deployment_id == deployment_id
                and s.free() > 0
                and now - s.last_seen <= self._silent_after
                and (best is None or s.free() > best.free())
            ):
                best = s
        return best

    async def claim_within(
        self, conn: asyncpg.Connection, ready: dict[str, list[asyncpg.Record]]
    ) -> set[str]:
        """Claim, in the caller's transaction, ready invocations it holds the locks of
        (an invoke's new ones, by the deployment they run on) for a session of their
        deployment: the commit that made them ready is then the claim's too, instead of a
        notification, a wake-up and a transaction of the dispatcher's after it. Older ready
        invocations are the dispatcher's, which is woken for each of them. The attempts go
        to their sessions once that transaction commits (transition.after_commit); if it
        rolls back they never existed. Returns the IDs of the invocations it claimed."""
        ids: set[str] = set()
        for deployment_id in sorted(ready):
            session = self.live_session(deployment_id)
            if session is None:
                continue  # the caller notifies the dispatchers of every server
            limit = min(session.free(), self._batch, len(ready[deployment_id]))
            self._claiming(session, limit)
            try:
                claimed = await self._claim(conn, session, limit, ready[deployment_id])
            except BaseException:
                self._claimed(session, limit, None, scan=False)
                raise
            transition.after_commit(
                lambda s=session, n=limit, c=claimed: self._claimed(s, n, c, scan=False),
                lambda s=session, n=limit: self._claimed(s, n, None, scan=False),
            )
            ids.update(c.row["id"] for c in claimed)
        return ids

    async def _claim(
        self,
        conn: asyncpg.Connection,
        session: Session,
        limit: int,
        locked: list[asyncpg.Record] | None = None,
    ) -> list[attempts.Claimed]:
        return await attempts.attempts_claim(
            conn,
            deployment_id=session.deployment_id,
            session_id=session.id,
            limit=limit,
            lease=self._lease,
            actor=session.actor,
            now=utcnow(),
            locked=locked,
        )

    def _claiming(self, session: Session, limit: int) -> None:
        """A claim of up to `limit` attempts for `session` starts: its slots are taken,
        and signals for attempts the session does not know yet are kept (Session.early)."""
        session.claims += 1
        session.reserved += limit
        if session.early is None:
            session.early = {}

    def _claimed(
        self,
        session: Session,
        limit: int,
        claimed: list[attempts.Claimed] | None,
        *,
        scan: bool = True,
    ) -> None:
        """The claim committed (`claimed`) or did not (None): hand the attempts to the
        session, then the signals that came for them meanwhile. `scan`: the claim looked
        for ready invocations (the dispatcher's), so it tells whether it may have left some
        behind (Session.starved); one of given rows (claim_within) tells nothing."""
        session.claims -= 1
        session.reserved -= limit
        early = session.early or {}
        if not session.claims:
            session.early = None
        if claimed is None:
            if scan:  # rolled back: what it had locked is ready still
                session.starved = True
            return
        if self._sessions.get(session.id) is not session:
            # The stream closed while claiming: its leases are expired by the
            # stream's own clean-up, which runs after this claim committed.
            return
        if scan:
            session.starved = len(claimed) == limit
        for c in claimed:
            session.inflight[c.row["id"]] = attempts.claim_known(c.row)
            session.outbox.put_nowait(c)
            # After the attempt: the worker acts on signals for attempts it runs.
            signal = early.pop(c.row["id"], None)
            if signal is not None and signal.attempt == c.row["attempt"]:
                self._deliver(session, signal)

    def done(self, session: Session, invocation_id: str) -> None:
        """The attempt left the session (suspended, completed, failed, fenced). Its slot
        wakes the dispatcher only if ready work may be waiting for one (Session.starved):
        a claim that finds nothing is three round trips on every attempt's end."""
        session.inflight.pop(invocation_id, None)
        if session.starved:
            self.wake()

    async def _run(self) -> None:
        while True:
            await woken(self._wake, self._poll)
            self._wake.clear()
            try:
                await self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch failed; retrying at the next wake-up")

    async def _dispatch(self) -> None:
        again = True
        while again:
            again = False
            # Start with a different session each round, so that work spreads over them.
            sessions = list(self._sessions.values())
            self._turn = (self._turn + 1) % max(len(sessions), 1)
            now = time.monotonic()
            for session in sessions[self._turn :] + sessions[: self._turn]:
                free = session.free()
                # Starved until a claim for it comes back short (Session.starved).
                session.starved = True
                if free <= 0 or now - session.last_seen > self._silent_after:
                    continue
                limit = min(free, self._batch)
                self._claiming(session, limit)
                claimed = None
                try:
                    claimed = await db.transaction(
                        self._pool, lambda conn, s=session, n=limit: self._claim(conn, s, n)
                    )
                finally:
                    self._claimed(session, limit, claimed)
                again = again or len(claimed) == limit
