-- Rule: a key is unique within one dataset (it becomes the catalog key). Keys are
-- compared in Unicode NFC: two spellings of one name (café composed and
-- decomposed) are one key.
-- Reads: hamiltonians.
SELECT 'key_duplicate' AS rule, 'error' AS severity, manifest, row, 'key' AS "column",
       key AS value,
       'key ' || key || ' appears ' || n || ' times (rows ' || array_to_string(rows, ', ')
           || '; compared in Unicode NFC)' AS message
FROM (
    SELECT *, count(*) OVER w AS n, list(row ORDER BY row) OVER w AS rows
    FROM hamiltonians
    WHERE key IS NOT NULL AND key <> ''
    WINDOW w AS (PARTITION BY dataset_name, nfc_normalize(key))
)
WHERE n > 1
