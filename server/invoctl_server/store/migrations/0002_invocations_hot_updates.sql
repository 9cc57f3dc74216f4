-- Leave room in every page of invocations for HOT updates: most updates (journal growth,
-- lease renewal of unindexed columns) then rewrite no index entry.
ALTER TABLE invocations SET (fillfactor = 80);
ALTER TABLE journal_entries SET (fillfactor = 90);
