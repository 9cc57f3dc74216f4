-- Named statements. Each starts with "-- name: why"; queries.py and the store modules
-- wrap them. Every lock taken on invocations is in ID order (see transition.py).

-- invocation_get: read one invocation without locking (reads, fencing pre-checks).
SELECT * FROM invocations WHERE id = $1

-- invocations_get: read invocations by ID without locking (batched reads).
SELECT * FROM invocations WHERE id = ANY($1::text[])

-- ready_notify: wake every server's dispatcher at commit (invocations made ready without
-- the notification their transition sends, and not all claimed in the same transaction).
SELECT pg_notify($1, '')

-- invocations_lock: lock invocations for a transition; ID order so lockers never deadlock.
SELECT * FROM invocations WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE

-- invocations_lock_with_callers: lock invocations that may complete, their callers (which
-- their results wake) and, for an exclusive one, the oldest invocation pending on its key
-- (which its completion makes the holder), together in ID order (caller_id never changes,
-- so the subquery may read it without a lock; the pending one is checked again once the
-- key's row is locked, see invocations.object_lock_release). The IDs are gathered first:
-- an OR of the conditions would scan the whole table. (No filter on caller_id IS NOT NULL:
-- it would steer the planner to the partial index of callers; a NULL joins nothing anyway.)
WITH wanted AS (
    SELECT unnest($1::text[]) AS id
    UNION
    SELECT caller_id FROM invocations WHERE id = ANY($1::text[])
    UNION
    SELECT n.id FROM invocations i
    CROSS JOIN LATERAL (SELECT p.id FROM invocations p
                        WHERE p.state = 'pending' AND p.service = i.service
                          AND p.object_key = i.object_key
                        ORDER BY p.created_at, p.id LIMIT 1) n
    WHERE i.id = ANY($1::text[]) AND i.exclusive AND i.state <> 'pending'
)
SELECT i.* FROM invocations i JOIN wanted w ON w.id = i.id
ORDER BY i.id FOR UPDATE OF i

-- invocations_try_lock_with_callers: invocations_lock_with_callers for the timer loop,
-- which holds the rows it claimed out of ID order (by due time, SKIP LOCKED) and so must
-- never wait for another lock: it skips rows another transaction holds, and `busy` says
-- how many of the wanted rows it skipped (the timer then leaves that invocation for its
-- next tick).
WITH wanted AS (
    SELECT unnest($1::text[]) AS id
    UNION
    SELECT caller_id FROM invocations WHERE id = ANY($1::text[])
    UNION
    SELECT n.id FROM invocations i
    CROSS JOIN LATERAL (SELECT p.id FROM invocations p
                        WHERE p.state = 'pending' AND p.service = i.service
                          AND p.object_key = i.object_key
                        ORDER BY p.created_at, p.id LIMIT 1) n
    WHERE i.id = ANY($1::text[]) AND i.exclusive AND i.state <> 'pending'
), locked AS (
    SELECT i.* FROM invocations i JOIN wanted w ON w.id = i.id
    ORDER BY i.id FOR UPDATE OF i SKIP LOCKED
)
SELECT l.*, (SELECT count(*) FROM invocations i JOIN wanted w ON w.id = i.id)
            - (SELECT count(*) FROM locked) AS busy
FROM locked l

-- invocations_lock_batch: lock, up front and in one ID-ordered statement, every invocation
-- an operator batch or a bulk page may touch: the targets ($1), and for the targets acted
-- on with their call trees ($2: cancel, kill) their callers, the not-completed invocations
-- they called (recursively, as this statement sees them) and, for each exclusive one of
-- those, the oldest invocation pending on its key (a completion hands the key on to it).
-- Locking action by action, round by round or as a completion finds them would lock lower
-- IDs after higher ones, and two batches would deadlock. The tree is walked by index as in
-- invocation_call_trees.
-- Each row also names the tree targets whose trees it is in (tree_roots) and, for targets
-- and members, the journal length this statement's snapshot saw (seen_length): one that
-- called more since has a longer journal once locked (a call is journaled in the
-- transaction that creates the callee), and only then must the trees be walked again
-- (operations._lock_trees); otherwise the actions act on these rows as they are.
WITH RECURSIVE tree(root, id, seen) AS (
    SELECT r.root, c.id, c.journal_length FROM unnest($2::text[]) AS r(root)
    CROSS JOIN LATERAL (SELECT i.id, i.journal_length FROM invocations i
                        WHERE i.caller_id = r.root AND i.state <> 'completed' OFFSET 0) c
    UNION
    SELECT t.root, c.id, c.journal_length FROM tree t
    CROSS JOIN LATERAL (SELECT i.id, i.journal_length FROM invocations i
                        WHERE i.caller_id = t.id AND i.state <> 'completed' OFFSET 0) c
), acted AS (
    SELECT unnest($2::text[]) AS id
    UNION
    SELECT id FROM tree
), wanted AS (
    SELECT id, min(seen) AS seen_length,
           array_agg(root) FILTER (WHERE root IS NOT NULL) AS tree_roots
    FROM (
        SELECT id, journal_length AS seen, NULL::text AS root FROM invocations
        WHERE id = ANY($1::text[])
        UNION ALL
        SELECT id, journal_length, NULL FROM invocations WHERE id = ANY($2::text[])
        UNION ALL
        SELECT id, seen, root FROM tree
        UNION ALL
        SELECT caller_id, NULL, NULL FROM invocations WHERE id = ANY($2::text[])
        UNION ALL
        SELECT n.id, NULL, NULL FROM invocations i
        CROSS JOIN LATERAL (SELECT p.id FROM invocations p
                            WHERE p.state = 'pending' AND p.service = i.service
                              AND p.object_key = i.object_key
                            ORDER BY p.created_at, p.id LIMIT 1) n
        WHERE i.id = ANY(ARRAY(SELECT id FROM acted)) AND i.exclusive AND i.state <> 'pending'
    ) AS w
    WHERE id IS NOT NULL
    GROUP BY id
)
SELECT i.*, w.seen_length, w.tree_roots
FROM invocations i JOIN wanted w ON w.id = i.id
WHERE i.id = ANY(ARRAY(SELECT id FROM wanted))
ORDER BY i.id FOR UPDATE OF i

-- invocation_by_idempotency_key: find the invocation an idempotency key already started.
SELECT * FROM invocations
WHERE service = $1 AND handler = $2 AND coalesce(object_key, '') = $3 AND idempotency_key = $4

-- idempotency_lock: serialise invokes with one idempotency key so one of them inserts.
SELECT pg_advisory_xact_lock(hashtextextended($1, 0))

-- invocations_page: a page of invocations, newest first, keyset-paged by ID.
SELECT * FROM invocations
WHERE ($1::text IS NULL OR service = $1)
  AND ($2::text IS NULL OR handler = $2)
  AND ($3::text IS NULL OR object_key = $3)
  AND ($4::text[] IS NULL OR state = ANY($4))
  AND ($5::text IS NULL OR deployment_id = $5)
  AND ($6::text IS NULL OR id < $6)
  AND ($8::text IS NULL OR outcome = $8)
  AND ($9::timestamptz IS NULL OR created_at < $9)
  AND ($10::timestamptz IS NULL OR created_at >= $10)
  AND ($11::text IS NULL OR idempotency_key = $11)
ORDER BY id DESC
LIMIT $7

-- journal_entries: an invocation's journal in order.
SELECT * FROM journal_entries WHERE invocation_id = $1 ORDER BY idx

-- journal_entries_many: the journals of several invocations (attempt starts).
SELECT * FROM journal_entries WHERE invocation_id = ANY($1::text[]) ORDER BY invocation_id, idx

-- journal_entry: one entry (the entry a suspended invocation waits on).
SELECT * FROM journal_entries WHERE invocation_id = $1 AND idx = $2

-- journal_insert: append entries; the primary key rejects a duplicate index.
INSERT INTO journal_entries (invocation_id, idx, kind, name, completed, value, failure_code,
    failure_message, target_service, target_handler, target_key, argument, callee_id, wake_at,
    delay_ms, created_at)
SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::bool[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
    $14::timestamptz[], $15::int8[]), (SELECT $16::timestamptz)
RETURNING *

-- journal_append_many: append entries without side effects (run, sleep) of many attempts
-- in one statement. The UPDATE fences each attempt and checks its journal continues at
-- its first index; only the entries of the attempts it matched are inserted. Rows are
-- locked in ID order first, as everywhere. The attempt's activity renews its lease, but
-- only once less than half of it is left ($17, the renewed expiry; $18, the threshold):
-- most appends then change no indexed column, and Postgres makes them HOT updates. An
-- append with a cancel entry delivers the invocation's pending cancellation (and the await
-- it was to be raised at is moot).
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::int[], $19::bool[])
        AS r(id, attempt, session_id, first_idx, n, cancels)
), locked AS (
    SELECT i.id FROM invocations i WHERE i.id = ANY($1::text[]) ORDER BY i.id FOR UPDATE
), inv AS (
    UPDATE invocations i
    SET journal_length = i.journal_length + req.n, modified_at = $6,
        due_at = CASE WHEN i.due_at < $18 THEN $17 ELSE i.due_at END,
        cancel_pending = i.cancel_pending AND NOT req.cancels,
        waiting_on = CASE WHEN req.cancels THEN NULL ELSE i.waiting_on END
    FROM req, (SELECT count(*) FROM locked) AS l
    WHERE i.id = req.id AND i.state = 'running' AND i.attempt = req.attempt
      AND i.session_id = req.session_id AND i.journal_length = req.first_idx
    RETURNING i.id
)
INSERT INTO journal_entries (invocation_id, idx, kind, name, completed, value, failure_code,
    failure_message, wake_at, delay_ms, created_at)
