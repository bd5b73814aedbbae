-- Not a rule: the check's store written out to its database file once every
-- manifest is read, so that the row rules start with DuckDB's memory free (rows
-- not yet written out stay pinned in memory).
CHECKPOINT
