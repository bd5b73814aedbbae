-- Rule: every parameter the dataset card declares is a column of the Hamiltonian manifest.
SELECT 'card_parameter_missing' AS rule, 'error' AS severity, m.manifest, NULL AS row, p.name AS "column",
       NULL AS value,
       'the dataset card declares parameter ' || p.name || ', which is not a column of this manifest' AS message
FROM card_parameters AS p
CROSS JOIN (SELECT DISTINCT manifest, dataset_name FROM manifest_columns) AS m
ANTI JOIN manifest_columns AS c ON c.dataset_name = m.dataset_name AND c.name = p.name
