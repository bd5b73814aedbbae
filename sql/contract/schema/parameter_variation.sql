-- Rule (warning): the catalog is worth having for a parameter sweep
-- ("When the Data Doesn't Fit"). Flags a dataset of two or more Hamiltonians
-- whose metadata rows are all the same.
-- Reads: metadata_source(_row, the metadata columns of the Hamiltonian manifest).
-- One JSON document per row keeps the cost linear in the number of columns.
WITH docs AS (
    SELECT to_json(struct_pack(*COLUMNS(* EXCLUDE (_row)))) AS doc FROM metadata_source
)
SELECT
    'no_parameter_variation' AS rule,
    'warning' AS severity,
    $manifest AS manifest,
    NULL::BIGINT AS row,
    NULL AS "column",
    NULL AS value,
    'no parameter varies across the ' || count(*)
        || ' Hamiltonians: metadata search has nothing to tell them apart' AS message
FROM docs
HAVING count(DISTINCT doc) <= 1 AND count(*) > 1
