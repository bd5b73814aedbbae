-- One array node per artifact: parent key, key (= type), metadata, data source
-- parameters ({"dataset": ..., "slice": "<index>"} for batched rows), the
-- resolved file with what identifies it (size, times, device, inode) and the
-- structure group it belongs to (shape, chunks, Tiled's data_type, batched).
-- attrs: the dataset's HDF5 attributes (JSON text or null), merged under the
-- manifest's metadata by the planner.
-- Inputs: art_meta(_row, huid, type, file, dataset, index, metadata), ham_keys(huid, key), probes.
SELECT
    k.key AS parent_key,
    a.type AS key,
    a.metadata,
    '{"dataset":' || to_json(a.dataset)
        || CASE WHEN a.index IS NULL THEN '' ELSE ',"slice":' || to_json(a.index::VARCHAR) END
        || '}' AS parameters,
    p.path,
    p.size,
    p.mtime_ns,
    p.ctime_ns,
    p.device,
    p.inode,
    p.shape,
    p.chunks,
    p.data_type,
    p.attrs,
    a.index IS NOT NULL AS indexed,
    a.dataset,
    a.index
FROM art_meta AS a
JOIN ham_keys AS k USING (huid)
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
ORDER BY a._row