SELECT e.invocation_id, e.idx, e.kind, e.name, e.completed, e.value, e.failure_code,
       e.failure_message, e.wake_at, e.delay_ms, $6
FROM unnest($7::text[], $8::int[], $9::text[], $10::text[], $11::bool[], $12::text[],
            $13::text[], $14::text[], $15::timestamptz[], $16::int8[])
    AS e(invocation_id, idx, kind, name, completed, value, failure_code, failure_message,
         wake_at, delay_ms)
WHERE e.invocation_id IN (SELECT id FROM inv)
RETURNING *

-- journal_complete_entry: a call returned or a timer fired: record the result in the entry.
UPDATE journal_entries
SET completed = true, value = $3, failure_code = $4, failure_message = $5
WHERE invocation_id = $1 AND idx = $2 AND NOT completed

-- journal_complete_entries: journal_complete_entry for many entries in one statement.
UPDATE journal_entries j
SET completed = true, value = u.value, failure_code = u.code, failure_message = u.message
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])
    AS u(invocation_id, idx, value, code, message)
WHERE j.invocation_id = u.invocation_id AND j.idx = u.idx AND NOT j.completed

-- invocation_journal_written: the journal grew; renew the lease once less than half is left.
-- $6: the entries delivered the pending cancellation (and the await it was to be raised at
-- is moot).
UPDATE invocations
SET journal_length = $2, modified_at = $3,
    due_at = CASE WHEN due_at < $5 THEN $4 ELSE due_at END,
    cancel_pending = cancel_pending AND NOT $6,
    waiting_on = CASE WHEN $6 THEN NULL ELSE waiting_on END
