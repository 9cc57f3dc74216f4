-- Operator actions: the audit log, and a mark on invocations whose journal was purged.

ALTER TABLE invocations ADD COLUMN journal_purged boolean NOT NULL DEFAULT false;

-- Every operator request, refused ones included. No foreign key: entries outlive the
-- invocations they name (purge keeps them).
CREATE TABLE audit_log (
    id                 bigserial PRIMARY KEY,
    at                 timestamptz NOT NULL,
    identity           text NOT NULL,
    operation          text NOT NULL,
    invocation_id      text COLLATE "C" NOT NULL,
    reason             text NOT NULL DEFAULT '',
    request_id         text,
    result             text NOT NULL,  -- OK, or the reason of the refusal
    state_after        text,
    new_invocation_id  text COLLATE "C",
    response           bytea  -- what a retry of the same request_id answers
);
-- A request_id names one successful request: its retries are answered from here.
CREATE UNIQUE INDEX audit_log_request_id ON audit_log (request_id)
    WHERE request_id IS NOT NULL AND result = 'OK';
CREATE INDEX audit_log_by_invocation ON audit_log (invocation_id, id);
