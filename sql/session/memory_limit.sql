-- DuckDB's memory limit for the rest of a session ($limit, e.g. '192MB'): a rule
-- that ran out of the stage's limit runs once more with the host's, then the
-- stage's limit is set back.
SET memory_limit = $limit
