-- Rule: a manifest has rows. An empty one (often a generator run on the wrong
-- directory) would register nothing and say OK.
-- Reads: $ham_rows, $art_rows (the row counts of one manifest pair).
SELECT 'manifest_empty' AS rule, 'error' AS severity, manifest, NULL::BIGINT AS row, NULL AS "column",
       NULL AS value, what || ' manifest has no rows' AS message
FROM (
    SELECT $ham_manifest AS manifest, 'the Hamiltonian' AS what, $ham_rows::BIGINT AS n
    UNION ALL
    SELECT $art_manifest, 'the artifact', $art_rows::BIGINT
)
WHERE n = 0