WHERE id = $1

-- transitions_of: an invocation's transition history in order.
SELECT * FROM invocation_transitions WHERE invocation_id = $1 ORDER BY id

-- object_lock_try: take a free object key lock; no row back means someone holds it.
INSERT INTO object_locks (service, object_key, holder_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING holder_id

-- object_lock_share: wait for a concurrent release to commit, and pin the current holder.
SELECT holder_id FROM object_locks WHERE service = $1 AND object_key = $2 FOR SHARE

-- object_lock_holder: who holds the key, without locking its row (the holder's own lock
-- keeps that from changing: only its release hands the key on).
SELECT holder_id FROM object_locks WHERE service = $1 AND object_key = $2

-- object_lock_for_release: lock the key's lock row before handing it on (after the
-- invocations: lock order), so that an acquire that queued an invocation behind it commits
-- first and is seen among the pending ones.
SELECT holder_id FROM object_locks WHERE service = $1 AND object_key = $2 FOR UPDATE

-- object_lock_next_pending: the oldest invocation waiting for the key (FIFO).
SELECT id FROM invocations
WHERE state = 'pending' AND service = $1 AND object_key = $2
ORDER BY created_at, id LIMIT 1

-- object_lock_next_pending_lock: lock the oldest invocation waiting for the key (FIFO); the
-- caller checks it is still pending once locked.
SELECT * FROM invocations WHERE id = (
    SELECT id FROM invocations
    WHERE state = 'pending' AND service = $1 AND object_key = $2
    ORDER BY created_at, id LIMIT 1
)
FOR UPDATE

