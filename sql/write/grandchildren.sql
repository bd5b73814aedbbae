-- The children of the children of one node: the artifacts already registered
-- under existing Hamiltonians.
SELECT h.key AS parent_key, c.key
FROM nodes AS h
JOIN nodes AS c ON c.parent = h.id
WHERE h.parent = :parent
