-- The broker's metadata indexes on the catalog's nodes (named broker_ix_...), with
-- the key each serves (its comment), its definition and its size.
-- Reads: pg_index, pg_class (the nodes table of the current schema).
SELECT c.relname AS name,
       obj_description(c.oid, 'pg_class') AS label,
       pg_get_indexdef(c.oid) AS definition,
       pg_relation_size(c.oid) AS bytes
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass('nodes')
  AND starts_with(c.relname, 'broker_ix_')
ORDER BY c.relname
