-- The artifacts already registered under the given existing Hamiltonians (node
-- ids, an integer array) of one node.
-- Reads: nodes.
SELECT h.key AS parent_key, c.key
FROM nodes AS h
JOIN nodes AS c ON c.parent = h.id
WHERE h.parent = :parent AND h.id = ANY(CAST(:ids AS integer[]))
