-- Fewer index entries per state change (issue 15, point 5). A state change is never a HOT
-- update (state is in the key or the predicate of most indexes of invocations), so it
-- writes one entry into every index whose predicate the new row version matches. These
-- are the indexes whose entries no query reads. bench/state_change_cost.py measures it.

-- invocation_transitions had two indexes, the bigserial primary key and (invocation_id,
-- id), and every transition wrote both. Only the second is read: the history of one
-- invocation in order (transitions_of) and the cascade of a purge; nothing looks a row up
-- by its id alone. The pair is unique, so it becomes the primary key (a replica identity
-- is kept for logical replication) and the other index goes: one entry per transition.
ALTER TABLE invocation_transitions DROP CONSTRAINT invocation_transitions_pkey;
DROP INDEX invocation_transitions_by_invocation;
ALTER TABLE invocation_transitions ADD CONSTRAINT invocation_transitions_pkey
    PRIMARY KEY (invocation_id, id);

-- invocations_by_caller is read only by the walks of call trees (invocation_call_trees,
-- invocations_lock_batch), which look for the not-completed invocations a node called
-- (`caller_id = $x AND state <> 'completed'`, which implies this predicate). Without the
-- completed ones, completing a callee writes no entry into it, and it holds the calls in
-- flight rather than every call kept for retention.
DROP INDEX invocations_by_caller;
CREATE INDEX invocations_by_caller ON invocations (caller_id)
    WHERE caller_id IS NOT NULL AND state <> 'completed';
