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
-- Keys are first grouped by their 64-bit hash, which holds a fixed 8 bytes a key
-- where the strings hold all of theirs (at 3.3 x 10^6 keys the string groups took
-- about 200 MiB past DuckDB's limit): only the keys whose hash repeats are then
-- counted exactly (a hash collision only adds a candidate).
hashed AS (
    SELECT dataset_name, hash(key_nfc) AS h
    FROM named
    GROUP BY dataset_name, hash(key_nfc)
    HAVING count(*) > 1
),
counted AS (
    SELECT dataset_name, key_nfc, count(*) AS n
    FROM named
    SEMI JOIN hashed ON hashed.dataset_name = named.dataset_name AND hashed.h = hash(named.key_nfc)
    GROUP BY dataset_name, key_nfc
    HAVING count(*) > 1
),
-- Counted first, listed only for the duplicates: an ordered list() per group of
-- every row cannot spill.
-- The first rows of a group are min(row, 5): five kept whatever the group's size.
groups AS (
    SELECT dataset_name, key_nfc, c.n, min(h.row, 5) AS first_rows
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
