-- Rule: a key already present under the target parent in the catalog would
-- collide with an existing node (compared in Unicode NFC, as key_duplicate),
-- unless that node is this very Hamiltonian (same huid): a re-run, which
-- `broker ingest` completes without duplicates.
-- Reads: hamiltonians, catalog_keys.
SELECT 'key_in_catalog' AS rule, 'error' AS severity, h.manifest, h.row, 'key' AS "column",
       h.key AS value,
       'key ' || h.key || ' already exists in the catalog at ' || c.location
           || CASE WHEN c.key <> h.key THEN ' (as ' || c.key || ', the same name in Unicode NFC)' ELSE '' END
           || CASE WHEN c.huid IS NULL THEN '' ELSE ' for huid ' || c.huid END
           AS message
FROM hamiltonians AS h
JOIN catalog_keys AS c ON nfc_normalize(c.key) = nfc_normalize(h.key)
WHERE c.huid IS DISTINCT FROM h.huid
