-- Rule: a key names a node in Tiled: non-empty, no '/', no control characters,
-- no surrounding white space (C0 and C1 controls count as control characters).
SELECT 'key_invalid' AS rule, 'error' AS severity, manifest, row, 'key' AS "column",
       key AS value,
       CASE
           WHEN key IS NULL OR key = '' THEN 'key is null or empty'
           WHEN contains(key, '/') THEN 'key contains ''/'', which Tiled reads as a path separator'
           WHEN regexp_matches(key, '[\x00-\x1f\x7f-\x9f]') THEN 'key contains control characters'
           ELSE 'key has leading or trailing white space'
       END AS message
FROM hamiltonians
WHERE key IS NULL OR key = '' OR contains(key, '/')
   OR regexp_matches(key, '[\x00-\x1f\x7f-\x9f]') OR regexp_matches(key, '^\p{Z}|\p{Z}$')