-- object_lock_hand_over: the next pending invocation becomes the holder.
UPDATE object_locks SET holder_id = $3 WHERE service = $1 AND object_key = $2

-- object_lock_delete: nobody waits: the key is free.
DELETE FROM object_locks WHERE service = $1 AND object_key = $2

-- object_state_get: read one state value of an object key.
SELECT value FROM object_state WHERE service = $1 AND object_key = $2 AND name = $3

-- object_state_set: write one state value.
INSERT INTO object_state (service, object_key, name, value) VALUES ($1, $2, $3, $4)
ON CONFLICT (service, object_key, name) DO UPDATE SET value = excluded.value

-- object_state_clear: remove one state value.
DELETE FROM object_state WHERE service = $1 AND object_key = $2 AND name = $3

-- deployment_insert: register a deployment. An identity that exists inserts nothing (no
-- row back); a concurrent registration of the same identity waits for the first to commit.
INSERT INTO deployments (id, created_at, identity, definition) VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (identity) WHERE identity IS NOT NULL DO NOTHING
RETURNING *

-- deployment_by_identity: the deployment registered under an identity.
SELECT * FROM deployments WHERE identity = $1

-- deployment_service_insert: a service a deployment serves.
INSERT INTO deployment_services (deployment_id, service, kind, retention_ms)
VALUES ($1, $2, $3, $4)

-- deployment_handler_insert: a handler a deployment serves, with its resolved retry policy.
INSERT INTO deployment_handlers (deployment_id, service, handler, shared, retry_policy)
VALUES ($1, $2, $3, $4, $5::jsonb)

-- deployment_get: one deployment.
SELECT * FROM deployments WHERE id = $1

-- deployments_all: every deployment, newest first, optionally those serving one service.
SELECT d.* FROM deployments d
WHERE $1::text IS NULL
   OR EXISTS (SELECT 1 FROM deployment_services s WHERE s.deployment_id = d.id AND s.service = $1)
ORDER BY d.seq DESC

-- deployment_services_of: the services and handlers of deployments.
SELECT s.deployment_id, s.service, s.kind, s.retention_ms, h.handler, h.shared, h.retry_policy
FROM deployment_services s JOIN deployment_handlers h USING (deployment_id, service)
WHERE s.deployment_id = ANY($1::text[])
ORDER BY s.deployment_id, s.service, h.handler

-- deployments_pinned: not-completed invocations pinned to each deployment; the states are
-- named ($2) so that the (deployment_id, state) index answers it without the completed ones.
SELECT deployment_id, count(*) AS n FROM invocations
WHERE deployment_id = ANY($1::text[]) AND state = ANY($2::text[])
GROUP BY deployment_id

-- worker_sessions_of: the worker sessions of deployments, live or not heard of for a while.
SELECT * FROM worker_sessions WHERE deployment_id = ANY($1::text[])
ORDER BY deployment_id, connected_at, id

-- worker_session_seen: a worker session opened (its hello) or is alive (a heart-beat); a
-- row the sweep removed meanwhile comes back. No row back: the deployment is unknown.
INSERT INTO worker_sessions (id, deployment_id, worker_name, server, connected_at, last_seen_at)
SELECT $1, d.id, $3, $4, $5, $5 FROM deployments d WHERE d.id = $2
ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at
RETURNING id

