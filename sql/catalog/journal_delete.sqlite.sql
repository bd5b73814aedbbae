-- The catalog template is kept in rollback-journal mode: a template opened
-- read-only then leaves no -wal or -shm file beside it (copies are switched to WAL).
PRAGMA journal_mode=DELETE
