-- Rule: `dataset` names the HDF5 object to read; it cannot be blank or hold
-- control characters (HDF5 paths end at NUL; no provider means the others).
-- Reads: artifacts.
SELECT 'dataset_invalid' AS rule, 'error' AS severity, manifest, row, 'dataset' AS "column",
       dataset AS value,
       CASE WHEN dataset IS NULL OR trim(dataset) = '' THEN 'dataset is null or empty: the locator needs an HDF5 path'
            ELSE 'dataset contains control characters (NUL, tab, line break...): name the HDF5 object by its path'
       END AS message
FROM artifacts
WHERE dataset IS NULL OR trim(dataset) = '' OR regexp_matches(dataset, '[\x00-\x1f\x7f-\x9f]')
