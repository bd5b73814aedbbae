-- The container children of one node that meet every search condition, in Tiled's
-- default order (id), with their metadata as the JSON text the catalog holds, each
-- text ended by a newline: the column's buffer is then newline-delimited JSON, what
-- Arrow's JSON reader reads as it is.
-- The conditions are the ones Tiled's catalog adapter issues for Key(...) queries
-- (locate/condition_*), so the answer is the one its search gives.
-- Reads: nodes. Binds (qmark, in order): the parent's id, then each condition's.
-- {conditions}: zero or more " AND <condition>", composed by the caller from files.
SELECT key, metadata || char(10) FROM nodes
WHERE nodes.parent = ? AND nodes.structure_family = 'container'{conditions}
ORDER BY nodes.id
