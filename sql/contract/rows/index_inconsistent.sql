-- Rule: a dataset is either batched (every row that reads it gives an index)
-- or not (no row does). A null index on a batched dataset would register the
-- whole batch as one artifact.
SELECT 'index_inconsistent' AS rule, 'error' AS severity, manifest, row, 'index' AS "column",
       NULL AS value,
       file || ': index is null, but ' || n_indexed || ' other row(s) index ' || dataset
           || ' as a batched dataset' AS message
FROM (
    SELECT *, count(index) OVER (PARTITION BY file, dataset) AS n_indexed
    FROM artifacts
)
WHERE index IS NULL AND n_indexed > 0
