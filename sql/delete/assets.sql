-- Assets referenced only from inside the doomed subtrees, as Tiled's delete does.
-- The files themselves are never touched (every broker data source is external).
DELETE FROM assets
WHERE id IN (SELECT x.asset_id FROM data_source_asset_association AS x
             JOIN data_sources AS d ON d.id = x.data_source_id
             WHERE d.node_id IN (SELECT id FROM delete_doomed))
  AND NOT EXISTS (SELECT 1 FROM data_source_asset_association AS x2
                  JOIN data_sources AS d2 ON d2.id = x2.data_source_id
                  WHERE x2.asset_id = assets.id AND d2.node_id NOT IN (SELECT id FROM delete_doomed))
