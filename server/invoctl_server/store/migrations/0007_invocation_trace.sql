-- One invocation's life is one trace (DESIGN.md section 6). `traceparent` is the W3C
-- traceparent of the span of its accepted transition: the transitions no request causes
-- (claims, suspensions, wake-ups, retries, worker reports, the cleaner) are its children.
-- NULL when tracing was off as it was accepted, or it was accepted before this migration:
-- those transitions start traces of their own, as they did before.
ALTER TABLE invocations ADD COLUMN traceparent text;
-- The traceparents of the transitions operator requests made on it (each in its request's
-- trace) since its last transition in its own trace: the next one links to them and clears
-- them, so that its own trace leads to what the operators did.
ALTER TABLE invocations ADD COLUMN pending_links text[];
