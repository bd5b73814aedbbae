-- Rule: `type` becomes the artifact's child key, so it obeys the key rules.
SELECT 'type_invalid' AS rule, 'error' AS severity, manifest, row, 'type' AS "column",
       type AS value,
       CASE
           WHEN type IS NULL OR type = '' THEN 'type is null or empty'
           WHEN contains(type, '/') THEN 'type contains ''/'', which Tiled reads as a path separator'
           WHEN regexp_matches(type, '[\x00-\x1f\x7f-\x9f]') THEN 'type contains control characters'
           ELSE 'type has leading or trailing white space'
       END AS message
FROM artifacts
WHERE type IS NULL OR type = '' OR contains(type, '/')
   OR regexp_matches(type, '[\x00-\x1f\x7f-\x9f]') OR regexp_matches(type, '^\p{Z}|\p{Z}$')
