-- Rule: huid is unique within a dataset's Hamiltonian manifest.
SELECT 'huid_duplicate' AS rule, 'error' AS severity, manifest, row, 'huid' AS "column",
       huid AS value,
       'huid ' || huid || ' appears ' || n || ' times (rows ' || array_to_string(rows, ', ') || ')' AS message
FROM (
    SELECT *, count(*) OVER w AS n, list(row ORDER BY row) OVER w AS rows
    FROM hamiltonians
    WHERE huid IS NOT NULL AND trim(huid) <> ''
    WINDOW w AS (PARTITION BY dataset_name, huid)
)
WHERE n > 1
