-- invoctl schema v1. Migrations are append-only: never edit a released file, add 000N.

CREATE TABLE deployments (
    id          text COLLATE "C" PRIMARY KEY,
    seq         bigserial NOT NULL UNIQUE,  -- registration order: "latest" = highest seq
    created_at  timestamptz NOT NULL
);

CREATE TABLE deployment_services (
    deployment_id  text COLLATE "C" NOT NULL REFERENCES deployments (id),
    service        text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('service', 'virtual_object')),
    retention_ms   bigint NOT NULL CHECK (retention_ms >= 0),
    PRIMARY KEY (deployment_id, service)
);
CREATE INDEX deployment_services_by_service ON deployment_services (service);

CREATE TABLE deployment_handlers (
    deployment_id  text COLLATE "C" NOT NULL,
    service        text NOT NULL,
    handler        text NOT NULL,
    shared         boolean NOT NULL,
    retry_policy   jsonb NOT NULL,  -- resolved: defaults <- service <- handler
    PRIMARY KEY (deployment_id, service, handler),
    FOREIGN KEY (deployment_id, service) REFERENCES deployment_services (deployment_id, service)
);

CREATE TABLE invocations (
    id              text COLLATE "C" PRIMARY KEY,
    service         text NOT NULL,
    handler         text NOT NULL,
    object_key      text,  -- NULL for plain services
    exclusive       boolean NOT NULL,  -- needs its object key's lock to run
    state           text NOT NULL CHECK (state IN ('pending', 'scheduled', 'ready', 'running',
                                                   'backing-off', 'suspended', 'paused', 'completed')),
    outcome         text CHECK (outcome IN ('succeeded', 'failed', 'cancelled', 'killed')),
    deployment_id   text COLLATE "C" REFERENCES deployments (id),
    input           text NOT NULL,
    headers         jsonb NOT NULL DEFAULT '{}',
    idempotency_key text,
    caller_id       text COLLATE "C",
    caller_entry    integer,
    restarted_from  text COLLATE "C",
    attempt         integer NOT NULL DEFAULT 0,  -- the fencing token of the current attempt
    session_id      text COLLATE "C",  -- worker session running the attempt
    -- The one timer column: scheduled -> run_at, backing-off -> next retry,
    -- suspended on a sleep -> wake time, running -> lease expiry.
    due_at          timestamptz,
    waiting_on      integer,  -- suspended: the journal entry awaited
    last_failure_code    text,
    last_failure_message text,
    output          text,
    failure_code    text,
    failure_message text,
    journal_length  integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    modified_at     timestamptz NOT NULL,
    completed_at    timestamptz,
    expires_at      timestamptz,  -- completed: end of retention
    CONSTRAINT outcome_iff_completed CHECK ((state = 'completed') = (outcome IS NOT NULL)),
    CONSTRAINT completed_at_iff_completed CHECK ((state = 'completed') = (completed_at IS NOT NULL)),
    CONSTRAINT running_has_session CHECK (state <> 'running' OR session_id IS NOT NULL),
    CONSTRAINT keyed_iff_exclusive_has_key CHECK (NOT exclusive OR object_key IS NOT NULL)
);
CREATE UNIQUE INDEX invocations_idempotency
    ON invocations (service, handler, coalesce(object_key, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX invocations_due ON invocations (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX invocations_ready ON invocations (id) WHERE state = 'ready';
CREATE INDEX invocations_pending_by_key
    ON invocations (service, object_key, id) WHERE state = 'pending';
CREATE INDEX invocations_by_target ON invocations (service, handler, state);
CREATE INDEX invocations_by_key ON invocations (service, object_key) WHERE object_key IS NOT NULL;
CREATE INDEX invocations_by_deployment ON invocations (deployment_id);
CREATE INDEX invocations_by_caller ON invocations (caller_id) WHERE caller_id IS NOT NULL;
CREATE INDEX invocations_by_session ON invocations (session_id) WHERE state = 'running';
CREATE INDEX invocations_expiry ON invocations (expires_at) WHERE expires_at IS NOT NULL;

-- The exclusive lock of an object key: at most one holder; the others wait in 'pending'.
CREATE TABLE object_locks (
    service     text NOT NULL,
    object_key  text NOT NULL,
    holder_id   text COLLATE "C" NOT NULL
                REFERENCES invocations (id) DEFERRABLE INITIALLY DEFERRED,  -- set before the holder row is inserted
    PRIMARY KEY (service, object_key)
);
CREATE UNIQUE INDEX object_locks_holder ON object_locks (holder_id);

CREATE TABLE object_state (
    service     text NOT NULL,
    object_key  text NOT NULL,
    name        text NOT NULL,
    value       text NOT NULL,
    PRIMARY KEY (service, object_key, name)
);

CREATE TABLE journal_entries (
    invocation_id   text COLLATE "C" NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    idx             integer NOT NULL CHECK (idx >= 0),
    kind            text NOT NULL CHECK (kind IN ('run', 'sleep', 'call', 'send',
                                                  'get_state', 'set_state', 'clear_state')),
    name            text NOT NULL DEFAULT '',
    completed       boolean NOT NULL,
    value           text,
    failure_code    text,
    failure_message text,
    target_service  text,
    target_handler  text,
    target_key      text,
    argument        text,
    callee_id       text COLLATE "C",
    wake_at         timestamptz,
    delay_ms        bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (invocation_id, idx)
);

CREATE TABLE invocation_transitions (
    id             bigserial PRIMARY KEY,
    invocation_id  text COLLATE "C" NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    from_state     text,
    to_state       text NOT NULL,
    event          text NOT NULL,
    actor          text NOT NULL,
    at             timestamptz NOT NULL,
    attempt        integer NOT NULL,
    trace_id       text,
    span_id        text,
    detail         text
);
CREATE INDEX invocation_transitions_by_invocation ON invocation_transitions (invocation_id, id);
