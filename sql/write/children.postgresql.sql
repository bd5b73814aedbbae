-- The children of one node that have one of the given keys (a text array), to
-- tell new keys from existing ones: looked up through UNIQUE(key, parent), so the
-- cost follows the keys written, not the size of the catalog.
-- Reads: nodes.
SELECT id, key, structure_family, metadata
FROM nodes
WHERE parent = :parent AND key = ANY(CAST(:keys AS text[]))
