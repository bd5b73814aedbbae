-- Rule: huid is unique within a dataset's Hamiltonian manifest. Each group of
-- duplicates is aggregated once (its count and first rows), so the work and the
-- messages stay linear in the rows however many rows share one huid.
-- Reads: hamiltonians.
-- Counted first, listed only for the duplicates: an ordered list() per group of
-- every row cannot spill.
-- The first rows of a group are min(row, 5): five kept whatever the group's size.
WITH counted AS (
    SELECT dataset_name, huid, count(*) AS n
    FROM hamiltonians
    WHERE huid IS NOT NULL AND trim(huid) <> ''
    GROUP BY dataset_name, huid
    HAVING count(*) > 1
),
groups AS (
    SELECT dataset_name, huid, c.n, min(h.row, 5) AS first_rows
    FROM counted AS c
    JOIN hamiltonians AS h USING (dataset_name, huid)
    GROUP BY dataset_name, huid, c.n
)
SELECT 'huid_duplicate' AS rule, 'error' AS severity, h.manifest, h.row, 'huid' AS "column",
       h.huid AS value,
       'huid ' || h.huid || ' appears ' || g.n || ' times (rows ' || array_to_string(g.first_rows, ', ')
           || CASE WHEN g.n > 5 THEN ', ...' ELSE '' END || ')' AS message
FROM hamiltonians AS h
JOIN groups AS g ON g.dataset_name = h.dataset_name AND g.huid = h.huid
