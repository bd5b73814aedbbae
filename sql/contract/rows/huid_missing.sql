-- Rule: every Hamiltonian and every artifact has an ID; without one the two
-- manifests cannot be joined ("Each entity needs a unique ID").
SELECT 'huid_missing' AS rule, 'error' AS severity, manifest, row, 'huid' AS "column",
       huid AS value, 'missing ID: huid is null or blank' AS message
FROM hamiltonians
WHERE huid IS NULL OR trim(huid) = ''
UNION ALL
SELECT 'huid_missing', 'error', manifest, row, 'huid', huid,
       'missing ID: artifact huid is null or blank, so it belongs to no Hamiltonian'
FROM artifacts
WHERE huid IS NULL OR trim(huid) = ''
