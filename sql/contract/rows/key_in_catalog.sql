-- Rule: a key already present under the target parent in the catalog would
-- collide with an existing node.
SELECT 'key_in_catalog' AS rule, 'error' AS severity, h.manifest, h.row, 'key' AS "column",
       h.key AS value,
       'key ' || h.key || ' already exists in the catalog at ' || c.location AS message
FROM hamiltonians AS h
JOIN catalog_keys AS c ON c.key = h.key
