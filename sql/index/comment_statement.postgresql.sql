-- The DDL that labels a broker index with the metadata key it serves (what
-- `broker index list` shows), quoted by format() as above.
-- Reads: nothing (binds name and key).
SELECT format('COMMENT ON INDEX %I IS %L', CAST(:name AS text), 'broker metadata index: ' || CAST(:key AS text))
