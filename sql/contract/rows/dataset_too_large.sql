-- Rule: the array a node serves holds at most $limit bytes (its logical size:
-- elements times item size, the row's for a batched file). HDF5 stores unwritten
-- or compressed chunks in almost nothing, so a 1 kB file can declare a 10^12-element
-- dataset; Tiled's server would then fill its memory reading it for one client.
-- The limit is the user's (--max-array-size); the message tells the provider.
-- Reads: artifacts, probes.
WITH sized AS (
    SELECT a.manifest, a.row, a.file, a.dataset, p.shape,
           coalesce(list_aggregate(CASE WHEN a.index IS NULL THEN p.shape ELSE p.shape[2:] END, 'product'), 1)
               * json_extract(p.data_type, '$.itemsize')::DOUBLE AS bytes
    FROM artifacts AS a
    JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
    WHERE p.dataset_status = 'ok' AND p.data_type IS NOT NULL
)
SELECT 'dataset_too_large' AS rule, 'error' AS severity, manifest, row, 'dataset' AS "column", dataset AS value,
       file || ': ' || dataset || ' (shape ' || shape::VARCHAR || ') would be served as an array of '
           || CASE WHEN bytes < 9e18 THEN format_bytes(bytes::BIGINT) ELSE printf('%.3g bytes', bytes) END || ', over the limit of ' || format_bytes($limit::BIGINT)
           || ': ask the provider to split it into smaller datasets, or raise --max-array-size' AS message
FROM sized
WHERE bytes > $limit
