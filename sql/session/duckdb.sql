-- Session settings of every DuckDB connection the broker opens: no progress bar
-- on the terminal (the broker draws its own, and --json output must stay clean).
SET enable_progress_bar = false
