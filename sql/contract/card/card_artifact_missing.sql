-- Rule: every artifact type the dataset card declares occurs in the artifact manifest.
SELECT 'card_artifact_missing' AS rule, 'error' AS severity, m.manifest, NULL AS row, 'type' AS "column",
       d.type AS value,
       'the dataset card declares artifact type ' || d.type || ', which no row of this manifest has' AS message
FROM card_artifacts AS d
CROSS JOIN (SELECT DISTINCT manifest, dataset_name FROM artifacts) AS m
ANTI JOIN artifacts AS a ON a.dataset_name = m.dataset_name AND a.type = d.type
