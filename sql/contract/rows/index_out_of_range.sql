-- Rule: a batched row's index selects an entry along the first axis. Tiled's HDF5
-- adapter reads a dataset with a zero-length axis whole (with a leading axis of
-- one added, as for scalars), so no row of such a dataset can be served.
-- Reads: artifacts, probes.
SELECT 'index_out_of_range' AS rule, 'error' AS severity, a.manifest, a.row, 'index' AS "column",
       a.index::VARCHAR AS value,
       CASE WHEN len(p.shape) = 0
            THEN a.file || ': ' || a.dataset || ' is a scalar and cannot be indexed'
            WHEN list_contains(p.shape, 0)
            THEN a.file || ': ' || a.dataset || ' has shape ' || p.shape::VARCHAR || ', with a zero-length axis: '
                 || 'Tiled reads such a dataset whole and cannot serve one row of it (leave index null)'
            ELSE a.file || ': index ' || a.index || ' is outside the first axis of '
                 || a.dataset || ' (length ' || p.shape[1] || ')' END AS message
FROM artifacts AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
WHERE p.dataset_status = 'ok' AND a.index IS NOT NULL
  AND (len(p.shape) = 0 OR list_contains(p.shape, 0) OR a.index < 0 OR a.index >= p.shape[1])
