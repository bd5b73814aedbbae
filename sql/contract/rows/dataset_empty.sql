-- Rule (warning): a dataset with a zero-length axis holds no data.
SELECT 'dataset_empty' AS rule, 'warning' AS severity, a.manifest, a.row, 'dataset' AS "column",
       a.dataset AS value,
       a.file || ': ' || a.dataset || ' is empty (shape ' || p.shape::VARCHAR || ')' AS message
FROM artifacts AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
WHERE p.dataset_status = 'ok' AND list_contains(p.shape, 0)
