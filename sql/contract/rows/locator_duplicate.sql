-- Rule (warning): two artifacts with the same locator (file, dataset, index)
-- serve the same array.
SELECT 'locator_duplicate' AS rule, 'warning' AS severity, manifest, row, 'file' AS "column",
       file AS value,
       'locator (' || file || ', ' || dataset || ', ' || coalesce(index::VARCHAR, 'null')
           || ') is used by ' || n || ' artifacts (rows ' || array_to_string(rows, ', ') || ')' AS message
FROM (
    SELECT *, count(*) OVER w AS n, list(manifest || ':' || row ORDER BY manifest, row) OVER w AS rows
    FROM artifacts
    WHERE file IS NOT NULL AND dataset IS NOT NULL
    WINDOW w AS (PARTITION BY file, dataset, index)
)
WHERE n > 1
