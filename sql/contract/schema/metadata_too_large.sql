-- Rule: one row's metadata, as JSON, stays under $limit bytes (1 MiB). Tiled returns
-- the metadata of every node on a listing or search page (100 nodes by default), and
-- the SQLite catalog indexes all of it for full-text search: a 10 MB string makes
-- every page that shows the node that slow. Keep bulky values in the HDF5 file.
-- Reads: metadata_source(_row, the metadata columns of one manifest).
SELECT 'metadata_too_large' AS rule, 'error' AS severity, $manifest AS manifest, _row AS row,
       NULL AS "column", NULL AS value,
       'metadata of this row is ' || size || ' bytes as JSON; the limit is ' || $limit
           || ' bytes: put bulky values in the HDF5 file' AS message
FROM (SELECT _row, strlen(to_json(struct_pack(*COLUMNS(* EXCLUDE (_row))))::VARCHAR) AS size FROM metadata_source)
WHERE size > $limit
