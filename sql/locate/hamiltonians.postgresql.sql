-- The container children of one node that meet every search condition, in Tiled's
-- default order (id), with their metadata as JSON text (jsonb's key order, the
-- order Tiled's server sends), each text ended by a newline: the column's buffer
-- is then newline-delimited JSON, what Arrow's JSON reader reads as it is.
-- The conditions are the ones Tiled's catalog adapter issues for Key(...) queries
-- (locate/condition_*), so the answer is the one its search gives and the
-- broker's metadata indexes (index/create_statement) serve it.
-- Reads: nodes. Binds (ADBC, libpq's $n): $1 the parent's id, then each condition's.
-- {conditions}: zero or more " AND <condition>", composed by the caller from files.
SELECT key, CAST(metadata AS text) || chr(10) FROM nodes
WHERE nodes.parent = $1 AND nodes.structure_family = 'container'{conditions}
ORDER BY nodes.id