-- worker_session_close: the stream ended: the session goes, and its deployment keeps when
-- a worker of it was last seen.
WITH s AS (DELETE FROM worker_sessions WHERE id = $1 RETURNING deployment_id)
UPDATE deployments d SET last_seen_at = greatest(d.last_seen_at, $2)
FROM s WHERE d.id = s.deployment_id

-- worker_sessions_sweep: sessions not heard of since $1 died with their server (its
-- streams never closed): remove them, keeping when their deployments were last seen.
-- SKIP LOCKED, so that N servers sweep side by side.
WITH s AS (
    DELETE FROM worker_sessions WHERE id IN (
        SELECT id FROM worker_sessions WHERE last_seen_at < $1 ORDER BY id
        FOR UPDATE SKIP LOCKED
    )
    RETURNING deployment_id, last_seen_at
), m AS (
    SELECT deployment_id, max(last_seen_at) AS seen FROM s GROUP BY deployment_id
)
UPDATE deployments d SET last_seen_at = greatest(d.last_seen_at, m.seen)
FROM m WHERE d.id = m.deployment_id

-- invocation_get_with_worker: one invocation and, unless it completed, the deployment that
-- runs it (its own; before its first attempt, the newest serving its service), whether a
-- worker of that deployment was heard of since $2, and when one was last seen.
SELECT i.*, w.deployment_id AS worker_deployment_id, w.live AS worker_live,
       w.last_seen AS worker_last_seen
FROM invocations i
LEFT JOIN LATERAL (
    SELECT d.id AS deployment_id,
           EXISTS (SELECT 1 FROM worker_sessions s
                   WHERE s.deployment_id = d.id AND s.last_seen_at >= $2) AS live,
           greatest(d.last_seen_at, (SELECT max(s.last_seen_at) FROM worker_sessions s
                                     WHERE s.deployment_id = d.id)) AS last_seen
    FROM deployments d
    WHERE i.state <> 'completed'
      AND d.id = coalesce(i.deployment_id, (
          SELECT s.deployment_id FROM deployment_services s
          JOIN deployments n ON n.id = s.deployment_id
          WHERE s.service = i.service ORDER BY n.seq DESC LIMIT 1))
) w ON true
WHERE i.id = $1

-- handler_latest: the newest deployment serving a service, and that handler in it if any.
SELECT s.deployment_id, s.kind, s.retention_ms, h.handler, h.shared, h.retry_policy
FROM deployment_services s
JOIN deployments d ON d.id = s.deployment_id
LEFT JOIN deployment_handlers h
       ON h.deployment_id = s.deployment_id AND h.service = s.service AND h.handler = $2
WHERE s.service = $1
ORDER BY d.seq DESC LIMIT 1

-- handler_in_deployment: a handler's definition in one deployment (retry policy, retention).
SELECT s.kind, s.retention_ms, h.shared, h.retry_policy
FROM deployment_services s
JOIN deployment_handlers h USING (deployment_id, service)
WHERE s.deployment_id = $1 AND s.service = $2 AND h.handler = $3

-- ready_claim: lock ready invocations a deployment's workers may run: pinned to it, or
-- not pinned yet and the deployment is the newest serving their service.
WITH latest AS (
    SELECT DISTINCT ON (s.service) s.service, s.deployment_id
    FROM deployment_services s JOIN deployments d ON d.id = s.deployment_id
    ORDER BY s.service, d.seq DESC
)
SELECT i.* FROM invocations i
WHERE i.state = 'ready'
  AND (i.deployment_id = $1
       OR (i.deployment_id IS NULL
           AND i.service IN (SELECT service FROM latest WHERE deployment_id = $1)))
ORDER BY i.id
LIMIT $2
FOR UPDATE OF i SKIP LOCKED

-- due_claim: lock invocations whose timer is due (scheduled, retry, sleep, lease).
SELECT * FROM invocations WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED

