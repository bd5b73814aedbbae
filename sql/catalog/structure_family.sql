-- The structure family of one node (container, array, ...): a parent path must
-- name containers only.
-- Reads: nodes.
SELECT structure_family FROM nodes WHERE id = :id
