-- Keys of the children of one node, with the huid a registered Hamiltonian carries
-- in its metadata (a re-run of the same dataset is not a collision).
-- Reads: nodes.
SELECT key, json_extract(metadata, '$.huid') AS huid FROM nodes WHERE parent = :parent
