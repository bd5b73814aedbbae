-- Rule: the metadata document each node will store stays under $limit bytes
-- (1 MiB). Tiled returns the metadata of every node on a listing or search page
-- (100 nodes by default), and the SQLite catalog indexes all of it for full-text
-- search: a 10 MB value makes every page that shows the node that slow. Counted
-- is what Tiled stores: for a Hamiltonian, huid, its columns and the Mode A
-- locators of all its artifacts; for an artifact, its columns laid over the
-- dataset's HDF5 attributes (both counted whole).
-- Reads: hamiltonians, artifacts (with metadata_bytes: the size of the row's own
-- columns as JSON), probes (path, attrs).
WITH locator_bytes AS (
    SELECT a.dataset_name, a.huid,
           sum(strlen('"path_' || a.type || '":' || to_json(p.path) || ',"dataset_' || a.type || '":'
                      || to_json(a.dataset) || ',"index_' || a.type || '":' || coalesce(a.index::VARCHAR, 'null')
                      || ',')) AS bytes
    FROM artifacts AS a
    JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
    GROUP BY ALL
),
sized AS (
    SELECT h.manifest, h.row, 'Hamiltonian' AS what,
           h.metadata_bytes + strlen('"huid":' || coalesce(to_json(h.huid), 'null') || ',') + coalesce(l.bytes, 0)
               AS size
    FROM hamiltonians AS h
    LEFT JOIN locator_bytes AS l ON l.dataset_name = h.dataset_name AND l.huid = h.huid
    UNION ALL
    SELECT a.manifest, a.row, 'artifact', a.metadata_bytes + coalesce(strlen(p.attrs), 0)
    FROM artifacts AS a
    LEFT JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
)
SELECT 'metadata_too_large' AS rule, 'error' AS severity, manifest, row, NULL AS "column", NULL AS value,
       'the ' || what || '''s metadata would be ' || size || ' bytes as JSON' ||
       CASE WHEN what = 'Hamiltonian' THEN ' (its columns and the Mode A locators of its artifacts)'
            ELSE ' (its columns and the dataset''s HDF5 attributes)' END
           || '; the limit is ' || $limit || ' bytes: put bulky values in the HDF5 file' AS message
FROM sized
WHERE size > $limit
