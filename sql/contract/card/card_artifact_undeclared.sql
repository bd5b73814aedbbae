-- Warning: an artifact type the dataset card does not declare (first row of each).
SELECT 'card_artifact_undeclared' AS rule, 'warning' AS severity, a.manifest, min(a.row) AS row,
       'type' AS "column", a.type AS value,
       'artifact type ' || a.type || ' (' || count(*) || ' row(s)) is not declared in the dataset card' AS message
FROM artifacts AS a
WHERE a.type IS NOT NULL AND (SELECT count(*) FROM card_artifacts) > 0
  AND a.type NOT IN (SELECT type FROM card_artifacts)
GROUP BY a.manifest, a.type
