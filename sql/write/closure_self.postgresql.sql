-- Depth-0 closure rows for the new nodes (what the trigger's first INSERT does).
INSERT INTO nodes_closure (ancestor, descendant, depth)
SELECT id, id, 0 FROM nodes WHERE id = ANY(:ids)
