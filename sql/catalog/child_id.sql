-- The node id of one child, to walk a path such as a/b/c from the root.
SELECT id FROM nodes WHERE parent = :parent AND key = :key
