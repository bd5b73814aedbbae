-- Rule (warning): two artifacts with the same locator (file, dataset, index)
-- serve the same array. The duplicate groups are found first with a plain
-- GROUP BY, so the row lists are only built for them.
WITH groups AS (
    SELECT file, dataset, index
    FROM artifacts
    WHERE file IS NOT NULL AND dataset IS NOT NULL
    GROUP BY file, dataset, index
    HAVING count(*) > 1
),
clashing AS (
    SELECT a.*
    FROM artifacts AS a
    SEMI JOIN groups AS g
        ON g.file = a.file AND g.dataset = a.dataset AND g.index IS NOT DISTINCT FROM a.index
)
SELECT 'locator_duplicate' AS rule, 'warning' AS severity, manifest, row, 'file' AS "column",
       file AS value,
       'locator (' || file || ', ' || dataset || ', ' || coalesce(index::VARCHAR, 'null')
           || ') is used by ' || n || ' artifacts (rows ' || array_to_string(rows, ', ') || ')' AS message
FROM (
    SELECT *, count(*) OVER w AS n, list(manifest || ':' || row ORDER BY manifest, row) OVER w AS rows
    FROM clashing
    WINDOW w AS (PARTITION BY file, dataset, index)
)
