-- Rule: `dataset` names the HDF5 object to read; it cannot be blank.
SELECT 'dataset_invalid' AS rule, 'error' AS severity, manifest, row, 'dataset' AS "column",
       dataset AS value, 'dataset is null or empty: the locator needs an HDF5 path' AS message
FROM artifacts
WHERE dataset IS NULL OR trim(dataset) = ''
