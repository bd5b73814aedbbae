-- Rule: a manifest has rows. An empty one (often a generator run on the wrong
-- directory) would register nothing and say OK.
-- Reads: ham_full, art_full (one manifest pair).
SELECT 'manifest_empty' AS rule, 'error' AS severity, manifest, NULL::BIGINT AS row, NULL AS "column",
       NULL AS value, what || ' manifest has no rows' AS message
FROM (
    SELECT $ham_manifest AS manifest, 'the Hamiltonian' AS what, (SELECT count(*) FROM ham_full) AS n
    UNION ALL
    SELECT $art_manifest, 'the artifact', (SELECT count(*) FROM art_full)
)
WHERE n = 0
