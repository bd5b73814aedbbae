-- Rule: the numbers of Hamiltonians and artifacts are within what the dataset card says.
WITH counted AS (
    SELECT 'hamiltonians' AS what, manifest, count(*) AS n FROM hamiltonians GROUP BY manifest
    UNION ALL
    SELECT 'artifacts' AS what, manifest, count(*) AS n FROM artifacts GROUP BY manifest
)
SELECT 'card_count' AS rule, 'error' AS severity, c.manifest, NULL AS row, NULL AS "column",
       CAST(c.n AS VARCHAR) AS value,
       c.n || ' ' || c.what || ', the dataset card says '
           || CASE WHEN b.lo = b.hi THEN CAST(b.lo AS VARCHAR)
                   WHEN b.hi IS NULL THEN 'at least ' || b.lo
                   WHEN b.lo IS NULL THEN 'at most ' || b.hi
                   ELSE b.lo || ' to ' || b.hi END AS message
FROM counted AS c
JOIN card_counts AS b ON b.what = c.what
WHERE (b.lo IS NOT NULL AND c.n < b.lo) OR (b.hi IS NOT NULL AND c.n > b.hi)
