-- The DDL that drops one broker index by name, the name quoted as an identifier
-- (inner quotes doubled) by the database itself: DDL cannot take bound values.
-- Reads: nothing (binds name).
SELECT 'DROP INDEX IF EXISTS "' || replace(CAST(:name AS text), '"', '""') || '"'
