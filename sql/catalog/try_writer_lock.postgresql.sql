-- Take the broker's writer lock on this database without waiting (true when taken).
-- A session-level advisory lock: PostgreSQL releases it when the session ends, so a
-- killed broker never leaves it behind. Advisory locks are local to one database.
SELECT pg_try_advisory_lock(hashtext('manifest-broker writer'))
