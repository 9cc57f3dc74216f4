-- Bulk operations (DESIGN.md section 5): a durable job per request, the invocations it
-- matched when it started, and how far it got.

CREATE TABLE bulk_operations (
    id              text COLLATE "C" PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('cancel', 'kill', 'pause', 'resume',
                                                  'purge', 'restart')),
    state           text NOT NULL CHECK (state IN ('running', 'completed', 'stopped')),
    selector        bytea NOT NULL,  -- the BulkSelector as given (protobuf)
    deployment      text NOT NULL DEFAULT '',  -- resume and restart
    reason          text NOT NULL DEFAULT '',
    identity        text NOT NULL,
    request_id      text,
    max_per_second  double precision NOT NULL DEFAULT 0,
    traceparent     text,  -- the request's trace: every page's transitions join it
    matched         bigint NOT NULL DEFAULT 0,
    succeeded       bigint NOT NULL DEFAULT 0,
    skipped         bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    failures        jsonb NOT NULL DEFAULT '[]',  -- the first ones, with reasons
    cursor          text COLLATE "C",  -- the last invocation ID processed
    owner           text,  -- the server running it
    lease_until     timestamptz,  -- another server takes over after this
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    completed_at    timestamptz,
    CONSTRAINT counts_add_up CHECK (succeeded + skipped + failed <= matched)
);
CREATE UNIQUE INDEX bulk_operations_request_id ON bulk_operations (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX bulk_operations_running ON bulk_operations (lease_until) WHERE state = 'running';

-- The invocations a bulk operation matched when it started, processed in ID order.
CREATE TABLE bulk_operation_members (
    bulk_id         text COLLATE "C" NOT NULL REFERENCES bulk_operations (id)
                        ON DELETE CASCADE,
    invocation_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (bulk_id, invocation_id)
);

-- A bulk request is audited once, under its job's ID.
ALTER TABLE audit_log ADD COLUMN bulk_operation_id text COLLATE "C";
