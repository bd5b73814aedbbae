-- Rule: keys must be unique across all datasets (guide, Step 2), checked among
-- the datasets checked together, in Unicode NFC (as key_duplicate). Each key is
-- aggregated once per dataset, so the work stays linear however many rows share it;
-- a row names the first row of the first other dataset using its key.
-- Reads: hamiltonians.
WITH named AS (
    SELECT *, nfc_normalize(key) AS key_nfc
    FROM hamiltonians
    WHERE key IS NOT NULL AND key <> ''
),
-- Keys are first grouped by their 64-bit hash, which holds a fixed 8 bytes a key
-- where the strings hold all of theirs (at 3.3 x 10^6 keys the string groups took
-- about 280 MiB past DuckDB's limit): only the keys whose hash is in two datasets
-- or more are then grouped exactly (a hash collision only adds a candidate).
shared_hashes AS (
    SELECT hash(key_nfc) AS h
    FROM named
    GROUP BY hash(key_nfc)
    HAVING count(DISTINCT dataset_name) > 1
),
per_dataset AS (
    SELECT key_nfc, dataset_name, min(manifest) AS manifest, min(row) AS first_row
    FROM named
    SEMI JOIN shared_hashes ON shared_hashes.h = hash(named.key_nfc)
    GROUP BY key_nfc, dataset_name
),
-- Ranked only where a key is in two datasets or more: a window over every key
-- cannot spill as an aggregate does, and at 10^7 keys it outgrew DuckDB's limit.
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY key_nfc ORDER BY dataset_name) AS rank
    FROM per_dataset
    WHERE key_nfc IN (SELECT key_nfc FROM per_dataset GROUP BY key_nfc HAVING count(*) > 1)
),
shared AS (
    SELECT key_nfc,
           max(CASE WHEN rank = 1 THEN dataset_name END) AS first_dataset,
           max(CASE WHEN rank = 1 THEN manifest END) AS first_manifest,
           max(CASE WHEN rank = 1 THEN first_row END) AS first_row,
           max(CASE WHEN rank = 2 THEN manifest END) AS second_manifest,
           max(CASE WHEN rank = 2 THEN first_row END) AS second_row
    FROM ranked
    WHERE rank <= 2
    GROUP BY key_nfc
)
SELECT 'key_collision' AS rule, 'error' AS severity, a.manifest, a.row, 'key' AS "column",
       a.key AS value,
       'key ' || a.key || ' is also used by another dataset ('
           || CASE WHEN a.dataset_name = s.first_dataset THEN s.second_manifest || ', row ' || s.second_row
                   ELSE s.first_manifest || ', row ' || s.first_row END || ')' AS message
FROM named AS a
JOIN shared AS s USING (key_nfc)
