-- Rule (warning): two artifacts with the same locator (file, dataset, index)
-- serve the same array. The duplicate groups are found first with a plain
-- GROUP BY, with their count and first rows, so the work stays linear in the rows.
-- Reads: artifacts.
-- Counted first, listed only for the duplicates: an ordered list() per group of
-- every row cannot spill, and at 10^6 artifacts it took half a gigabyte. The first
-- rows of a group are min(..., 5), which keeps five whatever the group's size (a
-- list of all of them ran out of DuckDB's 256 MB for 1.5 x 10^6 artifacts of one
-- locator).
WITH counted AS (
    SELECT file, dataset, index, count(*) AS n
    FROM artifacts
    WHERE file IS NOT NULL AND dataset IS NOT NULL
    GROUP BY file, dataset, index
    HAVING count(*) > 1
),
groups AS (
    SELECT c.file, c.dataset, c.index, c.n,
           list_transform(min({'manifest': a.manifest, 'row': a.row}, 5), f -> f.manifest || ':' || f.row)
               AS first_rows
    FROM counted AS c
    JOIN artifacts AS a ON a.file = c.file AND a.dataset = c.dataset AND a.index IS NOT DISTINCT FROM c.index
    GROUP BY c.file, c.dataset, c.index, c.n
)
SELECT 'locator_duplicate' AS rule, 'warning' AS severity, a.manifest, a.row, 'file' AS "column",
       a.file AS value,
       'locator (' || a.file || ', ' || a.dataset || ', ' || coalesce(a.index::VARCHAR, 'null')
           || ') is used by ' || g.n || ' artifacts (rows ' || array_to_string(g.first_rows, ', ')
           || CASE WHEN g.n > 5 THEN ', ...' ELSE '' END || ')' AS message
FROM artifacts AS a
JOIN groups AS g ON g.file = a.file AND g.dataset = a.dataset AND g.index IS NOT DISTINCT FROM a.index
