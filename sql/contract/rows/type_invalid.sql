-- Rule: `type` becomes the artifact's child key, so it obeys the key rules (macro
-- name_problem).
-- Reads: artifacts.
SELECT 'type_invalid' AS rule, 'error' AS severity, manifest, row, 'type' AS "column",
       type AS value, name_problem('type', type) AS message
FROM artifacts
WHERE name_problem('type', type) IS NOT NULL
