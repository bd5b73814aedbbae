-- What a delete removes: nodes by structure family, and the assets referenced only
-- from inside the doomed subtrees (Tiled's own rule: assets shared with other nodes stay).
SELECT CAST(n.structure_family AS VARCHAR(32)) AS what, count(*) AS n FROM nodes AS n
WHERE n.id IN (SELECT id FROM delete_doomed) GROUP BY n.structure_family
UNION ALL
SELECT 'asset', count(*) FROM assets AS a
WHERE a.id IN (SELECT x.asset_id FROM data_source_asset_association AS x
               JOIN data_sources AS d ON d.id = x.data_source_id
               WHERE d.node_id IN (SELECT id FROM delete_doomed))
  AND NOT EXISTS (SELECT 1 FROM data_source_asset_association AS x2
                  JOIN data_sources AS d2 ON d2.id = x2.data_source_id
                  WHERE x2.asset_id = a.id AND d2.node_id NOT IN (SELECT id FROM delete_doomed))
