-- What each artifact already registered under existing Hamiltonians reads: its
-- data source's parameters (dataset, slice) and its file's data URI, to compare
-- with the plan before metadata is updated.
-- Reads: nodes, data_sources, data_source_asset_association, assets.
SELECT h.key AS parent_key, c.key, d.management, d.parameters, a.data_uri
FROM nodes AS h
JOIN nodes AS c ON c.parent = h.id
JOIN data_sources AS d ON d.node_id = c.id
LEFT JOIN data_source_asset_association AS x ON x.data_source_id = d.id
LEFT JOIN assets AS a ON a.id = x.asset_id
WHERE h.parent = :parent
