-- The data the catalog itself holds (arrays uploaded into its writable storage,
-- management other than 'external') that only the doomed subtrees use: their files
-- go with their nodes, as Tiled's own delete removes them. Provider files
-- (external) are never touched.
-- Reads: assets, data_source_asset_association, data_sources, delete_doomed.
SELECT DISTINCT a.data_uri
FROM assets AS a
JOIN data_source_asset_association AS x ON x.asset_id = a.id
JOIN data_sources AS d ON d.id = x.data_source_id
WHERE d.node_id IN (SELECT id FROM delete_doomed)
  AND d.management <> 'external'
  AND NOT EXISTS (SELECT 1 FROM data_source_asset_association AS x2
                  JOIN data_sources AS d2 ON d2.id = x2.data_source_id
                  WHERE x2.asset_id = a.id AND d2.node_id NOT IN (SELECT id FROM delete_doomed))
