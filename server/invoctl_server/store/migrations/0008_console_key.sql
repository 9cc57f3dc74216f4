-- The web console signs its session cookies with one key that every server on this
-- database shares: a session then works on any replica behind a load balancer, and a
-- restart does not log everyone out. The first server to start draws it.
CREATE TABLE console_keys (
    id   integer PRIMARY KEY CHECK (id = 1),
    key  bytea NOT NULL CHECK (length(key) = 32)
);