-- due_next: when the next timer is due, so the timer loop can sleep until then.
SELECT min(due_at) FROM invocations WHERE due_at IS NOT NULL

-- session_leases_renew: a worker heart-beat renews the leases of the attempts the session
-- still has in flight (not those the worker gave up on). The rows are locked in ID order
-- first, as by every other writer: an UPDATE by id = ANY(...) locks them in whatever order
-- its plan visits them, and deadlocks with a batch that locks them in ID order. The locked
-- rows are then updated by primary key: a join with the CTE may be planned as a nested loop
-- over both (invocations often has no statistics yet), quadratic in the session's attempts.
WITH locked AS (
    SELECT id FROM invocations
    WHERE id = ANY($2::text[]) AND session_id = $1 AND state = 'running'
    ORDER BY id FOR UPDATE
)
UPDATE invocations SET due_at = $3
WHERE id = ANY(ARRAY(SELECT id FROM locked)) AND session_id = $1 AND state = 'running'

-- session_leases_expire: the worker's stream closed: its leases lapse now. Locked in ID
-- order first, then updated by primary key (see session_leases_renew).
WITH locked AS (
    SELECT id FROM invocations WHERE session_id = $1 AND state = 'running'
    ORDER BY id FOR UPDATE
)
UPDATE invocations SET due_at = $2
WHERE id = ANY(ARRAY(SELECT id FROM locked)) AND session_id = $1 AND state = 'running'

-- notify_many: notifications to every server's listener on one channel, one per payload,
-- delivered at commit (notify.py).
SELECT count(pg_notify($1, p)) FROM unnest($2::text[]) AS p

-- invocation_call_trees: for each invocation of $1, the not-completed invocations it
-- called, recursively: one (root, id) row per member. Each step reads the callers' index
-- through a LATERAL subquery (OFFSET 0 keeps it one): a join would be planned over the
-- whole table while invocations has no statistics (a fresh or fast-growing database).
WITH RECURSIVE tree(root, id) AS (
    SELECT r.root, c.id FROM unnest($1::text[]) AS r(root)
    CROSS JOIN LATERAL (SELECT i.id FROM invocations i
                        WHERE i.caller_id = r.root AND i.state <> 'completed' OFFSET 0) c
    UNION
    SELECT t.root, c.id FROM tree t
    CROSS JOIN LATERAL (SELECT i.id FROM invocations i
                        WHERE i.caller_id = t.id AND i.state <> 'completed' OFFSET 0) c
)
SELECT root, id FROM tree

-- invocations_delete: purge: the invocations with their journals and histories (cascade).
DELETE FROM invocations WHERE id = ANY($1::text[])

-- journals_delete: purge-journal: the entries go, the results stay.
DELETE FROM journal_entries WHERE invocation_id = ANY($1::text[])

-- invocations_journal_purged: mark the journals gone, so a restart is refused clearly.
UPDATE invocations SET journal_length = 0, journal_purged = true, modified_at = $2
WHERE id = ANY($1::text[]) RETURNING *

-- journal_copy_prefix: restart from a prefix: the new invocation replays entries [0, $3).
INSERT INTO journal_entries (invocation_id, idx, kind, name, completed, value, failure_code,
    failure_message, target_service, target_handler, target_key, argument, callee_id, wake_at,
    delay_ms, created_at)
SELECT $2, idx, kind, name, completed, value, failure_code, failure_message, target_service,
       target_handler, target_key, argument, callee_id, wake_at, delay_ms, $4
FROM journal_entries WHERE invocation_id = $1 AND idx < $3

-- journal_cancel_seen: where the handler saw its cancellation, if before entry $2: a cancel
-- entry, or a sleep the cancellation cut short (a restart must not replay either).
SELECT min(idx) FROM journal_entries
WHERE invocation_id = $1 AND idx < $2
  AND (kind = 'cancel' OR (kind = 'sleep' AND failure_code = 'CANCELLED'))

-- invocation_journal_length: the journal length of a restarted invocation's copied prefix.
UPDATE invocations SET journal_length = $2 WHERE id = $1 RETURNING *

