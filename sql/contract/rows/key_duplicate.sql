-- Rule: a key is unique within one dataset (it becomes the catalog key).
SELECT 'key_duplicate' AS rule, 'error' AS severity, manifest, row, 'key' AS "column",
       key AS value,
       'key ' || key || ' appears ' || n || ' times (rows ' || array_to_string(rows, ', ') || ')' AS message
FROM (
    SELECT *, count(*) OVER w AS n, list(row ORDER BY row) OVER w AS rows
    FROM hamiltonians
    WHERE key IS NOT NULL AND key <> ''
    WINDOW w AS (PARTITION BY dataset_name, key)
)
WHERE n > 1
