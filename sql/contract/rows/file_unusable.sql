-- Rule: each artifact's file resolves inside the base directory (symlinks
-- included), exists, is a readable, non-empty HDF5 file that opens, and its
-- resolved path is one Tiled's server will open exactly. The rule name carries
-- the probe's finding: file_missing, file_outside_base, file_uri_unsafe (the path
-- does not survive Tiled's file:// asset URI unchanged, or holds a control
-- character), file_not_regular, file_empty, file_unreadable, file_not_hdf5,
-- file_corrupt.
-- Reads: artifacts, probes.
SELECT 'file_' || p.file_status AS rule, 'error' AS severity, a.manifest, a.row,
       'file' AS "column", a.file AS value,
       a.file || ': ' || p.file_message AS message
FROM artifacts AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
WHERE p.file_status <> 'ok'
