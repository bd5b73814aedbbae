-- Rule: the dataset exists in the file and is a dataset (not a group), and it is
-- rectangular (variable-length/ragged data cannot be served as an array).
SELECT CASE WHEN p.dataset_status = 'ok' THEN 'dataset_ragged'
            ELSE 'dataset_' || p.dataset_status END AS rule,
       'error' AS severity, a.manifest, a.row, 'dataset' AS "column", a.dataset AS value,
       a.file || ': ' || CASE WHEN p.dataset_status = 'ok'
                              THEN a.dataset || ' is variable-length (ragged, dtype ' || p.dtype
                                   || '); Tiled serves rectangular arrays only'
                              ELSE p.dataset_message END AS message
FROM artifacts AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
WHERE p.file_status = 'ok' AND (p.dataset_status <> 'ok' OR p.ragged)
