-- Rule (warning): a Hamiltonian with no artifact becomes an empty container.
SELECT 'hamiltonian_without_artifacts' AS rule, 'warning' AS severity, h.manifest, h.row,
       'huid' AS "column", h.huid AS value,
       'Hamiltonian ' || h.huid || ' has no artifacts; it will be an empty container' AS message
FROM hamiltonians AS h
ANTI JOIN artifacts AS a ON a.dataset_name = h.dataset_name AND a.huid = h.huid
WHERE h.huid IS NOT NULL AND trim(h.huid) <> ''
