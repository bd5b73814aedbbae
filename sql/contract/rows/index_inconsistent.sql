-- Rule: a dataset is either batched (every row that reads it gives an index)
-- or not (no row does). A null index on a batched dataset would register the
-- whole batch as one artifact. (Counted per dataset with an aggregate, which
-- spills, rather than a window over every artifact, which does not.)
WITH indexed AS (
    SELECT file, dataset, count(index) AS n_indexed
    FROM artifacts
    GROUP BY file, dataset
    HAVING count(index) > 0
)
SELECT 'index_inconsistent' AS rule, 'error' AS severity, a.manifest, a.row, 'index' AS "column",
       NULL AS value,
       a.file || ': index is null, but ' || i.n_indexed || ' other row(s) index ' || a.dataset
           || ' as a batched dataset' AS message
FROM artifacts AS a
JOIN indexed AS i ON i.file IS NOT DISTINCT FROM a.file AND i.dataset IS NOT DISTINCT FROM a.dataset
WHERE a.index IS NULL
