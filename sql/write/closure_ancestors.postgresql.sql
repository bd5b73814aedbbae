-- One closure row per ancestor of each new node, at any depth, from its
-- parent's closure rows (parents are written first, level by level).
INSERT INTO nodes_closure (ancestor, descendant, depth)
SELECT p.ancestor, n.id, p.depth + 1
FROM nodes AS n
JOIN nodes_closure AS p ON p.descendant = n.parent
WHERE n.id = ANY(:ids)
