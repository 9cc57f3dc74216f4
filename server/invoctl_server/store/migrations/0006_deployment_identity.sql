-- Deployments are versions of the worker code, not processes (DESIGN.md section 2): a
-- deployment is named by its identity (the worker's `deployment=` name, or a hash of its
-- code), so that restarts and replicas of one version share it. `definition` is what it
-- serves, canonical, so that a re-registration with other services is refused, not merged.
-- Deployments registered before this migration have no identity.
ALTER TABLE deployments ADD COLUMN identity text;
ALTER TABLE deployments ADD COLUMN definition jsonb;
-- When a worker of the deployment was last seen, kept when its last session ends.
ALTER TABLE deployments ADD COLUMN last_seen_at timestamptz;
CREATE UNIQUE INDEX deployments_identity ON deployments (identity) WHERE identity IS NOT NULL;

-- The worker sessions connected to any server: every server can tell whether a deployment
-- has a live worker. A row lives while its stream is open and is refreshed by the
-- worker's heart-beats; a server killed with its streams leaves rows that stop being
-- refreshed, which the cleaner deletes.
CREATE TABLE worker_sessions (
    id              text COLLATE "C" PRIMARY KEY,
    deployment_id   text COLLATE "C" NOT NULL REFERENCES deployments (id),
    worker_name     text NOT NULL,
    server          text NOT NULL,
    connected_at    timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL
);
CREATE INDEX worker_sessions_by_deployment ON worker_sessions (deployment_id);

-- How many not-completed invocations a deployment holds (deployments ls, draining a
-- version): the deployment index gains the state, which every state change writes anyway
-- (invocations_by_target has it), so the count reads the index alone.
DROP INDEX invocations_by_deployment;
CREATE INDEX invocations_by_deployment ON invocations (deployment_id, state);
