-- Rule: a key is unique within one dataset (it becomes the catalog key). Keys are
-- compared in Unicode NFC: two spellings of one name (café composed and
-- decomposed) are one key. Each group is aggregated once (count and first rows):
-- linear in the rows however many share one key.
-- Reads: hamiltonians.
WITH named AS (
    SELECT *, nfc_normalize(key) AS key_nfc
    FROM hamiltonians
    WHERE key IS NOT NULL AND key <> ''
),
-- Counted first, listed only for the duplicates: an ordered list() per group of
-- every row cannot spill.
counted AS (
    SELECT dataset_name, key_nfc, count(*) AS n
    FROM named
    GROUP BY dataset_name, key_nfc
    HAVING count(*) > 1
),
groups AS (
    SELECT dataset_name, key_nfc, c.n, list(h.row ORDER BY h.row)[1:5] AS first_rows
    FROM counted AS c
    JOIN named AS h USING (dataset_name, key_nfc)
    GROUP BY dataset_name, key_nfc, c.n
)
SELECT 'key_duplicate' AS rule, 'error' AS severity, h.manifest, h.row, 'key' AS "column",
       h.key AS value,
       'key ' || h.key || ' appears ' || g.n || ' times (rows ' || array_to_string(g.first_rows, ', ')
           || CASE WHEN g.n > 5 THEN ', ...' ELSE '' END || '; compared in Unicode NFC)' AS message
FROM named AS h
JOIN groups AS g USING (dataset_name, key_nfc)
