-- Rule: a key names a node that Tiled serves and tiled.client reaches (see the
-- macro name_problem for what is refused and why).
-- Reads: hamiltonians.
SELECT 'key_invalid' AS rule, 'error' AS severity, manifest, row, 'key' AS "column",
       key AS value, name_problem('key', key) AS message
FROM hamiltonians
WHERE name_problem('key', key) IS NOT NULL
