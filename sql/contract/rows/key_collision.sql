-- Rule: keys must be unique across all datasets (guide, Step 2), checked among
-- the datasets checked together, in Unicode NFC (as key_duplicate).
-- Reads: hamiltonians.
SELECT 'key_collision' AS rule, 'error' AS severity, a.manifest, a.row, 'key' AS "column",
       a.key AS value,
       'key ' || a.key || ' is also used by dataset ' || b.dataset_name || ' (' || b.manifest
           || ', row ' || b.row || ')' AS message
FROM hamiltonians AS a
JOIN hamiltonians AS b ON nfc_normalize(a.key) = nfc_normalize(b.key) AND a.dataset_name <> b.dataset_name
