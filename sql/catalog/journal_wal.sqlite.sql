-- Write-ahead logging: readers (tiled serve) keep reading the last committed state
-- while the broker writes, instead of failing with "database is locked". Persistent
-- in the file. Answers the journal mode now in force ('wal', unless the filesystem
-- cannot share memory, e.g. some network filesystems).
PRAGMA journal_mode=WAL
