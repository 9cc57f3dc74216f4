-- A bulk operation's snapshot inserts one bulk_operation_members row per invocation it
-- matched, and the foreign key to bulk_operations checked each of them on its own (a
-- trigger per row): half of the 1 s a snapshot of 100,000 took, before the first page.
-- The rows are only ever inserted by bulk_create, in the transaction that inserts their
-- job's row, and no job is ever deleted, so the key held nothing the insert does not.
-- Should jobs come to be deleted (retention), their members go in the same statement.
ALTER TABLE bulk_operation_members DROP CONSTRAINT bulk_operation_members_bulk_id_fkey;
