"""Workers: deployment registration and the Connect stream that runs attempts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import asyncpg

from invoctl import wire
from invoctl.v1 import workers_pb2 as pb
from invoctl.v1 import workers_pb2_grpc

from ..domain.errors import InvalidArgument, echo
from ..domain.ids import new_session_id
from ..runtime.batcher import Locking
from ..runtime.sessions import Session
from ..store import attempts, db, operations, worker_sessions
from ..store import deployments as dstore
from . import convert, ids
from .context import Runtime
from .errors import rpc, to_domain_error

log = logging.getLogger("invoctl.workers")

# Errors after which the attempt no longer belongs to the session.
_ATTEMPT_OVER = {"STALE_ATTEMPT", "INVOCATION_NOT_FOUND"}


class Workers(workers_pb2_grpc.WorkersServicer):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @rpc
    async def RegisterDeployment(self, request, context):
        specs = convert.service_specs(list(request.services))
        identity = ids.deployment_identity(request.identity)
        dep, created = await db.transaction(
            self.rt.pool,
            lambda conn: dstore.deployment_register(conn, specs, self.rt.now(), identity),
        )
        if created:
            # Unpinned ready invocations of its services now go to this deployment.
            self.rt.dispatcher.wake()
        return pb.RegisterDeploymentResponse(deployment=convert.deployment(dep), created=created)

    @rpc
    async def ListDeployments(self, request, context):
        async with self.rt.pool.acquire() as conn:
            deps = await dstore.deployments_list(conn, request.service or None)
            dep_ids = [d.id for d in deps]
            sessions = await worker_sessions.sessions_of(conn, dep_ids)
            pinned = await dstore.pinned_counts(conn, dep_ids)
        live_since = self.rt.now() - self.rt.config.lease
        return pb.ListDeploymentsResponse(
            deployments=[
                convert.deployment(
                    d, sessions=sessions.get(d.id, []), pinned=pinned.get(d.id, 0),
                    live_since=live_since,
                )
                for d in deps
            ]
        )  # fmt: skip

    @rpc
    async def Connect(self, request_iterator, context):
        session = await self._open(request_iterator)
        reader: asyncio.Task | None = None
        # From here on the session has a row: whatever ends the stream must remove it.
        try:
            yield pb.ConnectResponse(
                welcome=pb.WorkerWelcome(
                    session_id=session.id,
                    heartbeat_interval=convert.duration_pb(
                        int(self.rt.config.heartbeat_interval.total_seconds() * 1000)
                    ),
                    accepts_batches=True,
                )
            )
            self.rt.dispatcher.add(session)
            reader = asyncio.create_task(self._read(session, request_iterator))
            reader.add_done_callback(lambda _t: session.outbox.put_nowait(None))
            ended = False
            while not ended:
                items = [await session.outbox.get()]
                # What piled up while the last message was written (the acks of one group
                # commit, the attempts of one claim) goes as one, to a worker that can
                # read that: a stream message costs more than its bytes.
                while session.batching and not session.outbox.empty():
                    items.append(session.outbox.get_nowait())
                if None in items:
                    ended = True
                    items = items[: items.index(None)]
                for message in wire.packed([_response(i) for i in items], _batch):
                    yield message
        finally:
            self.rt.dispatcher.remove(session)
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            await self._expire(session)

    async def _open(self, request_iterator: AsyncIterator[pb.ConnectRequest]) -> Session:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("message") != "hello":
            raise InvalidArgument("the first message of a worker session must be a hello")
        hello = first.hello
        deployment_id = ids.deployment_id(hello.deployment_id)
        session_id = new_session_id()
        session = Session(
            id=session_id,
            deployment_id=deployment_id,
            name=hello.worker_name or session_id,
            capacity=max(1, hello.max_concurrency or 1),
            batching=hello.accepts_batches,
        )
        # Its row tells every server that the deployment has a live worker (and refuses an
        # unknown deployment).
        async with self.rt.pool.acquire() as conn:
            await self._seen(conn, session)
        return session

    async def _seen(self, conn, session: Session) -> None:
        await worker_sessions.session_seen(
            conn,
            session_id=session.id,
            deployment_id=session.deployment_id,
            worker_name=session.name,
            server=self.rt.config.name,
            now=self.rt.now(),
        )

    async def _expire(self, session: Session) -> None:
        """The stream is gone: its attempts' leases lapse now, so they are retried."""
        try:
            async with self.rt.pool.acquire() as conn, conn.transaction():
                await attempts.leases_expire(conn, session.id, self.rt.now())
                await worker_sessions.session_close(conn, session.id, self.rt.now())
            self.rt.timers.poke()
        except Exception:
            log.warning("could not expire the leases of %s; they lapse on time", session.id)

    async def _renew(self, session: Session) -> None:
        """Renew the leases of the attempts the session has in flight, one renewal at a
        time: a heart-beat that comes while one is written is folded into the next, which
        starts once it is done. Renewals of the same rows side by side would only queue on
        their row locks, each behind the last, until the leases lapsed."""
        if session.renewing:
            session.renew_again = True
            return
        session.renewing = True
        try:
            while True:
                session.renew_again = False
                await self._renew_once(session)
                if not session.renew_again:
                    return
        finally:
            session.renewing = False

    async def _renew_once(self, session: Session) -> None:
        """One renewal. One that lost a deadlock is tried again until the leases would
        lapse (the last renewal was at most a heart-beat interval ago): a live worker must
        never lose an attempt to the server's own locking."""
        lease = self.rt.config.lease
        deadline = time.monotonic() + (lease - self.rt.config.heartbeat_interval).total_seconds()
        while session.inflight:
            try:
                async with self.rt.pool.acquire() as conn:
                    await attempts.leases_renew(
                        conn, session.id, list(session.inflight), self.rt.now() + lease
                    )
                return
            except asyncpg.DeadlockDetectedError:
                if time.monotonic() >= deadline:
                    raise
                log.info("lease renewal of %s lost a deadlock; renewing again", session.id)

    async def _read(self, session: Session, requests: AsyncIterator[pb.ConnectRequest]) -> None:
        tasks: set[asyncio.Task] = set()
        try:
            async for msg in requests:
                # A batch is read as its messages sent one by one; one nested in it (a
                # hello, a batch) is refused by _handle like any unexpected message.
                batch = msg.batch.messages if msg.WhichOneof("message") == "batch" else (msg,)
                for one in batch:
                    task = asyncio.create_task(self._handle(session, one))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def _handle(self, session: Session, msg: pb.ConnectRequest) -> None:
        session.seen()
        kind = msg.WhichOneof("message")
        if kind == "heartbeat":
            try:
                await self._renew(session)
                async with self.rt.pool.acquire() as conn:
                    await self._seen(conn, session)
            except Exception as exc:
                log.warning("lease renewal of %s failed: %r", session.id, exc)
            return
        body = getattr(msg, kind) if kind else None
        ack = pb.WorkerAck(seq=msg.seq)
        invocation_id = getattr(body, "invocation_id", "")
        try:
            if kind == "append":
                entries = await self._append(session, body)
                ack.entries.extend(convert.journal_entry(e) for e in entries)
            elif kind in ("suspend", "complete", "fail"):
                await self._end_attempt(session, kind, body)
            else:
                raise InvalidArgument(f"unexpected worker message {echo(kind)}")
        except Exception as exc:
            err = to_domain_error(exc)
            if err is None:
                log.exception("worker message %s of %s failed", kind, invocation_id)
                ack.error_reason, ack.error_message = "INTERNAL", "internal error"
            else:
                ack.error_reason, ack.error_message = err.reason, err.message
            # The worker gives up the attempt on any error ack: end it here too, or it
            # would stay running with nobody working on it.
            if invocation_id and ack.error_reason not in _ATTEMPT_OVER:
                await self._abandon(session, body, ack.error_reason, ack.error_message)
            self.rt.dispatcher.done(session, invocation_id)
        session.outbox.put_nowait(ack)

    async def _abandon(self, session: Session, body, reason: str, message: str) -> None:
        """Fail an attempt the worker gave up on after an error ack, so it is retried.

        If that fails too (the database is away), the lease lapses on its own: heart-beats
        renew only the attempts the session still has in flight."""
        try:
            await db.transaction(
                self.rt.pool,
                lambda conn: attempts.attempt_fail(
                    conn,
                    invocation_id=body.invocation_id,
                    attempt=body.attempt,
                    session_id=session.id,
                    failure=attempts.Failure(reason, message),
                    actor=session.actor,
                    now=self.rt.now(),
                ),
            )
        except Exception as exc:
            log.info("could not fail attempt %s of %s: %s", body.attempt, body.invocation_id, exc)
        self.rt.timers.poke()

    async def _append(self, session: Session, body: pb.JournalAppend):
        entries = [convert.entry_in(e) for e in body.entries]
        limit = self.rt.config.max_payload_bytes
        for e in entries:
            for field in ("value", "argument"):
                text = getattr(e, field)
                if text is not None:
                    convert.json_payload(text, field=f"entry {e.index} {field}", limit=limit)
        append = attempts.Append(body.invocation_id, body.attempt, session.id, entries)
        if attempts.is_simple(append):
            # The common case (ctx.run results, sleeps): batched, one statement per batch.
            stored = await self.rt.batches.appends.submit(append)
            if stored is not None:
                return stored
            # Refused: the locked path below finds out why and raises the precise error.
        stored = await self.rt.batches.each.submit(
            Locking(
                (append.invocation_id,),
                lambda conn: attempts.journal_append(
                    conn,
                    invocation_id=append.invocation_id,
                    attempt=append.attempt,
                    session_id=append.session_id,
                    entries=append.entries,
                    lease=self.rt.config.lease,
                    actor=session.actor,
                    now=self.rt.now(),
                ),
            )
        )
        if any(e.kind == "send" and e.delay_ms > 0 for e in entries):
            self.rt.timers.poke()
        return stored

    async def _end_attempt(self, session: Session, kind: str, body) -> None:
        common = {
            "invocation_id": body.invocation_id,
            "attempt": body.attempt,
            "session_id": session.id,
            "actor": session.actor,
        }
        if kind == "complete":
            if body.WhichOneof("result") == "output":
                output = convert.json_payload(
                    body.output, field="output", limit=self.rt.config.max_payload_bytes
                )
                failure = None
            else:
                output = None
                failure = attempts.Failure(body.failure.code or "TERMINAL", body.failure.message)
            # Waiters on this server get the row itself; others hear the notification.
            with self.rt.completions.writing(body.invocation_id):
                claimed = session.inflight.get(body.invocation_id)
                row = await self.rt.batches.completes.submit(
                    attempts.Completion(output=output, failure=failure, claimed=claimed, **common)
                )
                self.rt.completions.completed(row["id"], row)
        elif kind == "suspend":
            await self.rt.batches.each.submit(
                Locking(
                    (body.invocation_id,),
                    lambda conn: attempts.attempt_suspend(
                        conn, waiting_on=body.waiting_on, now=self.rt.now(), **common
                    ),
                )
            )
        else:
            failure = attempts.Failure(body.failure.code or "RETRYABLE", body.failure.message)
            await self.rt.batches.each.submit(
                Locking(
                    (body.invocation_id,),
                    lambda conn: attempts.attempt_fail(
                        conn, failure=failure, now=self.rt.now(), **common
                    ),
                )
            )
        self.rt.dispatcher.done(session, body.invocation_id)
        if kind in ("suspend", "fail"):
            self.rt.timers.poke()


def _response(item: pb.WorkerAck | operations.Signal | attempts.Claimed) -> pb.ConnectResponse:
    if isinstance(item, pb.WorkerAck):
        return pb.ConnectResponse(ack=item)
    if isinstance(item, operations.Signal):
        return pb.ConnectResponse(signal=convert.attempt_signal(item))
    return pb.ConnectResponse(attempt=convert.attempt_start(item))


def _batch(messages: list[pb.ConnectResponse]) -> pb.ConnectResponse:
    return pb.ConnectResponse(batch=pb.ConnectResponseBatch(messages=messages))
