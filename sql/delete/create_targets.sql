-- The nodes named on the command line (ids), for the set-based delete.
CREATE TEMPORARY TABLE delete_targets (id INTEGER PRIMARY KEY)