-- audit_insert: record operator requests (refused ones too).
INSERT INTO audit_log (at, identity, operation, invocation_id, reason, request_id, result,
    state_after, new_invocation_id, response, bulk_operation_id)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[])

-- audit_by_request_ids: the successful requests these request_ids already named.
SELECT * FROM audit_log WHERE request_id = ANY($1::text[]) AND result = 'OK'

-- audit_page: a page of the audit log, newest first, optionally about one invocation, of
-- one identity, of operations containing a word, in a time range. Only the invocation has
-- an index: the others filter the newest-first walk of the primary key, which stops at the
-- page's end (the log is read newest first, and most looks are at the recent past).
SELECT * FROM audit_log
WHERE ($1::text IS NULL OR invocation_id = $1) AND ($2::int8 IS NULL OR id < $2)
  AND ($4::text IS NULL OR identity = $4)
  AND ($5::text IS NULL OR strpos(lower(operation), lower($5)) > 0)
  AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7)
ORDER BY id DESC LIMIT $3

-- invocations_expired_delete: the retention cleaner: delete completed invocations past
-- their retention, a batch at a time; SKIP LOCKED so that N servers share the work.
DELETE FROM invocations
WHERE id IN (
    SELECT id FROM invocations
    WHERE expires_at <= $1 AND state = 'completed'
    ORDER BY expires_at LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id, service, handler, object_key, traceparent, pending_links

-- bulk_running_count: bulk operations running now; new ones wait for the others to be
-- counted (the lock is released at commit), so the limit holds across servers.
SELECT count(*) FROM bulk_operations, (SELECT pg_advisory_xact_lock(hashtext('invoctl_bulk'))) l
WHERE state = 'running'

-- bulk_insert: a new bulk operation, owned by the server that starts it.
INSERT INTO bulk_operations (id, kind, state, selector, deployment, reason, identity,
    request_id, max_per_second, traceparent, owner, lease_until, created_at, updated_at)
VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
RETURNING *

-- bulk_matched: how many invocations the new operation snapshotted.
UPDATE bulk_operations SET matched = $2::bigint,
    state = CASE WHEN $2::bigint = 0 THEN 'completed' ELSE state END,
    completed_at = CASE WHEN $2::bigint = 0 THEN updated_at END
WHERE id = $1 RETURNING *

-- bulk_get: one bulk operation.
SELECT * FROM bulk_operations WHERE id = $1

-- bulk_page: a page of bulk operations, newest first, keyset-paged by ID.
SELECT * FROM bulk_operations
WHERE ($1::text[] IS NULL OR state = ANY($1)) AND ($2::text IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3

-- bulk_members_after: the next page of a bulk operation's invocations, in ID order, after
-- the cursor ('' before the first page: a plain range, so the index finds the page).
SELECT invocation_id FROM bulk_operation_members
WHERE bulk_id = $1 AND invocation_id > $2
ORDER BY invocation_id LIMIT $3

-- bulk_advance: a page is done: counts, cursor, the first failures ($11 at most in all), a
-- renewed lease; completed once nothing is left. Only from the cursor the page started
-- at ($13, which the page before it left), and only while this server runs it: a stop,
-- or another server taking over after the lease lapsed, ends it here (no row: the page
-- rolls back). Waits for the page before it, which holds the row until it commits.
-- Notifies watchers on every server (at commit).
WITH u AS (
    UPDATE bulk_operations SET
        succeeded = succeeded + $2, skipped = skipped + $3, failed = failed + $4,
        failures = failures || (
            SELECT coalesce(jsonb_agg(f), '[]'::jsonb) FROM (
                SELECT f FROM jsonb_array_elements($5::jsonb) AS f
                LIMIT greatest(0, $11 - jsonb_array_length(failures))
            ) AS room
        ),
        cursor = $6, lease_until = $7, updated_at = $8,
        state = CASE WHEN $9::bool OR succeeded + skipped + failed + $2 + $3 + $4 >= matched
                     THEN 'completed' ELSE state END,
        completed_at = CASE WHEN $9::bool OR succeeded + skipped + failed + $2 + $3 + $4 >= matched
                            THEN $8::timestamptz END
    WHERE id = $1 AND owner = $12 AND state = 'running' AND lease_until > $8
      AND cursor IS NOT DISTINCT FROM $13
    RETURNING *
)
SELECT u.* FROM u, (SELECT count(pg_notify($10, $1))) AS n

-- bulk_stop: stop a running bulk operation (a page advancing finishes first: it holds the
-- row; one still acting rolls back at its advance). No row back: it was not running.
WITH s AS (
    UPDATE bulk_operations SET state = 'stopped', completed_at = $2, updated_at = $2,
        owner = NULL, lease_until = NULL
    WHERE id = $1 AND state = 'running'
    RETURNING *
)
SELECT s.* FROM s, (SELECT count(pg_notify($3, id)) FROM s) AS n

-- bulk_claim: running bulk operations whose server stopped renewing them: take them over.
UPDATE bulk_operations SET owner = $1, lease_until = $2
WHERE id IN (
    SELECT id FROM bulk_operations
    WHERE state = 'running' AND (lease_until IS NULL OR lease_until < $3)
    ORDER BY created_at LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING *

-- bulk_renew: keep the lease while a throttled operation waits between pages.
UPDATE bulk_operations SET lease_until = $3
WHERE id = $1 AND owner = $2 AND state = 'running'

-- bulk_release: a stopping server hands its operations over at once.
UPDATE bulk_operations SET lease_until = NULL
WHERE owner = $1 AND state = 'running'

-- metrics_invocation_states: invocations per service and state, with how long ago the
-- longest in that state entered it (modified_at: an invocation waiting, ready or backing
-- off, is not written to), for the metrics endpoint. A full count (the table is read whole): the
-- endpoint runs it at most every --metrics-refresh-seconds, however often it is scraped.
SELECT service, state, count(*) AS n,
       extract(epoch FROM clock_timestamp() - min(modified_at))::float8 AS oldest_seconds
FROM invocations GROUP BY service, state

-- metrics_bulk_states: bulk operations per kind and state, for the metrics endpoint.
SELECT kind, state, count(*) AS n FROM bulk_operations GROUP BY kind, state

-- metrics_bulk_running: the progress of the running bulk operations (the partial index of
-- running ones), for the metrics endpoint.
SELECT id, kind, matched, succeeded, skipped, failed FROM bulk_operations
WHERE state = 'running' ORDER BY id

-- console_key: the key the console signs its cookies with, shared by every server; the
-- first to ask draws it ($1, a random key that loses to one already stored).
WITH drawn AS (
    INSERT INTO console_keys (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING
    RETURNING key
)
SELECT key FROM drawn UNION ALL SELECT key FROM console_keys WHERE id = 1 LIMIT 1

-- statistics_outgrown: of the tables named ($1), those with more than twice the rows
-- Postgres last recorded for them (reltuples, which ANALYZE and VACUUM set), and over
-- twice $2: live rows of committed transactions (the cumulative statistics, which each
-- backend reports at least once a second while busy). A generic plan made while such a
-- table was small (a scan of its few pages) is kept until its statistics change, however
-- large the table has grown since. Rows, not pages: an ANALYZE run while a large insert
-- is in flight counts its pages but none of its rows, and the planner then takes the
-- table for empty until the next ANALYZE. A table whose autovacuum an operator turned off
-- (any spelling of false Postgres accepts) is left alone. `may_analyze`: the server's role
-- owns the table (or is a member of its owner); Postgres skips, with only a warning, a
-- table it may not analyze.
SELECT c.relname, pg_has_role(c.relowner, 'USAGE') AS may_analyze FROM pg_class c
WHERE c.oid = ANY($1::text[]::regclass[])
  AND pg_stat_get_live_tuples(c.oid) > 2 * greatest(c.reltuples::int8, $2::int8)
  AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
                  WHERE o ~* '^autovacuum_enabled=(f|fa|fal|fals|false|n|no|of|off|0)$')
ORDER BY c.relname
