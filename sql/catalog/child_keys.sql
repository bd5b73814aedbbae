-- Keys of the children of one node.
SELECT key FROM nodes WHERE parent = :parent
