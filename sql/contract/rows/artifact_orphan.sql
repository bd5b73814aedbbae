-- Rule: every artifact's huid exists among its dataset's Hamiltonians.
SELECT 'artifact_orphan' AS rule, 'error' AS severity, a.manifest, a.row, 'huid' AS "column",
       a.huid AS value,
       'artifact ' || coalesce(a.type, '?') || ' refers to huid ' || a.huid
           || ', which is not in the Hamiltonian manifest' AS message
FROM artifacts AS a
ANTI JOIN hamiltonians AS h ON h.dataset_name = a.dataset_name AND h.huid = a.huid
WHERE a.huid IS NOT NULL AND trim(a.huid) <> ''
