-- Cancellation (DESIGN.md section 4): when a cancel reached an invocation, and whether its
-- handler has yet to see it (the next attempt or the running one delivers it).

ALTER TABLE invocations ADD COLUMN cancelled_at timestamptz;
ALTER TABLE invocations ADD COLUMN cancel_pending boolean NOT NULL DEFAULT false;
ALTER TABLE invocations ADD CONSTRAINT cancel_pending_is_cancelled
    CHECK (NOT cancel_pending OR cancelled_at IS NOT NULL);

-- The point where a handler saw its cancellation; replays raise it there again.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check
    CHECK (kind IN ('run', 'sleep', 'call', 'send', 'get_state', 'set_state', 'clear_state',
                    'cancel'));
