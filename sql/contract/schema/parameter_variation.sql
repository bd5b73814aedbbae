-- Rule (warning): the catalog is worth having for a parameter sweep
-- ("When the Data Doesn't Fit"). Flags a dataset of two or more Hamiltonians
-- whose metadata rows are all the same.
-- Reads: metadata_rows(_row, doc) (contract/metadata_documents of the Hamiltonian
-- manifest, without huid).
SELECT
    'no_parameter_variation' AS rule,
    'warning' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    NULL AS "column",
    NULL AS value,
    'no parameter varies across the ' || count(*)
        || ' Hamiltonians: metadata search has nothing to tell them apart' AS message
FROM metadata_rows
HAVING count(DISTINCT doc) <= 1 AND count(*) > 1
