-- Children of one node, to tell new keys from existing ones.
SELECT id, key, structure_family, metadata FROM nodes WHERE parent = :parent
